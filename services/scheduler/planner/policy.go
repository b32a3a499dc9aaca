package planner

import (
	"fmt"
	"strings"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
)

// Plan reasons of the control requests.
const (
	ReasonPauseRequested = "PauseRequested"
	ReasonResumed        = "Resumed"
	ReasonAbortRequested = "AbortRequested"
)

// ControlError reasons.
const (
	ControlAlreadyPaused   = "AlreadyPaused"
	ControlNotPaused       = "NotPaused"
	ControlAborting        = "Aborting"
	ControlAlreadyAborting = "AlreadyAborting"
	ControlPlanFinished    = "PlanFinished"
)

// AllowedFailures is how many clusters may fail before the policy acts:
// the count, or ceil(percentage × total / 100). ok is false without a
// (valid) policy.
func AllowedFailures(fp *events.FailurePolicy, total int) (n int, ok bool) {
	if fp == nil {
		return 0, false
	}
	v, percent, err := parseMaxFailures(fp.MaxFailures)
	if err != nil {
		return 0, false
	}
	if percent {
		return (v*total + 99) / 100, true
	}
	return v, true
}

// applyPolicy acts on the failures of this call. Failures count at once,
// when they happen, not when a batch ends. Once more clusters failed than
// the policy allows, each new failure triggers OnBreach again:
//   - Pause: phase Paused, reason FailureThresholdReached; clusters in
//     flight finish; Resume continues (and the next failure pauses again);
//   - Abort: phase Aborting (see runAbort);
//   - Rollback: phase Aborting in rollback mode: as Abort, and clusters
//     upgraded by this plan and not finalized roll back (then finalize the
//     rollback, back to Idle).
//
// A canary failure pauses the plan (reason CanaryFailed) whatever the
// policy, unless the policy's breach aborts or rolls back, which wins.
// Without a policy a failure only counts; the plan ends Failed.
func (e *engine) applyPolicy() {
	q := e.q
	if len(e.newFailures) == 0 || (q.Phase != events.PlanRunning && q.Phase != events.PlanPaused) {
		return
	}
	failures := q.Failures()
	allowed, hasPolicy := AllowedFailures(q.Spec.FailurePolicy, len(q.Clusters))
	breach := hasPolicy && failures > allowed
	var canaries []string
	for _, i := range e.newFailures {
		if c := q.Clusters[i]; c.Canary {
			canaries = append(canaries, fmt.Sprintf("%s (%s: %s)", c.ClusterID, c.Reason, c.Message))
		}
	}
	breachMsg := ""
	if breach {
		breachMsg = fmt.Sprintf("%d clusters failed, more than the %d allowed (maxFailures %s)", failures, allowed, q.Spec.FailurePolicy.MaxFailures)
	}
	switch {
	case breach && (q.Spec.FailurePolicy.OnBreach == events.BreachAbort || q.Spec.FailurePolicy.OnBreach == events.BreachRollback):
		q.Phase, q.AbortMode = events.PlanAborting, q.Spec.FailurePolicy.OnBreach
		q.Reason = ReasonFailureThresholdReached
		q.Message = breachMsg + ": " + strings.ToLower(string(q.AbortMode)) + "ing the plan"
	case len(canaries) > 0:
		q.Phase, q.Reason = events.PlanPaused, ReasonCanaryFailed
		q.Message = fmt.Sprintf("canary %s failed: paused before the other clusters start; resume to go on or abort", strings.Join(canaries, ", "))
	case breach:
		q.Phase, q.Reason, q.Message = events.PlanPaused, ReasonFailureThresholdReached, breachMsg+": paused; resume to go on or abort"
	}
}

func notAllowed(p state.Plan, op, reason, format string, args ...any) error {
	return &ControlError{PlanID: p.Spec.PlanID, Op: op, Phase: p.Phase, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func finished(p state.Plan, op string) error {
	return notAllowed(p, op, ControlPlanFinished, "the plan has finished")
}

// control applies a phase change and refreshes what depends on it.
func control(p state.Plan, phase events.PlanPhase, reason, msg string, now time.Time) state.Plan {
	now = now.Round(0).UTC()
	q := clonePlan(p)
	q.Phase, q.Reason, q.Message, q.UpdatedAt = phase, reason, msg, now
	if phase == events.PlanRunning && q.StartedAt.IsZero() {
		q.StartedAt = now
	}
	q.Recount()
	q.ETASeconds = eta(q, now)
	return q
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

// Pause stops a Pending or Running plan from starting anything new;
// clusters in flight finish. reason is the requester's free text.
func Pause(p state.Plan, reason string, now time.Time) (state.Plan, error) {
	switch p.Phase {
	case events.PlanPending, events.PlanRunning:
		return control(p, events.PlanPaused, ReasonPauseRequested, orDefault(reason, "paused on request"), now), nil
	case events.PlanPaused:
		return p, notAllowed(p, "pause", ControlAlreadyPaused, "the plan is already paused")
	case events.PlanAborting:
		return p, notAllowed(p, "pause", ControlAborting, "the plan is aborting")
	}
	return p, finished(p, "pause")
}

// Resume continues a Paused plan.
func Resume(p state.Plan, reason string, now time.Time) (state.Plan, error) {
	switch p.Phase {
	case events.PlanPaused:
		return control(p, events.PlanRunning, ReasonResumed, orDefault(reason, "resumed on request"), now), nil
	case events.PlanPending, events.PlanRunning, events.PlanAborting:
		return p, notAllowed(p, "resume", ControlNotPaused, "only a paused plan resumes")
	}
	return p, finished(p, "resume")
}

// Abort aborts a Pending, Running or Paused plan: nothing new starts, and
// its clusters go back to Idle where they can (see runAbort).
func Abort(p state.Plan, reason string, now time.Time) (state.Plan, error) {
	switch p.Phase {
	case events.PlanPending, events.PlanRunning, events.PlanPaused:
		q := control(p, events.PlanAborting, ReasonAbortRequested, orDefault(reason, "aborted on request"), now)
		q.AbortMode = events.BreachAbort
		return q, nil
	case events.PlanAborting:
		return p, notAllowed(p, "abort", ControlAlreadyAborting, "the plan is already aborting")
	}
	return p, finished(p, "abort")
}
