package planner

import (
	"errors"
	"fmt"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

type cleanupKind int

const (
	cleanupNone  cleanupKind = iota // nothing to undo
	cleanupStart                    // write the action's desired stage
	cleanupWait                     // the agent is busy by itself; look again later
	cleanupSkip                     // nothing can be done; msg says why
)

type cleanupDecision struct {
	kind   cleanupKind
	action stages.Action
	msg    string
}

// cleanupDecision says how to undo cluster i's part of the plan, from its
// reported position. In rollback mode a cluster that can roll back (it
// booted the new stateroot) does; otherwise one that can go back to Idle
// by an abort, a retried abort or cleanup, or the finalization of a
// rollback does. An upgraded cluster is never finalized by a cleanup: in
// abort mode it is left upgraded, with the reason. Only positions this
// plan led to are touched: the cluster must have had a desired stage from
// the plan, and its status must not name another plan.
func (e *engine) cleanupDecision(i int, mode events.BreachAction) cleanupDecision {
	c := e.q.Clusters[i]
	if c.Generation == 0 {
		return cleanupDecision{kind: cleanupNone, msg: "nothing to undo: the plan never set a desired stage"}
	}
	st, ok := e.statuses[c.ClusterID]
	if !ok {
		return cleanupDecision{kind: cleanupSkip, msg: "no status from the cluster: left as it is"}
	}
	if st.PlanID != "" && st.PlanID != e.q.Spec.PlanID {
		return cleanupDecision{kind: cleanupSkip, msg: fmt.Sprintf("the cluster's status belongs to plan %s: left as it is", st.PlanID)}
	}
	pos := st.Position
	if mode == events.BreachRollback {
		if a, err := stages.Decide(pos, stages.Rollback); err == nil && (a == stages.ActionRollback || a == stages.ActionRetryRollback) {
			return cleanupDecision{kind: cleanupStart, action: stages.ActionRollback}
		}
	}
	a, err := stages.Decide(pos, stages.Idle)
	if err == nil {
		switch a {
		case stages.ActionNone:
			return cleanupDecision{kind: cleanupNone, msg: "nothing to undo: the cluster is " + pos.String()}
		case stages.ActionAbort, stages.ActionRetryIdle:
			return cleanupDecision{kind: cleanupStart, action: stages.ActionAbort}
		case stages.ActionFinalizeRollback:
			return cleanupDecision{kind: cleanupStart, action: stages.ActionFinalize}
		}
		return cleanupDecision{kind: cleanupSkip, msg: fmt.Sprintf("the cluster is %s and not finalized: left upgraded (finalize or roll it back by hand)", pos)}
	}
	why := err.Error()
	var te *stages.TransitionError
	if errors.As(err, &te) {
		why = te.Message
	}
	if pos.State == stages.InProgress {
		if timeout := stepTimeout(e.step()); e.now.Sub(c.FinishedAt) <= timeout {
			return cleanupDecision{kind: cleanupWait}
		}
		return cleanupDecision{kind: cleanupSkip, msg: fmt.Sprintf("still %s long after it failed: cannot go back to Idle (%s)", pos, why)}
	}
	return cleanupDecision{kind: cleanupSkip, msg: fmt.Sprintf("cannot go back to Idle from %s: %s", pos, why)}
}

// runAbort drives an Aborting plan. Nothing new starts. A Prep in flight
// is interrupted (desired Idle, which the agent allows during Prep); other
// actions in flight finish first. Clusters that never started are
// Skipped. Every other cluster is undone as cleanupDecision says, within
// the current step's window: it becomes Aborted (reason PlanAborted, or
// RolledBack), except one that had finished the whole plan and is not
// undone (it stays Succeeded, e.g. upgraded in abort mode) and one that
// failed (it stays Failed or TimedOut; the cleanup's outcome is in
// Cleanup). When nothing is busy and nothing is left to undo, the plan is
// Aborted, whatever the reason it aborted for (the Reason keeps it).
func (e *engine) runAbort() {
	q := e.q
	last := len(q.Spec.Steps) - 1
	free := e.step().RolloutStrategy.MaxConcurrency - e.busy()
	settled := true
	for i := range q.Clusters {
		c := &q.Clusters[i]
		switch {
		case c.State == state.ClusterInProgress && c.Action == stages.ActionPrep:
			c.State, c.Reason, c.Message = state.ClusterAborted, ReasonPlanAborted, "Prep interrupted by the abort"
			e.startCleanup(i, stages.ActionAbort)
			settled = false
			continue
		case c.Busy():
			settled = false
			continue
		case c.State == state.ClusterPending && c.Generation == 0 && len(c.Completed) == 0:
			c.State, c.Reason, c.FinishedAt = state.ClusterSkipped, ReasonPlanAborted, e.now
			c.Message = "the plan was aborted before the cluster started"
			continue
		case c.Cleanup != "" || c.State == state.ClusterAborted || c.State == state.ClusterSkipped:
			continue
		}
		failure := c.State.IsFailure()
		done := c.State == state.ClusterSucceeded && c.Step == last
		d := e.cleanupDecision(i, q.AbortMode)
		if d.kind == cleanupWait || (d.kind == cleanupStart && free <= 0) {
			settled = false
			continue
		}
		if !failure && (!done || d.kind == cleanupStart) {
			c.State, c.Reason, c.Message, c.FinishedAt = state.ClusterAborted, ReasonPlanAborted, "the plan was aborted", e.now
		}
		switch d.kind {
		case cleanupStart:
			if !failure && d.action == stages.ActionRollback {
				c.Reason, c.Message = ReasonRolledBack, "the plan was aborted: rolling back"
			}
			e.startCleanup(i, d.action)
			free--
			settled = false
		case cleanupSkip:
			c.Cleanup, c.CleanupMessage = state.CleanupSkipped, d.msg
		case cleanupNone:
			if failure {
				c.Cleanup, c.CleanupMessage = state.CleanupSkipped, d.msg
			}
		}
	}
	if settled {
		q.Phase, q.FinishedAt = events.PlanAborted, e.now
	}
}
