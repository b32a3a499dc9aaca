package planner

import (
	"fmt"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

// observe settles busy clusters from their statuses and the clock.
func (e *engine) observe() {
	for i := range e.q.Clusters {
		switch c := e.q.Clusters[i]; {
		case c.State == state.ClusterInProgress:
			e.observeAction(i)
		case c.Cleanup == state.CleanupInProgress:
			e.observeCleanup(i)
		}
	}
}

type verdict int

const (
	running verdict = iota
	done
	failed
)

// judge reads a status observed at or after the cluster's generation.
func judge(a stages.Action, desired stages.Stage, st state.Status) (v verdict, reason, msg string) {
	pos := st.Position
	if a == stages.ActionUpgrade && pos.Stage == stages.Rollback {
		return failed, ReasonRolledBack, "the agent rolled the upgrade back: " + statusMessage(st)
	}
	if endReached(a, pos) {
		return done, "", ""
	}
	if pos.Stage != desired {
		if c, ok := stages.FindCondition(st.Conditions, stages.InProgressCondition(desired)); ok && c.Reason == stages.ReasonInvalidTransition {
			return failed, ReasonInvalidTransition, fmt.Sprintf("the agent refused %s at %s: %s", desired, pos, c.Message)
		}
	}
	switch pos.State {
	case stages.Failed:
		return failed, string(a) + "Failed", statusMessage(st)
	case stages.InProgress:
		return running, "", ""
	}
	if a == stages.ActionUpgrade && pos.Stage == stages.Upgrade && !pos.AfterPivot {
		return failed, ReasonNotPivoted, "the upgrade completed without booting the new stateroot"
	}
	return running, "", ""
}

// endReached reports whether pos is where action a ends.
func endReached(a stages.Action, pos stages.Position) bool {
	if pos.State != stages.Completed {
		return false
	}
	switch a {
	case stages.ActionPrep:
		return pos.Stage == stages.Prep
	case stages.ActionUpgrade:
		return pos.Stage == stages.Upgrade && pos.AfterPivot
	case stages.ActionFinalize, stages.ActionAbort:
		return pos.Stage == stages.Idle
	case stages.ActionRollback:
		return pos.Stage == stages.Rollback && !pos.AfterPivot
	}
	return false
}

func statusMessage(st state.Status) string {
	if st.Message != "" {
		return st.Message
	}
	if n := len(st.Conditions); n > 0 {
		return st.Conditions[n-1].Message
	}
	return st.Position.String()
}

// endTime is when the agent reported the end: its status time, kept
// between the action's start and now (clocks differ).
func (e *engine) endTime(c state.PlanCluster, st state.Status) time.Time {
	t := st.UpdatedAt.Round(0).UTC()
	if t.IsZero() || t.After(e.now) {
		return e.now
	}
	if t.Before(c.StartedAt) {
		return c.StartedAt
	}
	return t
}

func (e *engine) observeAction(i int) {
	c := &e.q.Clusters[i]
	if st, ok := e.statuses[c.ClusterID]; ok && st.ObservedGeneration >= c.Generation {
		switch v, reason, msg := judge(c.Action, c.Stage, st); v {
		case done:
			e.actionDone(i, e.endTime(*c, st))
			return
		case failed:
			e.fail(i, state.ClusterFailed, reason, msg, e.endTime(*c, st))
			return
		}
	}
	timeout := stepTimeout(e.q.Spec.Steps[c.Step])
	if worked := time.Duration(c.StepWorked) + e.now.Sub(c.StartedAt); worked > timeout {
		e.fail(i, state.ClusterTimedOut, ReasonTimedOut,
			fmt.Sprintf("%s did not finish within the step timeout of %s", c.Action, timeout), e.now)
	}
}

// actionDone records a completed action and moves the cluster to the next
// action of its step, or marks the step succeeded for it.
func (e *engine) actionDone(i int, end time.Time) {
	c := &e.q.Clusters[i]
	took := end.Sub(c.StartedAt)
	if e.q.StageDurations == nil {
		e.q.StageDurations = map[string]state.StageStat{}
	}
	e.q.StageDurations[string(c.Action)] = e.q.StageDurations[string(c.Action)].Add(took)
	c.Completed = append(c.Completed, c.Action)
	c.StepWorked += events.Duration(took)
	c.FinishedAt, c.Reason, c.Message = end, "", ""
	actions := e.q.Spec.Steps[c.Step].Actions
	if next := c.ActionIndex + 1; next < len(actions) && actions[next] != stages.ActionAbortOnFailure {
		c.ActionIndex, c.Action, c.State = next, actions[next], state.ClusterPending
		return
	}
	c.State = state.ClusterSucceeded
}

func (e *engine) fail(i int, s state.ClusterState, reason, msg string, at time.Time) {
	c := &e.q.Clusters[i]
	c.State, c.Reason, c.Message, c.FinishedAt = s, reason, msg, at
	e.newFailures = append(e.newFailures, i)
}

func (e *engine) observeCleanup(i int) {
	c := &e.q.Clusters[i]
	if st, ok := e.statuses[c.ClusterID]; ok && st.ObservedGeneration >= c.Generation {
		switch v, reason, msg := judge(c.Action, c.Stage, st); v {
		case done:
			if c.Action == stages.ActionRollback {
				// A rolled-back cluster is finalized too, so that the plan
				// leaves it Idle and ready for another plan.
				if a, err := stages.Decide(st.Position, stages.Idle); err == nil && a == stages.ActionFinalizeRollback {
					e.startCleanup(i, stages.ActionFinalize)
					return
				}
			}
			c.Cleanup, c.CleanupMessage, c.FinishedAt = state.CleanupSucceeded, string(c.Action)+" completed", e.endTime(*c, st)
			return
		case failed:
			c.Cleanup, c.CleanupMessage, c.FinishedAt = state.CleanupFailed, reason+": "+msg, e.endTime(*c, st)
			return
		}
	}
	timeout := stepTimeout(e.step())
	if e.now.Sub(c.StartedAt) > timeout {
		c.Cleanup, c.FinishedAt = state.CleanupFailed, e.now
		c.CleanupMessage = fmt.Sprintf("%s: %s did not finish within %s", ReasonTimedOut, c.Action, timeout)
	}
}
