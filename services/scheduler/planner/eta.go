package planner

import (
	"container/heap"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

// Estimates are the expected durations of the actions; a zero field means
// the default (DefaultEstimates).
type Estimates struct {
	Prep, Upgrade, Finalize, Rollback, Abort time.Duration
}

// DefaultEstimates are the durations assumed before any is observed.
func DefaultEstimates() Estimates {
	return Estimates{Prep: 20 * time.Minute, Upgrade: 15 * time.Minute, Finalize: 2 * time.Minute,
		Rollback: 10 * time.Minute, Abort: 2 * time.Minute}
}

// For is the expected duration of an action (AbortOnFailure: none, as a
// cluster that did not fail passes it at once).
func (e Estimates) For(a stages.Action) time.Duration {
	d := DefaultEstimates()
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	switch a {
	case stages.ActionPrep:
		return pick(e.Prep, d.Prep)
	case stages.ActionUpgrade:
		return pick(e.Upgrade, d.Upgrade)
	case stages.ActionFinalize:
		return pick(e.Finalize, d.Finalize)
	case stages.ActionRollback:
		return pick(e.Rollback, d.Rollback)
	case stages.ActionAbort:
		return pick(e.Abort, d.Abort)
	}
	return 0
}

// Observed returns the estimates with the observed mean durations (a
// plan's StageDurations, keyed by action) in place of the assumed ones.
func (e Estimates) Observed(stats map[string]state.StageStat) Estimates {
	set := func(f *time.Duration, a stages.Action) {
		if m := stats[string(a)].Mean(); m > 0 {
			*f = m
		}
	}
	set(&e.Prep, stages.ActionPrep)
	set(&e.Upgrade, stages.ActionUpgrade)
	set(&e.Finalize, stages.ActionFinalize)
	set(&e.Rollback, stages.ActionRollback)
	set(&e.Abort, stages.ActionAbort)
	return e
}

// stepDuration is one cluster's expected time for the actions of a step
// from action index from on.
func (e Estimates) stepDuration(st events.PlanStep, from int) time.Duration {
	var d time.Duration
	for _, a := range st.Actions[from:] {
		d += e.For(a)
	}
	return d
}

// stepEstimate is how long a step takes: the canaries one after the other,
// then the others through a sliding window of width slots, each job going
// to the first slot that frees up, in order (list scheduling). For n equal
// jobs that is ceil(n/slots) jobs long.
func stepEstimate(canaries, others []time.Duration, slots int) time.Duration {
	var total time.Duration
	for _, d := range canaries {
		total += d
	}
	return total + makespan(others, slots)
}

func makespan(jobs []time.Duration, slots int) time.Duration {
	if len(jobs) == 0 {
		return 0
	}
	slots = max(1, min(slots, len(jobs)))
	h := make(durHeap, slots)
	var end time.Duration
	for _, j := range jobs {
		t := h[0] + j
		h[0] = t
		heap.Fix(&h, 0)
		end = max(end, t)
	}
	return end
}

type durHeap []time.Duration

func (h durHeap) Len() int           { return len(h) }
func (h durHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h durHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *durHeap) Push(x any)        { *h = append(*h, x.(time.Duration)) }
func (h *durHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// eta estimates the time to the end of a Pending or Running plan (nil in
// any other phase: paused or aborting it depends on people, finished it is
// over). The formula: for each step from the current one, every cluster
// still on course (not failed, skipped or aborted) brings the expected
// durations of the actions it has left in that step: all of them in later
// steps; in the current step those after its current action, plus the
// action in flight minus the time it already ran (not below zero). Each
// step takes the canaries' work one after the other plus the others' work
// list-scheduled over maxConcurrency slots (stepEstimate), and the ETA is
// the sum over the steps, as the steps are a barrier. Durations are the
// plan's observed mean per action (StageDurations), else DefaultEstimates.
// Waiting for maintenance windows and cleanups are not counted.
func eta(p state.Plan, now time.Time) *int64 {
	if p.Phase != events.PlanPending && p.Phase != events.PlanRunning {
		return nil
	}
	if len(p.Spec.Steps) == 0 || p.CurrentStep >= len(p.Spec.Steps) {
		return nil
	}
	est := Estimates{}.Observed(p.StageDurations)
	var total time.Duration
	for s := p.CurrentStep; s < len(p.Spec.Steps); s++ {
		st := p.Spec.Steps[s]
		var canaries, others []time.Duration
		for _, c := range p.Clusters {
			var d time.Duration
			switch {
			case c.State == state.ClusterPending || c.State == state.ClusterInProgress || c.State == state.ClusterSucceeded:
			default:
				continue // off course
			}
			switch {
			case c.Step > s:
				continue
			case c.Step < s:
				d = est.stepDuration(st, 0)
			case c.State == state.ClusterSucceeded:
				continue
			case c.State == state.ClusterInProgress:
				d = max(est.For(c.Action)-now.Sub(c.StartedAt), 0) + est.stepDuration(st, c.ActionIndex+1)
			default:
				d = est.stepDuration(st, c.ActionIndex)
			}
			if c.Canary {
				canaries = append(canaries, d)
			} else {
				others = append(others, d)
			}
		}
		total += stepEstimate(canaries, others, st.RolloutStrategy.MaxConcurrency)
	}
	v := int64(total.Round(time.Second) / time.Second)
	return &v
}
