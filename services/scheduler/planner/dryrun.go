package planner

import (
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
)

// DryRunResult is what a plan would do, started now, with nothing changed.
type DryRunResult struct {
	// Clusters in the plan's order: canaries first, then the others sorted.
	Clusters []string `json:"clusters"`
	// Waves is how the first step's sliding window would start the
	// clusters: each canary alone, then groups of maxConcurrency. It is an
	// estimate: the window refills as each cluster finishes, so clusters
	// that finish early let the next start before their whole group is done.
	Waves [][]string `json:"waves"`
	// Steps gives each step's waves and expected duration.
	Steps []DryRunStep `json:"steps"`
	// EstimatedDuration is the sum of the steps' durations, the steps being
	// a barrier (see eta for the formula); maintenance windows not counted.
	EstimatedDuration time.Duration `json:"estimatedDuration"`
}

// DryRunStep is one step of a dry run.
type DryRunStep struct {
	Actions           []stages.Action `json:"actions"`
	MaxConcurrency    int             `json:"maxConcurrency"`
	Waves             [][]string      `json:"waves"`
	EstimatedDuration time.Duration   `json:"estimatedDuration"`
}

// DryRun describes the plan for the resolved clusters without changing
// anything, with est (zero fields: the defaults) for the durations.
func DryRun(req events.PlanCreateRequested, clusterIDs []string, est Estimates) DryRunResult {
	ids := orderClusters(req.Canaries, clusterIDs)
	res := DryRunResult{Clusters: ids}
	canary := map[string]bool{}
	for _, c := range req.Canaries {
		canary[c] = true
	}
	for _, st := range req.Steps {
		ds := DryRunStep{Actions: st.Actions, MaxConcurrency: st.RolloutStrategy.MaxConcurrency}
		width := max(1, st.RolloutStrategy.MaxConcurrency)
		per := est.stepDuration(st, 0)
		var canaries, others []time.Duration
		var group []string
		for _, id := range ids {
			if canary[id] {
				ds.Waves = append(ds.Waves, []string{id})
				canaries = append(canaries, per)
				continue
			}
			others = append(others, per)
			group = append(group, id)
			if len(group) == width {
				ds.Waves = append(ds.Waves, group)
				group = nil
			}
		}
		if len(group) > 0 {
			ds.Waves = append(ds.Waves, group)
		}
		ds.EstimatedDuration = stepEstimate(canaries, others, width)
		res.EstimatedDuration += ds.EstimatedDuration
		res.Steps = append(res.Steps, ds)
	}
	if len(res.Steps) > 0 {
		res.Waves = res.Steps[0].Waves
	}
	return res
}
