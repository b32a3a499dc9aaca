package planner

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
)

const (
	prep     = stages.ActionPrep
	upgrade  = stages.ActionUpgrade
	finalize = stages.ActionFinalize
	rollback = stages.ActionRollback
	abort    = stages.ActionAbort
	aof      = stages.ActionAbortOnFailure
)

func validRequest() events.PlanCreateRequested {
	r := request([]string{"sno-01", "sno-02"}, step(5, prep), step(2, upgrade, finalize))
	r.Canaries = []string{"sno-01"}
	r.FailurePolicy = &events.FailurePolicy{MaxFailures: "10%", OnBreach: events.BreachPause}
	r.MaintenanceWindows = []events.MaintenanceWindow{{Days: []events.Weekday{events.Saturday}, Start: "22:00", End: "04:00", TimeZone: "Europe/Paris"}}
	return r
}

func TestValidateAcceptsGoodPlans(t *testing.T) {
	cases := map[string]func(*events.PlanCreateRequested){
		"the valid request": func(*events.PlanCreateRequested) {},
		"prep only":         func(r *events.PlanCreateRequested) { r.Steps = []events.PlanStep{step(1, prep)} },
		"one step":          func(r *events.PlanCreateRequested) { r.Steps = []events.PlanStep{step(1, prep, upgrade, finalize)} },
		"TALM's automatic flow": func(r *events.PlanCreateRequested) {
			r.Steps = []events.PlanStep{step(9, prep), step(9, aof), step(3, upgrade), step(9, aof), step(9, finalize)}
		},
		"aof as a step's last action": func(r *events.PlanCreateRequested) {
			r.Steps = []events.PlanStep{step(9, prep, aof), step(3, upgrade, aof), step(9, finalize)}
		},
		"rollback then finalize": func(r *events.PlanCreateRequested) {
			r.Steps = []events.PlanStep{step(9, prep), step(3, upgrade), step(3, rollback, finalize)}
		},
		"prep then abort": func(r *events.PlanCreateRequested) { r.Steps = []events.PlanStep{step(9, prep), step(9, abort)} },
		"selector only": func(r *events.PlanCreateRequested) {
			r.Clusters = events.ClusterSelection{Selector: &events.LabelSelector{MatchLabels: map[string]string{"ring": "1"}}}
		},
		"count policy": func(r *events.PlanCreateRequested) { r.FailurePolicy.MaxFailures = "0" },
		"100%":         func(r *events.PlanCreateRequested) { r.FailurePolicy.MaxFailures = "100%" },
		"same-day window": func(r *events.PlanCreateRequested) {
			r.MaintenanceWindows[0].Start, r.MaintenanceWindows[0].End = "01:00", "05:00"
		},
		"timeout":           func(r *events.PlanCreateRequested) { r.Steps[0].RolloutStrategy.Timeout = events.Duration(time.Hour) },
		"no canary, policy": func(r *events.PlanCreateRequested) { r.Canaries = nil; r.FailurePolicy = nil },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			r := validRequest()
			mutate(&r)
			if err := Validate(r); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestValidateReasons(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*events.PlanCreateRequested)
		code   string
		text   string // in the message
	}{
		{"plan id", func(r *events.PlanCreateRequested) { r.PlanID = "Spring Rollout" }, CodeInvalidPlanID, "planId"},
		{"seed image", func(r *events.PlanCreateRequested) { r.SeedImage = " " }, CodeMissingSeedImage, "seedImage"},
		{"seed version", func(r *events.PlanCreateRequested) { r.SeedVersion = "" }, CodeMissingSeedVersion, "seedVersion"},
		{"no selection", func(r *events.PlanCreateRequested) { r.Clusters = events.ClusterSelection{}; r.Canaries = nil }, CodeNoClusterSelection, "selector or clusterIds"},
		{"empty selector", func(r *events.PlanCreateRequested) { r.Clusters.Selector = &events.LabelSelector{} }, CodeEmptySelector, "whole fleet"},
		{"In without values", func(r *events.PlanCreateRequested) {
			r.Clusters.Selector = &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{{Key: "site", Operator: events.SelectorIn}}}
		}, CodeInvalidSelector, "needs values"},
		{"Exists with values", func(r *events.PlanCreateRequested) {
			r.Clusters.Selector = &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{{Key: "site", Operator: events.SelectorExists, Values: []string{"x"}}}}
		}, CodeInvalidSelector, "takes no values"},
		{"unknown operator", func(r *events.PlanCreateRequested) {
			r.Clusters.Selector = &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{{Key: "site", Operator: "Gt", Values: []string{"1"}}}}
		}, CodeInvalidSelector, "unknown operator"},
		{"duplicate cluster", func(r *events.PlanCreateRequested) { r.Clusters.ClusterIDs = []string{"sno-01", "sno-01"} }, CodeDuplicateCluster, "sno-01"},
		{"duplicate canary", func(r *events.PlanCreateRequested) { r.Canaries = []string{"sno-01", "sno-01"} }, CodeDuplicateCanary, "sno-01"},
		{"canary not selectable", func(r *events.PlanCreateRequested) { r.Canaries = []string{"sno-09"} }, CodeCanaryNotSelectable, "sno-09"},
		{"no steps", func(r *events.PlanCreateRequested) { r.Steps = nil }, CodeNoSteps, "at least one step"},
		{"empty step", func(r *events.PlanCreateRequested) { r.Steps = append(r.Steps, step(1)) }, CodeEmptyStep, "steps[2]"},
		{"unknown action", func(r *events.PlanCreateRequested) { r.Steps[1].Actions[1] = "FinalizeUpgrade" }, CodeUnknownAction, "steps[1].actions[1]"},
		{"duplicate action", func(r *events.PlanCreateRequested) { r.Steps[1].Actions = []stages.Action{prep} }, CodeDuplicateAction, "more than once"},
		{"upgrade before prep", func(r *events.PlanCreateRequested) {
			r.Steps[0].Actions = []stages.Action{upgrade}
			r.Steps[1].Actions = []stages.Action{prep}
		}, CodeActionOrder, "Upgrade needs a Prep"},
		{"aof not last", func(r *events.PlanCreateRequested) { r.Steps[1].Actions = []stages.Action{aof, upgrade} }, CodeAbortOnFailurePosition, "last action"},
		{"max concurrency", func(r *events.PlanCreateRequested) { r.Steps[1].RolloutStrategy.MaxConcurrency = 0 }, CodeInvalidMaxConcurrency, "steps[1]"},
		{"negative timeout", func(r *events.PlanCreateRequested) {
			r.Steps[0].RolloutStrategy.Timeout = events.Duration(-time.Minute)
		}, CodeNegativeTimeout, "steps[0]"},
		{"max failures word", func(r *events.PlanCreateRequested) { r.FailurePolicy.MaxFailures = "three" }, CodeInvalidMaxFailures, "three"},
		{"max failures negative", func(r *events.PlanCreateRequested) { r.FailurePolicy.MaxFailures = "-1" }, CodeInvalidMaxFailures, "-1"},
		{"max failures over 100%", func(r *events.PlanCreateRequested) { r.FailurePolicy.MaxFailures = "120%" }, CodeInvalidMaxFailures, "0-100%"},
		{"max failures empty", func(r *events.PlanCreateRequested) { r.FailurePolicy.MaxFailures = "" }, CodeInvalidMaxFailures, "empty"},
		{"on breach missing", func(r *events.PlanCreateRequested) { r.FailurePolicy.OnBreach = "" }, CodeMissingOnBreach, "onBreach"},
		{"on breach unknown", func(r *events.PlanCreateRequested) { r.FailurePolicy.OnBreach = "Retry" }, CodeUnknownOnBreach, "Retry"},
		{"window no days", func(r *events.PlanCreateRequested) { r.MaintenanceWindows[0].Days = nil }, CodeWindowNoDays, "maintenanceWindows[0]"},
		{"window bad day", func(r *events.PlanCreateRequested) { r.MaintenanceWindows[0].Days = []events.Weekday{"Saturday"} }, CodeWindowBadDay, "Saturday"},
		{"window bad start", func(r *events.PlanCreateRequested) { r.MaintenanceWindows[0].Start = "24:00" }, CodeWindowBadTime, "start"},
		{"window bad end", func(r *events.PlanCreateRequested) { r.MaintenanceWindows[0].End = "4:00" }, CodeWindowBadTime, "end"},
		{"window unknown zone", func(r *events.PlanCreateRequested) { r.MaintenanceWindows[0].TimeZone = "Europe/Atlantis" }, CodeWindowUnknownTimeZone, "Europe/Atlantis"},
		{"window no zone", func(r *events.PlanCreateRequested) { r.MaintenanceWindows[0].TimeZone = "" }, CodeWindowUnknownTimeZone, "IANA"},
		{"window never opens", func(r *events.PlanCreateRequested) { r.MaintenanceWindows[0].End = "22:00" }, CodeWindowNeverOpens, "never opens"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := validRequest()
			c.mutate(&r)
			err := Validate(r)
			var ip *InvalidPlanError
			if !errors.As(err, &ip) || !errors.Is(err, ErrInvalidPlan) {
				t.Fatalf("Validate = %v, want an InvalidPlanError", err)
			}
			if !slices.Contains(ip.Codes(), c.code) {
				t.Fatalf("codes %v, want %s", ip.Codes(), c.code)
			}
			for _, r := range ip.Reasons {
				if r.Code == c.code && !strings.Contains(r.Message, c.text) {
					t.Errorf("%s message %q does not say %q", r.Code, r.Message, c.text)
				}
			}
		})
	}
}

func TestValidateActionOrder(t *testing.T) {
	cases := []struct {
		steps [][]stages.Action
		codes []string // nil: valid
	}{
		{[][]stages.Action{{prep}, {upgrade}, {finalize}}, nil},
		{[][]stages.Action{{prep, upgrade, finalize}}, nil},
		{[][]stages.Action{{prep}, {upgrade}, {rollback}, {finalize}}, nil},
		{[][]stages.Action{{prep}, {abort}}, nil},
		{[][]stages.Action{{prep, abort}}, nil},
		{[][]stages.Action{{prep}, {aof}, {upgrade, aof}, {finalize, aof}}, nil},
		{[][]stages.Action{{upgrade}}, []string{CodeActionOrder}},                            // no Prep
		{[][]stages.Action{{upgrade, prep}}, []string{CodeActionOrder}},                      // Prep after Upgrade in the step
		{[][]stages.Action{{prep}, {finalize}}, []string{CodeActionOrder}},                   // Finalize without Upgrade
		{[][]stages.Action{{prep}, {rollback}}, []string{CodeActionOrder}},                   // Rollback without Upgrade
		{[][]stages.Action{{prep, upgrade, finalize, rollback}}, []string{CodeActionOrder}},  // Rollback after Finalize
		{[][]stages.Action{{abort}}, []string{CodeActionOrder}},                              // Abort without Prep
		{[][]stages.Action{{prep}, {upgrade}, {abort}}, []string{CodeActionOrder}},           // Abort after Upgrade
		{[][]stages.Action{{prep}, {abort}, {upgrade}}, []string{CodeActionOrder}},           // Upgrade after Abort
		{[][]stages.Action{{prep}, {prep}}, []string{CodeDuplicateAction}},                   // twice
		{[][]stages.Action{{prep, upgrade, upgrade}}, []string{CodeDuplicateAction}},         // twice in a step
		{[][]stages.Action{{aof}, {prep}}, []string{CodeActionOrder}},                        // nothing to abort yet
		{[][]stages.Action{{prep, aof, upgrade}}, []string{CodeAbortOnFailurePosition}},      // not last
		{[][]stages.Action{{prep, aof, aof}}, []string{CodeAbortOnFailurePosition}},          // twice in a step
		{[][]stages.Action{{prep, "Pivot"}}, []string{CodeUnknownAction}},                    // unknown
		{[][]stages.Action{{finalize}, {abort}}, []string{CodeActionOrder, CodeActionOrder}}, // both
		{[][]stages.Action{{prep}, {}, {upgrade}}, []string{CodeEmptyStep}},                  // empty step
		{[][]stages.Action{{prep}, {upgrade, abort, rollback}}, []string{CodeActionOrder}},   // Abort after Upgrade
		{[][]stages.Action{{prep}, {rollback, upgrade}}, []string{CodeActionOrder}},          // Rollback before Upgrade
		{[][]stages.Action{{prep}, {upgrade}, {finalize}, {finalize}}, []string{CodeDuplicateAction}},
	}
	for _, c := range cases {
		r := validRequest()
		r.Steps = nil
		for _, acts := range c.steps {
			r.Steps = append(r.Steps, step(1, acts...))
		}
		err := Validate(r)
		var got []string
		var ip *InvalidPlanError
		if errors.As(err, &ip) {
			got = ip.Codes()
		} else if err != nil {
			t.Fatalf("%v: %v", c.steps, err)
		}
		if !slices.Equal(got, c.codes) {
			t.Errorf("%v: codes %v, want %v (%v)", c.steps, got, c.codes, err)
		}
	}
}

func TestValidateListsEveryProblemAtOnce(t *testing.T) {
	r := events.PlanCreateRequested{
		PlanID:   "p",
		Clusters: events.ClusterSelection{},
		Canaries: []string{"sno-01"},
		Steps: []events.PlanStep{
			{Actions: []stages.Action{upgrade}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 0, Timeout: events.Duration(-1)}},
			{},
		},
		FailurePolicy:      &events.FailurePolicy{MaxFailures: "ten"},
		MaintenanceWindows: []events.MaintenanceWindow{{Start: "9:00", End: "10:00", TimeZone: "UTC"}, {Days: []events.Weekday{events.Monday}, Start: "10:00", End: "10:00", TimeZone: "Mars/Olympus"}},
	}
	err := Validate(r)
	var ip *InvalidPlanError
	if !errors.As(err, &ip) {
		t.Fatalf("Validate = %v", err)
	}
	want := []string{CodeMissingSeedImage, CodeMissingSeedVersion, CodeNoClusterSelection, CodeCanaryNotSelectable,
		CodeInvalidMaxConcurrency, CodeNegativeTimeout, CodeActionOrder, CodeInvalidMaxConcurrency, CodeEmptyStep,
		CodeInvalidMaxFailures, CodeMissingOnBreach, CodeWindowNoDays, CodeWindowUnknownTimeZone}
	if !slices.Equal(ip.Codes(), want) {
		t.Errorf("codes\n got %v\nwant %v", ip.Codes(), want)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "invalid plan: MissingSeedImage: ") || strings.Count(msg, "; ") != len(want)-1 {
		t.Errorf("error text %q", msg)
	}
}
