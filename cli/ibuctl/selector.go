package ibuctl

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"ibu.dev/shared/events"
)

// parseSelector parses a label selector in the Kubernetes syntax (the
// subset kubectl users write): requirements separated by commas, each one
// of
//
//	k=v  k==v      the label k is v              (matchLabels)
//	k!=v           k is not v, or k is absent    (NotIn [v])
//	k in (a,b)     k is a or b                   (In)
//	k notin (a,b)  k is neither, or k is absent  (NotIn)
//	k              k is present                  (Exists)
//	!k             k is absent                   (DoesNotExist)
//
// into the contract's LabelSelector; every requirement must hold. Keys and
// values are checked as Kubernetes checks labels. An empty selector is an
// error: it would not mean the whole fleet.
func parseSelector(s string) (*events.LabelSelector, error) {
	parts, err := splitRequirements(s)
	if err != nil {
		return nil, fmt.Errorf("invalid selector %q: %w", s, err)
	}
	sel := &events.LabelSelector{}
	for _, p := range parts {
		if err := addRequirement(sel, p); err != nil {
			return nil, fmt.Errorf("invalid selector %q: %w", s, err)
		}
	}
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		return nil, fmt.Errorf("invalid selector %q: empty (an empty selector does not mean the whole fleet)", s)
	}
	return sel, nil
}

// splitRequirements splits at the commas outside parentheses.
func splitRequirements(s string) ([]string, error) {
	var parts []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			if depth > 0 {
				return nil, fmt.Errorf("nested '(' at offset %d", i)
			}
			depth++
		case ')':
			if depth == 0 {
				return nil, fmt.Errorf("')' without '(' at offset %d", i)
			}
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	if depth > 0 {
		return nil, fmt.Errorf("'(' is not closed")
	}
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	return append(parts, s[start:]), nil
}

func isKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '/'
}

// addRequirement parses one requirement into sel.
func addRequirement(sel *events.LabelSelector, req string) error {
	r := strings.TrimSpace(req)
	if r == "" {
		return fmt.Errorf("empty requirement (a stray comma?)")
	}
	if rest, ok := strings.CutPrefix(r, "!"); ok && !strings.HasPrefix(rest, "=") {
		key := strings.TrimSpace(rest)
		if err := checkLabelKey(key); err != nil {
			return fmt.Errorf("%q: %w", r, err)
		}
		sel.MatchExpressions = append(sel.MatchExpressions, events.LabelSelectorRequirement{Key: key, Operator: events.SelectorDoesNotExist})
		return nil
	}
	i := 0
	for i < len(r) && isKeyChar(r[i]) {
		i++
	}
	key, rest := r[:i], strings.TrimLeft(r[i:], " \t")
	if key == "" {
		return fmt.Errorf("%q: expected a label key first", r)
	}
	if err := checkLabelKey(key); err != nil {
		return fmt.Errorf("%q: %w", r, err)
	}
	word := rest
	if j := strings.IndexAny(rest, " \t("); j >= 0 {
		word = rest[:j]
	}
	switch {
	case rest == "":
		sel.MatchExpressions = append(sel.MatchExpressions, events.LabelSelectorRequirement{Key: key, Operator: events.SelectorExists})
	case strings.HasPrefix(rest, "!="):
		v, err := labelValue(r, rest[2:])
		if err != nil {
			return err
		}
		sel.MatchExpressions = append(sel.MatchExpressions, events.LabelSelectorRequirement{Key: key, Operator: events.SelectorNotIn, Values: []string{v}})
	case strings.HasPrefix(rest, "="):
		v, err := labelValue(r, strings.TrimPrefix(rest[1:], "="))
		if err != nil {
			return err
		}
		if cur, ok := sel.MatchLabels[key]; ok && cur != v {
			// k=a,k=b matches nothing, as in Kubernetes; matchLabels has
			// room for one value per key, so the second is an In.
			sel.MatchExpressions = append(sel.MatchExpressions, events.LabelSelectorRequirement{Key: key, Operator: events.SelectorIn, Values: []string{v}})
			return nil
		}
		if sel.MatchLabels == nil {
			sel.MatchLabels = map[string]string{}
		}
		sel.MatchLabels[key] = v
	case word == "in" || word == "notin":
		vals, err := valueSet(r, strings.TrimSpace(rest[len(word):]))
		if err != nil {
			return err
		}
		op := events.SelectorIn
		if word == "notin" {
			op = events.SelectorNotIn
		}
		sel.MatchExpressions = append(sel.MatchExpressions, events.LabelSelectorRequirement{Key: key, Operator: op, Values: vals})
	default:
		return fmt.Errorf("%q: unexpected %q after the key %q: want =, ==, !=, in (...), notin (...) or nothing", r, rest, key)
	}
	return nil
}

// labelValue checks the value of k=v or k!=v.
func labelValue(req, s string) (string, error) {
	v := strings.TrimSpace(s)
	if err := checkLabelValue(v); err != nil {
		return "", fmt.Errorf("%q: %w", req, err)
	}
	return v, nil
}

// valueSet parses "(a, b)" into distinct checked values.
func valueSet(req, s string) ([]string, error) {
	if !strings.HasPrefix(s, "(") || !strings.HasSuffix(s, ")") {
		return nil, fmt.Errorf("%q: want a set of values in parentheses, such as (a,b)", req)
	}
	inner := strings.TrimSpace(s[1 : len(s)-1])
	if inner == "" {
		return nil, fmt.Errorf("%q: the set of values is empty", req)
	}
	var vals []string
	for _, p := range strings.Split(inner, ",") {
		v := strings.TrimSpace(p)
		if v == "" {
			return nil, fmt.Errorf("%q: empty value in the set (a stray comma?)", req)
		}
		if err := checkLabelValue(v); err != nil {
			return nil, fmt.Errorf("%q: %w", req, err)
		}
		if !slices.Contains(vals, v) {
			vals = append(vals, v)
		}
	}
	return vals, nil
}

// checkLabelKey checks a Kubernetes label key: an optional DNS subdomain
// prefix and '/', then a name of 1-63 letters, digits, '-', '_' or '.'
// starting and ending with a letter or digit.
func checkLabelKey(k string) error {
	name := k
	if prefix, n, ok := strings.Cut(k, "/"); ok {
		subdomain := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
		if len(prefix) > 253 || !subdomain.MatchString(prefix) {
			return fmt.Errorf("label key %q: the prefix before '/' must be a DNS subdomain (lower case)", k)
		}
		name = n
	}
	nameRE := regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	if len(name) > 63 || !nameRE.MatchString(name) {
		return fmt.Errorf("label key %q: the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", k)
	}
	return nil
}

// checkLabelValue checks a Kubernetes label value: empty, or up to 63
// letters, digits, '-', '_' or '.', starting and ending with a letter or
// digit.
func checkLabelValue(v string) error {
	valueRE := regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)
	if len(v) > 63 || !valueRE.MatchString(v) {
		return fmt.Errorf("label value %q: want up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", v)
	}
	return nil
}

// formatSelector writes a selector back in the syntax parseSelector reads.
func formatSelector(sel *events.LabelSelector) string {
	if sel == nil {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(sel.MatchLabels)) {
		parts = append(parts, k+"="+sel.MatchLabels[k])
	}
	for _, r := range sel.MatchExpressions {
		switch r.Operator {
		case events.SelectorIn:
			parts = append(parts, r.Key+" in ("+strings.Join(r.Values, ",")+")")
		case events.SelectorNotIn:
			if len(r.Values) == 1 {
				parts = append(parts, r.Key+"!="+r.Values[0])
			} else {
				parts = append(parts, r.Key+" notin ("+strings.Join(r.Values, ",")+")")
			}
		case events.SelectorExists:
			parts = append(parts, r.Key)
		case events.SelectorDoesNotExist:
			parts = append(parts, "!"+r.Key)
		default:
			parts = append(parts, r.Key+" "+string(r.Operator)+" ("+strings.Join(r.Values, ",")+")")
		}
	}
	return strings.Join(parts, ",")
}
