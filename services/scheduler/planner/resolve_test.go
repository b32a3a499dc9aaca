package planner

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
)

func inventory() []state.Cluster {
	mk := func(id string, labels map[string]string) state.Cluster {
		var c state.Cluster
		c.ClusterID, c.Labels = id, labels
		return c
	}
	return []state.Cluster{
		mk("par-1", map[string]string{"region": "eu", "site": "par", "ring": "1"}),
		mk("par-2", map[string]string{"region": "eu", "site": "par", "ring": "2"}),
		mk("ber-1", map[string]string{"region": "eu", "site": "ber", "ring": "1", "frozen": "yes"}),
		mk("nyc-1", map[string]string{"region": "us", "site": "nyc", "ring": "1"}),
		mk("nyc-2", map[string]string{"region": "us", "site": "nyc"}),
	}
}

func TestMatchesSelectorOperators(t *testing.T) {
	labels := map[string]string{"region": "eu", "site": "par", "ring": "1"}
	req := func(k string, op events.SelectorOperator, v ...string) events.LabelSelectorRequirement {
		return events.LabelSelectorRequirement{Key: k, Operator: op, Values: v}
	}
	cases := []struct {
		name string
		sel  *events.LabelSelector
		want bool
	}{
		{"nil selects nothing", nil, false},
		{"empty selects nothing", &events.LabelSelector{}, false},
		{"matchLabels", &events.LabelSelector{MatchLabels: map[string]string{"region": "eu"}}, true},
		{"matchLabels all must hold", &events.LabelSelector{MatchLabels: map[string]string{"region": "eu", "site": "ber"}}, false},
		{"matchLabels absent key", &events.LabelSelector{MatchLabels: map[string]string{"tier": ""}}, false},
		{"In", &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("site", events.SelectorIn, "ber", "par")}}, true},
		{"In other value", &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("site", events.SelectorIn, "ber")}}, false},
		{"In absent key", &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("tier", events.SelectorIn, "a")}}, false},
		{"NotIn", &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("site", events.SelectorNotIn, "ber")}}, true},
		{"NotIn listed", &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("site", events.SelectorNotIn, "par")}}, false},
		{"NotIn absent key matches", &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("tier", events.SelectorNotIn, "a")}}, true},
		{"Exists", &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("ring", events.SelectorExists)}}, true},
		{"Exists absent", &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("frozen", events.SelectorExists)}}, false},
		{"DoesNotExist", &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("frozen", events.SelectorDoesNotExist)}}, true},
		{"DoesNotExist present", &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("ring", events.SelectorDoesNotExist)}}, false},
		{"labels AND expressions", &events.LabelSelector{MatchLabels: map[string]string{"region": "eu"},
			MatchExpressions: []events.LabelSelectorRequirement{req("ring", events.SelectorIn, "1"), req("frozen", events.SelectorDoesNotExist)}}, true},
		{"one expression fails", &events.LabelSelector{MatchLabels: map[string]string{"region": "eu"},
			MatchExpressions: []events.LabelSelectorRequirement{req("ring", events.SelectorIn, "1"), req("site", events.SelectorDoesNotExist)}}, false},
	}
	for _, c := range cases {
		if got := c.sel.Matches(labels); got != c.want {
			t.Errorf("%s: Matches = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestResolve(t *testing.T) {
	eu := &events.LabelSelector{MatchLabels: map[string]string{"region": "eu"},
		MatchExpressions: []events.LabelSelectorRequirement{{Key: "frozen", Operator: events.SelectorDoesNotExist}}}
	other := state.Plan{Spec: events.PlanCreateRequested{PlanID: "other"}, Phase: events.PlanRunning,
		Clusters: []state.PlanCluster{{ClusterID: "nyc-1"}}}
	done := state.Plan{Spec: events.PlanCreateRequested{PlanID: "old"}, Phase: events.PlanCompleted,
		Clusters: []state.PlanCluster{{ClusterID: "par-1"}}}
	cases := []struct {
		name     string
		sel      *events.LabelSelector
		list     []string
		canaries []string
		active   []state.Plan
		want     []string
		codes    []string
		text     string
	}{
		{name: "selector", sel: eu, want: []string{"par-1", "par-2"}},
		{name: "selector plus list, canary first", sel: eu, list: []string{"nyc-2", "par-1"}, canaries: []string{"par-2"},
			want: []string{"par-2", "nyc-2", "par-1"}},
		{name: "list only, canaries in order", list: []string{"nyc-2", "par-1", "ber-1", "par-2"}, canaries: []string{"par-2", "ber-1"},
			want: []string{"par-2", "ber-1", "nyc-2", "par-1"}},
		{name: "finished plan does not hold clusters", list: []string{"par-1"}, active: []state.Plan{done}, want: []string{"par-1"}},
		{name: "unknown ids", list: []string{"par-1", "lon-1", "lon-2"}, codes: []string{CodeUnknownCluster}, text: "lon-1, lon-2"},
		{name: "empty", sel: &events.LabelSelector{MatchLabels: map[string]string{"region": "apac"}}, codes: []string{CodeEmptySelection}},
		{name: "in another plan", list: []string{"nyc-1", "par-1"}, active: []state.Plan{other}, codes: []string{CodeClusterInAnotherPlan}, text: "nyc-1 (plan other)"},
		{name: "canary not selected", sel: eu, canaries: []string{"nyc-1"}, codes: []string{CodeCanaryNotSelected}, text: "nyc-1"},
		{name: "every problem", list: []string{"lon-1"}, canaries: []string{"par-1"}, codes: []string{CodeUnknownCluster, CodeEmptySelection, CodeCanaryNotSelected}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := request(c.list)
			req.Clusters.Selector, req.Canaries = c.sel, c.canaries
			got, err := Resolve(req, inventory(), c.active)
			if c.codes == nil {
				if err != nil || !slices.Equal(got, c.want) {
					t.Fatalf("Resolve = %v, %v; want %v", got, err, c.want)
				}
				return
			}
			var se *SelectionError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalidSelection) {
				t.Fatalf("Resolve = %v, %v; want a SelectionError", got, err)
			}
			if !slices.Equal(se.Codes(), c.codes) {
				t.Errorf("codes %v, want %v", se.Codes(), c.codes)
			}
			if !strings.Contains(err.Error(), c.text) {
				t.Errorf("error %q does not name %q", err, c.text)
			}
		})
	}
}
