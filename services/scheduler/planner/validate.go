package planner

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
)

// The codes of Validate's reasons.
const (
	CodeInvalidPlanID          = "InvalidPlanID"
	CodeMissingSeedImage       = "MissingSeedImage"
	CodeMissingSeedVersion     = "MissingSeedVersion"
	CodeNoClusterSelection     = "NoClusterSelection"
	CodeEmptySelector          = "EmptySelector"
	CodeInvalidSelector        = "InvalidSelector"
	CodeDuplicateCluster       = "DuplicateCluster"
	CodeDuplicateCanary        = "DuplicateCanary"
	CodeCanaryNotSelectable    = "CanaryNotSelectable"
	CodeNoSteps                = "NoSteps"
	CodeEmptyStep              = "EmptyStep"
	CodeUnknownAction          = "UnknownAction"
	CodeDuplicateAction        = "DuplicateAction"
	CodeActionOrder            = "ActionOrder"
	CodeAbortOnFailurePosition = "AbortOnFailurePosition"
	CodeInvalidMaxConcurrency  = "InvalidMaxConcurrency"
	CodeNegativeTimeout        = "NegativeTimeout"
	CodeInvalidMaxFailures     = "InvalidMaxFailures"
	CodeMissingOnBreach        = "MissingOnBreach"
	CodeUnknownOnBreach        = "UnknownOnBreach"
	CodeWindowNoDays           = "WindowNoDays"
	CodeWindowBadDay           = "WindowBadDay"
	CodeWindowBadTime          = "WindowBadTime"
	CodeWindowUnknownTimeZone  = "WindowUnknownTimeZone"
	CodeWindowNeverOpens       = "WindowNeverOpens"
)

// Validate checks a plan request on its own (Resolve checks it against the
// fleet) and returns an *InvalidPlanError listing every problem, or nil.
//
// The actions of all steps, in order, are what every cluster goes through,
// so their order is checked as one sequence: Prep first; Upgrade after a
// Prep and not after an Abort; Finalize after an Upgrade or a Rollback;
// Rollback after an Upgrade and not after a Finalize; Abort after a Prep
// and before any Upgrade; no action twice. AbortOnFailure may appear in
// several steps, each time as the last action of its step (alone, it makes
// a marker step) and after a Prep; see Reconcile for what it does.
func Validate(req events.PlanCreateRequested) error {
	var rs reasons
	if err := events.ValidID(req.PlanID); err != nil {
		rs.add(CodeInvalidPlanID, "planId: %v", err)
	}
	if strings.TrimSpace(req.SeedImage) == "" {
		rs.add(CodeMissingSeedImage, "seedImage is empty")
	}
	if strings.TrimSpace(req.SeedVersion) == "" {
		rs.add(CodeMissingSeedVersion, "seedVersion is empty")
	}
	validateSelection(req, &rs)
	validateSteps(req.Steps, &rs)
	validatePolicy(req.FailurePolicy, &rs)
	for i, w := range req.MaintenanceWindows {
		if _, err := parseWindow(w); err != nil {
			we := err.(*windowError)
			rs.add(we.code, "maintenanceWindows[%d]: %s", i, we.msg)
		}
	}
	if len(rs) > 0 {
		return &InvalidPlanError{Reasons: rs}
	}
	return nil
}

func selectorEmpty(s *events.LabelSelector) bool { return s.Empty() }

func validateSelection(req events.PlanCreateRequested, rs *reasons) {
	sel := req.Clusters.Selector
	if sel != nil && selectorEmpty(sel) {
		rs.add(CodeEmptySelector, "clusters.selector is empty: an empty selector selects nothing, not the whole fleet")
	}
	if selectorEmpty(sel) && len(req.Clusters.ClusterIDs) == 0 {
		rs.add(CodeNoClusterSelection, "clusters: give a selector or clusterIds (or both)")
	}
	if sel != nil {
		for i, e := range sel.MatchExpressions {
			if msg := requirementProblem(e); msg != "" {
				rs.add(CodeInvalidSelector, "clusters.selector.matchExpressions[%d]: %s", i, msg)
			}
		}
	}
	if d := duplicates(req.Clusters.ClusterIDs); len(d) > 0 {
		rs.add(CodeDuplicateCluster, "clusters.clusterIds lists %s more than once", strings.Join(d, ", "))
	}
	if d := duplicates(req.Canaries); len(d) > 0 {
		rs.add(CodeDuplicateCanary, "canaries lists %s more than once", strings.Join(d, ", "))
	}
	if selectorEmpty(sel) {
		var missing []string
		for _, c := range req.Canaries {
			if !slices.Contains(req.Clusters.ClusterIDs, c) && !slices.Contains(missing, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			rs.add(CodeCanaryNotSelectable, "canaries %s are not in clusters.clusterIds and there is no selector: a canary must be one of the plan's clusters", strings.Join(missing, ", "))
		}
	}
}

func requirementProblem(e events.LabelSelectorRequirement) string {
	if e.Key == "" {
		return "key is empty"
	}
	switch e.Operator {
	case events.SelectorIn, events.SelectorNotIn:
		if len(e.Values) == 0 {
			return fmt.Sprintf("operator %s needs values", e.Operator)
		}
	case events.SelectorExists, events.SelectorDoesNotExist:
		if len(e.Values) > 0 {
			return fmt.Sprintf("operator %s takes no values", e.Operator)
		}
	default:
		return fmt.Sprintf("unknown operator %q (In, NotIn, Exists, DoesNotExist)", e.Operator)
	}
	return ""
}

func duplicates(ids []string) []string {
	seen := map[string]int{}
	var out []string
	for _, id := range ids {
		seen[id]++
		if seen[id] == 2 {
			out = append(out, id)
		}
	}
	return out
}

func validateSteps(steps []events.PlanStep, rs *reasons) {
	if len(steps) == 0 {
		rs.add(CodeNoSteps, "steps: a plan needs at least one step")
		return
	}
	seen := map[stages.Action]bool{}
	for i, st := range steps {
		if st.RolloutStrategy.MaxConcurrency < 1 {
			rs.add(CodeInvalidMaxConcurrency, "steps[%d].rolloutStrategy.maxConcurrency is %d, must be at least 1", i, st.RolloutStrategy.MaxConcurrency)
		}
		if st.RolloutStrategy.Timeout < 0 {
			rs.add(CodeNegativeTimeout, "steps[%d].rolloutStrategy.timeout is %s, must not be negative (0 means the default, %s)", i, st.RolloutStrategy.Timeout, DefaultStepTimeout)
		}
		if len(st.Actions) == 0 {
			rs.add(CodeEmptyStep, "steps[%d] has no actions", i)
		}
		for j, a := range st.Actions {
			at := fmt.Sprintf("steps[%d].actions[%d] (%s)", i, j, a)
			if a == stages.ActionAbortOnFailure {
				if j != len(st.Actions)-1 {
					rs.add(CodeAbortOnFailurePosition, "%s: AbortOnFailure must be the last action of its step", at)
				}
				if !seen[stages.ActionPrep] {
					rs.add(CodeActionOrder, "%s: AbortOnFailure needs a Prep before it (there is nothing to abort)", at)
				}
				continue
			}
			if !knownAction(a) {
				rs.add(CodeUnknownAction, "%s: unknown action (Prep, Upgrade, Finalize, Rollback, Abort, AbortOnFailure)", at)
				continue
			}
			if seen[a] {
				rs.add(CodeDuplicateAction, "%s: %s appears more than once in the plan", at, a)
				continue
			}
			if msg := orderProblem(a, seen); msg != "" {
				rs.add(CodeActionOrder, "%s: %s", at, msg)
			}
			seen[a] = true
		}
	}
}

func knownAction(a stages.Action) bool {
	return slices.Contains(stages.PlanActions(), a)
}

// orderProblem says why action a may not follow the actions seen so far.
func orderProblem(a stages.Action, seen map[stages.Action]bool) string {
	switch a {
	case stages.ActionUpgrade:
		if !seen[stages.ActionPrep] {
			return "Upgrade needs a Prep before it"
		}
		if seen[stages.ActionAbort] {
			return "Upgrade after Abort: the Prep was undone"
		}
	case stages.ActionFinalize:
		if !seen[stages.ActionUpgrade] && !seen[stages.ActionRollback] {
			return "Finalize only after an Upgrade or a Rollback"
		}
	case stages.ActionRollback:
		if !seen[stages.ActionUpgrade] {
			return "Rollback only after an Upgrade"
		}
		if seen[stages.ActionFinalize] {
			return "Rollback after Finalize: the old stateroot is gone"
		}
	case stages.ActionAbort:
		if !seen[stages.ActionPrep] {
			return "Abort only after a Prep"
		}
		if seen[stages.ActionUpgrade] {
			return "Abort only before an Upgrade completes (roll back instead)"
		}
	}
	return ""
}

func validatePolicy(fp *events.FailurePolicy, rs *reasons) {
	if fp == nil {
		return
	}
	if _, _, err := parseMaxFailures(fp.MaxFailures); err != nil {
		rs.add(CodeInvalidMaxFailures, "failurePolicy.maxFailures: %v", err)
	}
	switch fp.OnBreach {
	case events.BreachPause, events.BreachAbort, events.BreachRollback:
	case "":
		rs.add(CodeMissingOnBreach, "failurePolicy.onBreach is missing: say what to do when maxFailures is exceeded (Pause, Abort or Rollback)")
	default:
		rs.add(CodeUnknownOnBreach, "failurePolicy.onBreach %q is not Pause, Abort or Rollback", fp.OnBreach)
	}
}

// parseMaxFailures reads "3" (a count) or "10%" (a share, 0-100).
func parseMaxFailures(s string) (n int, percent bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false, fmt.Errorf("empty: give a count such as \"3\" or a share such as \"10%%\"")
	}
	num, percent := strings.CutSuffix(s, "%")
	n, err = strconv.Atoi(num)
	if err != nil || n < 0 || strings.HasPrefix(num, "+") {
		return 0, false, fmt.Errorf("%q is not a non-negative integer or a percentage such as \"10%%\"", s)
	}
	if percent && n > 100 {
		return 0, false, fmt.Errorf("%q: a percentage is 0-100%%", s)
	}
	return n, percent, nil
}
