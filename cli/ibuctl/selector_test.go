package ibuctl

import (
	"reflect"
	"strings"
	"testing"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
)

func req(key string, op events.SelectorOperator, values ...string) events.LabelSelectorRequirement {
	return events.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
}

func TestParseSelector(t *testing.T) {
	cases := []struct {
		in   string
		want events.LabelSelector
	}{
		{"env=prod", events.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}},
		{"env==prod", events.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}},
		{" env = prod , tier=edge ", events.LabelSelector{MatchLabels: map[string]string{"env": "prod", "tier": "edge"}}},
		{"env!=dev", events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("env", events.SelectorNotIn, "dev")}}},
		{"region in (eu-west, eu-central)", events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{
			req("region", events.SelectorIn, "eu-west", "eu-central")}}},
		{"region in(a,a,b)", events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{
			req("region", events.SelectorIn, "a", "b")}}},
		{"region notin (us)", events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{
			req("region", events.SelectorNotIn, "us")}}},
		{"gpu", events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("gpu", events.SelectorExists)}}},
		{"!canary", events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("canary", events.SelectorDoesNotExist)}}},
		{"! canary", events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{req("canary", events.SelectorDoesNotExist)}}},
		{"ibu.dev/site=par-1,k8s.io/zone in (a,b),!ibu.dev/hold,x", events.LabelSelector{
			MatchLabels: map[string]string{"ibu.dev/site": "par-1"},
			MatchExpressions: []events.LabelSelectorRequirement{
				req("k8s.io/zone", events.SelectorIn, "a", "b"),
				req("ibu.dev/hold", events.SelectorDoesNotExist),
				req("x", events.SelectorExists)}}},
		{"env=", events.LabelSelector{MatchLabels: map[string]string{"env": ""}}},
		// Two values for one key match nothing, as in Kubernetes.
		{"env=a,env=b", events.LabelSelector{MatchLabels: map[string]string{"env": "a"},
			MatchExpressions: []events.LabelSelectorRequirement{req("env", events.SelectorIn, "b")}}},
		{"env=a,env=a", events.LabelSelector{MatchLabels: map[string]string{"env": "a"}}},
	}
	for _, c := range cases {
		got, err := parseSelector(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(*got, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.in, *got, c.want)
		}
		// What parses also passes the contract's schema.
		_, err = events.New("/t", "p", events.PlanCreateRequested{PlanID: "p", SeedImage: "r/s:1", SeedVersion: "4.16.1",
			Clusters: events.ClusterSelection{Selector: got},
			Steps:    []events.PlanStep{{Actions: []stages.Action{stages.ActionPrep}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 1}}}})
		if err != nil {
			t.Errorf("%q: refused by the schema: %v", c.in, err)
		}
		// And it formats back to something that parses to the same.
		again, err := parseSelector(formatSelector(got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("%q: format %q does not round-trip: %+v, %v", c.in, formatSelector(got), again, err)
		}
	}
}

func TestParseSelectorErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"env=prod,", "empty requirement"},
		{",env=prod", "empty requirement"},
		{"env in (a,b", "'(' is not closed"},
		{"env in a,b)", "without '('"},
		{"env in ((a))", "nested"},
		{"env in ()", "set of values is empty"},
		{"env in (a,,b)", "empty value"},
		{"env in a", "parentheses"},
		{"env notin", "parentheses"},
		{"env > 3", "unexpected"},
		{"env prod", "unexpected"},
		{"=prod", "expected a label key"},
		{"!=prod", "expected a label key"},
		{"!", "label key"},
		{"-env=prod", "label key"},
		{"Ibu.dev/site=a", "prefix"},
		{"a/b/c=d", "label key"},
		{"env=prod value", "label value"},
		{"env=-prod", "label value"},
		{"env=" + strings.Repeat("x", 64), "label value"},
		{strings.Repeat("k", 64) + "=v", "label key"},
		{"env in (a b)", "label value"},
	}
	for _, c := range cases {
		sel, err := parseSelector(c.in)
		if err == nil {
			t.Errorf("%q: want an error mentioning %q, got %+v", c.in, c.want, sel)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "invalid selector") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %q, want one line mentioning %q", c.in, err, c.want)
		}
	}
}

func TestSelectorMatches(t *testing.T) {
	labels := map[string]string{"env": "prod", "region": "eu", "gpu": ""}
	cases := []struct {
		sel  string
		want bool
	}{
		{"env=prod", true},
		{"env=dev", false},
		{"env!=dev", true},
		{"env!=prod", false},
		{"missing!=x", true}, // absent labels satisfy != and notin
		{"region in (eu,us)", true},
		{"region in (us)", false},
		{"region notin (us)", true},
		{"missing notin (us)", true},
		{"missing in (us)", false},
		{"gpu", true},
		{"gpu=", true},
		{"!gpu", false},
		{"!missing", true},
		{"missing", false},
		{"env=prod,region in (eu),!missing", true},
		{"env=prod,region in (us)", false},
	}
	for _, c := range cases {
		sel, err := parseSelector(c.sel)
		if err != nil {
			t.Fatalf("%q: %v", c.sel, err)
		}
		if got := sel.Matches(labels); got != c.want {
			t.Errorf("%q on %v: got %v, want %v", c.sel, labels, got, c.want)
		}
	}
}
