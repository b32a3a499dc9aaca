package planner

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

// Cluster reasons the planner sets on a PlanCluster.
const (
	ReasonTimedOut          = "TimedOut"
	ReasonInvalidTransition = stages.ReasonInvalidTransition
	ReasonRolledBack        = "RolledBack" // the agent rolled an Upgrade back by itself
	ReasonNotPivoted        = "NotPivoted"
	ReasonPlanAborted       = "PlanAborted"
	ReasonWaitingForWindow  = "WaitingForWindow"
)

// Plan reasons the planner sets.
const (
	ReasonStepInProgress          = "StepInProgress"
	ReasonAllSucceeded            = "AllSucceeded"
	ReasonClustersFailed          = "ClustersFailed"
	ReasonCanaryFailed            = "CanaryFailed"
	ReasonFailureThresholdReached = "FailureThresholdReached"
	ReasonInvalidPlan             = "InvalidPlan"
)

// Reconcile computes a plan's next state from its clusters' statuses
// (IBU_STATUS, by cluster id) and their current IBU_DESIRED generations (0
// or absent: none), and the desired stages to write. It is pure and
// idempotent: the same inputs give the same plan and writes, and a plan
// with nothing to change is returned as it was (UpdatedAt and the ETA move
// only with a change), so the service can skip storing it.
//
// The service stores the returned plan first (compare-and-set) and only
// then writes the desired stages. The writes are every busy cluster whose
// recorded generation is above its IBU_DESIRED generation: the new starts,
// and the writes a crash between the two steps lost, with the same
// generation. A new generation is max(desired, recorded, the status's
// observed generation) + 1, so it always supersedes what the agent saw.
//
// Steps are a fleet-wide barrier: no cluster starts step k+1 before every
// cluster finished step k (succeeded, failed or timed out). A step is a
// phase of the rollout that operators schedule and watch as a whole (all
// Preps outside the maintenance window, then the Upgrades inside it), an
// AbortOnFailure step must see every failure of the steps before it, and
// the plan's CurrentStep means one thing. Within a step the window slides:
// at most maxConcurrency clusters are busy, and a freed slot is refilled
// in the same call, clusters already in the step before fresh ones.
//
// Canaries go first in every step, one at a time; the others start when
// every canary of the step succeeded. A canary failure (or timeout) pauses
// the plan with reason CanaryFailed (unless the failure policy aborts it):
// nothing else has started in that step, the operator can look, then abort
// (which returns the canary to Idle) or resume (the others then start).
//
// A cluster's action completes when its status, at or after the recorded
// generation, shows the action's end position: Prep Completed, Upgrade
// Completed after the pivot, Idle Completed (Finalize, Abort), Rollback
// Completed on the old stateroot. A Failed status fails the cluster at
// once (reason <Action>Failed); a refused move (InvalidTransition
// condition, position unchanged) fails it with InvalidTransition; a
// Rollback while the action was Upgrade (the agent's auto-rollback) fails
// it with RolledBack. A cluster busy in a step longer than the step's
// timeout (default 2h; time waiting for a maintenance window between
// actions is not counted) is TimedOut, a failure; the planner no longer
// waits for it and touches it again only to clean up.
//
// AbortOnFailure, the last action of a step: a cluster that failed or
// timed out earlier in the plan (in an earlier step or earlier in this
// step) and was not cleaned up yet is returned to Idle: desired Idle,
// which the agent runs as an abort (Prep or pre-pivot Upgrade), a retried
// abort, or the finalization of its own auto-rollback. A cluster that
// cannot go to Idle (a failed upgrade after the pivot that was not rolled
// back) is left as it is, with the reason. Cleanups share the step's
// window. Clusters that did not fail pass the marker at once.
//
// Maintenance windows gate only starting an Upgrade; an Upgrade in flight
// is never cut off, and a cluster waiting for a window stays Pending with
// the message "waiting for maintenance window (opens <time>)".
//
// See applyPolicy for the failure policy and runAbort for aborts.
func Reconcile(p state.Plan, statuses map[string]state.Status, desired map[string]int64, now time.Time) (state.Plan, []DesiredWrite) {
	if !p.IsActive() {
		return p, nil
	}
	now = now.Round(0).UTC()
	q := clonePlan(p)
	e := &engine{q: &q, statuses: statuses, desired: desired, now: now}
	if msg := structuralProblem(q); msg != "" {
		q.Phase, q.Reason, q.Message, q.FinishedAt = events.PlanFailed, ReasonInvalidPlan, msg, now
	} else {
		if q.Phase == events.PlanPending {
			q.Phase = events.PlanRunning
		}
		if q.Phase == events.PlanRunning && q.StartedAt.IsZero() {
			q.StartedAt = now
		}
		e.observe()
		e.applyPolicy()
		for range len(q.Spec.Steps) + 2 {
			progressed := false
			switch q.Phase {
			case events.PlanRunning:
				progressed = e.runStep()
			case events.PlanAborting:
				e.runAbort()
			}
			if !progressed {
				break
			}
		}
		e.describe()
	}
	q.Recount()
	before := p
	before.ETASeconds = q.ETASeconds
	if !reflect.DeepEqual(q, before) {
		q.UpdatedAt = now
		q.ETASeconds = eta(q, now)
	}
	return q, pendingWrites(q, desired)
}

// structuralProblem catches a stored plan that Validate would have
// refused, so that Reconcile never indexes out of range.
func structuralProblem(p state.Plan) string {
	if len(p.Spec.Steps) == 0 {
		return "the plan has no steps"
	}
	for i, st := range p.Spec.Steps {
		if len(st.Actions) == 0 {
			return fmt.Sprintf("step %d has no actions", i)
		}
	}
	if p.CurrentStep < 0 || p.CurrentStep >= len(p.Spec.Steps) {
		return fmt.Sprintf("current step %d is out of range", p.CurrentStep)
	}
	for _, c := range p.Clusters {
		if c.Step < 0 || c.Step >= len(p.Spec.Steps) || c.ActionIndex < 0 || c.ActionIndex >= len(p.Spec.Steps[c.Step].Actions) {
			return fmt.Sprintf("cluster %s is at step %d action %d, out of range", c.ClusterID, c.Step, c.ActionIndex)
		}
	}
	return ""
}

// pendingWrites are the desired stages of busy clusters that IBU_DESIRED
// does not hold yet, in the plan's cluster order.
func pendingWrites(p state.Plan, desired map[string]int64) []DesiredWrite {
	var out []DesiredWrite
	for _, c := range p.Clusters {
		if c.Busy() && c.Generation > desired[c.ClusterID] {
			out = append(out, DesiredWrite{ClusterID: c.ClusterID, Stage: c.Stage, Generation: c.Generation, Action: c.Action})
		}
	}
	return out
}

// engine is one Reconcile call's working state.
type engine struct {
	q           *state.Plan
	statuses    map[string]state.Status
	desired     map[string]int64
	now         time.Time
	newFailures []int // clusters that failed in this call
}

func (e *engine) step() events.PlanStep { return e.q.Spec.Steps[e.q.CurrentStep] }

func (e *engine) busy() int {
	n := 0
	for _, c := range e.q.Clusters {
		if c.Busy() {
			n++
		}
	}
	return n
}

// nextGeneration is above every generation the cluster has seen.
func (e *engine) nextGeneration(i int) int64 {
	c := e.q.Clusters[i]
	g := max(e.desired[c.ClusterID], c.Generation)
	if st, ok := e.statuses[c.ClusterID]; ok {
		g = max(g, st.ObservedGeneration)
	}
	return g + 1
}

// start begins cluster i's action a of its step.
func (e *engine) start(i int, a stages.Action) {
	c := &e.q.Clusters[i]
	c.Generation = e.nextGeneration(i)
	c.Action, c.Stage, c.State = a, stageFor(a), state.ClusterInProgress
	c.StartedAt, c.Reason, c.Message = e.now, "", ""
}

// startCleanup has cluster i run a cleanup action (Abort, Finalize of a
// rollback, or Rollback).
func (e *engine) startCleanup(i int, a stages.Action) {
	c := &e.q.Clusters[i]
	c.Generation = e.nextGeneration(i)
	c.Action, c.Stage, c.Cleanup = a, stageFor(a), state.CleanupInProgress
	c.StartedAt, c.CleanupMessage = e.now, ""
}

// runStep drives the current step of a Running plan: marker pass-through,
// cleanups, canaries, the sliding window, and the barrier to the next
// step or the end of the plan. It reports whether the plan moved to the
// next step (the caller then runs that step in the same call).
func (e *engine) runStep() bool {
	q, k := e.q, e.q.CurrentStep
	actions := e.step().Actions
	for i := range q.Clusters {
		c := &q.Clusters[i]
		if c.Step == k && c.State == state.ClusterPending && actions[c.ActionIndex] == stages.ActionAbortOnFailure {
			c.State = state.ClusterSucceeded // it did not fail: nothing to abort
		}
	}
	open, next := NextWindowOpen(q.Spec.MaintenanceWindows, e.now)
	e.windowMessages(open, next)
	free := e.step().RolloutStrategy.MaxConcurrency - e.busy()
	blocked := false // a cleanup still to start or waited for
	if actions[len(actions)-1] == stages.ActionAbortOnFailure {
		for i := range q.Clusters {
			if c := q.Clusters[i]; !c.State.IsFailure() || c.Busy() || c.Cleanup != "" {
				continue
			}
			d := e.cleanupDecision(i, events.BreachAbort)
			switch d.kind {
			case cleanupStart:
				if free > 0 {
					e.startCleanup(i, d.action)
					free--
				} else {
					blocked = true
				}
			case cleanupWait:
				blocked = true
			case cleanupSkip, cleanupNone:
				q.Clusters[i].Cleanup, q.Clusters[i].CleanupMessage = state.CleanupSkipped, d.msg
			}
		}
	}
	canaryBusy, canariesDone := false, true
	for _, c := range q.Clusters {
		if c.Canary && c.Step == k && !c.State.IsFailure() && c.State != state.ClusterSucceeded {
			canariesDone = false
			canaryBusy = canaryBusy || c.State == state.ClusterInProgress
		}
	}
	canStart := func(c state.PlanCluster) bool {
		return c.Step == k && c.State == state.ClusterPending && (open || c.Action != stages.ActionUpgrade)
	}
	for i := range q.Clusters {
		if c := q.Clusters[i]; c.Canary && !canaryBusy && free > 0 && canStart(c) {
			e.start(i, c.Action)
			canaryBusy = true
			free--
		}
	}
	if canariesDone {
		// Clusters already in the step first: finishing them frees the
		// fleet sooner than widening the front.
		for _, inStep := range []bool{true, false} {
			for i := range q.Clusters {
				if c := q.Clusters[i]; !c.Canary && free > 0 && canStart(c) && (c.ActionIndex > 0) == inStep {
					e.start(i, c.Action)
					free--
				}
			}
		}
	}
	if blocked || e.busy() > 0 {
		return false
	}
	for _, c := range q.Clusters {
		if c.Step == k && (c.State == state.ClusterPending || c.State == state.ClusterInProgress) {
			return false
		}
	}
	if k+1 < len(q.Spec.Steps) {
		e.advance()
		return true
	}
	e.finish()
	return false
}

// windowMessages tells the clusters of the current step whose next action
// is an Upgrade that they wait for the maintenance window, and clears the
// message once it opened.
func (e *engine) windowMessages(open bool, next time.Time) {
	msg := "waiting for maintenance window (never opens: no valid window)"
	if !next.IsZero() {
		msg = fmt.Sprintf("waiting for maintenance window (opens %s)", next.Format(time.RFC3339))
	}
	for i := range e.q.Clusters {
		c := &e.q.Clusters[i]
		if c.Step != e.q.CurrentStep || c.State != state.ClusterPending {
			continue
		}
		if !open && c.Action == stages.ActionUpgrade {
			c.Reason, c.Message = ReasonWaitingForWindow, msg
		} else if c.Reason == ReasonWaitingForWindow {
			c.Reason, c.Message = "", ""
		}
	}
}

// advance moves the plan and its clusters that succeeded to the next step.
func (e *engine) advance() {
	q := e.q
	q.CurrentStep++
	first := q.Spec.Steps[q.CurrentStep].Actions[0]
	for i := range q.Clusters {
		c := &q.Clusters[i]
		if c.State == state.ClusterSucceeded && c.Step == q.CurrentStep-1 {
			c.Step, c.ActionIndex, c.Action, c.State = q.CurrentStep, 0, first, state.ClusterPending
			c.StepWorked, c.Reason, c.Message = 0, "", ""
		}
	}
}

// finish ends a plan whose last step is done.
func (e *engine) finish() {
	q := e.q
	q.FinishedAt = e.now
	bad := 0
	for _, c := range q.Clusters {
		if c.State != state.ClusterSucceeded {
			bad++
		}
	}
	if bad == 0 {
		q.Phase, q.Reason, q.Message = events.PlanCompleted, ReasonAllSucceeded, fmt.Sprintf("all %d clusters succeeded", len(q.Clusters))
		return
	}
	q.Phase, q.Reason = events.PlanFailed, ReasonClustersFailed
	q.Message = fmt.Sprintf("%d of %d clusters did not succeed", bad, len(q.Clusters))
}

// describe sets a running plan's reason and message from its step.
func (e *engine) describe() {
	q := e.q
	if q.Phase != events.PlanRunning {
		return
	}
	st := e.step()
	names := make([]string, len(st.Actions))
	for i, a := range st.Actions {
		names[i] = string(a)
	}
	q.Reason = ReasonStepInProgress
	q.Message = fmt.Sprintf("step %d of %d (%s)", q.CurrentStep+1, len(q.Spec.Steps), strings.Join(names, ", "))
	for _, c := range q.Clusters {
		if c.Reason == ReasonWaitingForWindow {
			q.Message += ": " + c.Message
			break
		}
	}
}
