package events

import "slices"

// Empty reports a selector with no labels and no expressions (or nil). In
// ibu an empty selector selects nothing: it never means the whole fleet.
func (s *LabelSelector) Empty() bool {
	return s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0)
}

// Matches reports whether labels satisfy the selector with the Kubernetes
// meaning: every matchLabels entry and every expression must hold. In: the
// label is present with one of the values; NotIn: absent or none of the
// values; Exists: present; DoesNotExist: absent. An empty selector matches
// nothing. The scheduler and ibuctl both select with it, so a plan and the
// command that previews it agree.
func (s *LabelSelector) Matches(labels map[string]string) bool {
	if s.Empty() {
		return false
	}
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, e := range s.MatchExpressions {
		got, ok := labels[e.Key]
		switch e.Operator {
		case SelectorIn:
			if !ok || !slices.Contains(e.Values, got) {
				return false
			}
		case SelectorNotIn:
			if ok && slices.Contains(e.Values, got) {
				return false
			}
		case SelectorExists:
			if !ok {
				return false
			}
		case SelectorDoesNotExist:
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}
