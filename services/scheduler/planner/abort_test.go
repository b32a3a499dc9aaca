package planner

import (
	"strings"
	"testing"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

func TestCleanupDecision(t *testing.T) {
	pos := func(s stages.Stage, st stages.State, piv bool) stages.Position {
		return stages.Position{Stage: s, State: st, AfterPivot: piv}
	}
	cases := []struct {
		name   string
		gen    int64
		status *state.Status
		mode   events.BreachAction
		later  time.Duration
		kind   cleanupKind
		action stages.Action
		text   string
	}{
		{name: "never written", gen: 0, kind: cleanupNone},
		{name: "no status", gen: 1, kind: cleanupSkip, text: "no status"},
		{name: "another plan's status", gen: 1, status: &state.Status{PlanID: "other", Position: pos(stages.Prep, stages.Failed, false)}, kind: cleanupSkip, text: "plan other"},
		{name: "idle already", gen: 1, status: &state.Status{Position: stages.IdlePosition}, kind: cleanupNone},
		{name: "failed prep aborts", gen: 1, status: &state.Status{Position: pos(stages.Prep, stages.Failed, false)}, kind: cleanupStart, action: abort},
		{name: "prep in progress aborts", gen: 1, status: &state.Status{Position: pos(stages.Prep, stages.InProgress, false)}, kind: cleanupStart, action: abort},
		{name: "pre-pivot upgrade failure aborts", gen: 1, status: &state.Status{Position: pos(stages.Upgrade, stages.Failed, false)}, kind: cleanupStart, action: abort},
		{name: "failed abort is retried", gen: 1, status: &state.Status{Position: pos(stages.Idle, stages.Failed, false)}, kind: cleanupStart, action: abort},
		{name: "auto-rollback is finalized", gen: 1, status: &state.Status{Position: pos(stages.Rollback, stages.Completed, false)}, kind: cleanupStart, action: finalize},
		{name: "rollback in progress: wait", gen: 1, status: &state.Status{Position: pos(stages.Rollback, stages.InProgress, true)}, kind: cleanupWait},
		{name: "rollback in progress too long", gen: 1, status: &state.Status{Position: pos(stages.Rollback, stages.InProgress, true)}, later: 3 * time.Hour, kind: cleanupSkip, text: "long after"},
		{name: "post-pivot failure without rollback", gen: 1, status: &state.Status{Position: pos(stages.Upgrade, stages.Failed, true)}, kind: cleanupSkip, text: "Rollback first"},
		{name: "upgraded is not finalized", gen: 1, status: &state.Status{Position: pos(stages.Upgrade, stages.Completed, true)}, kind: cleanupSkip, text: "left upgraded"},
		{name: "rollback mode: upgraded rolls back", gen: 1, mode: events.BreachRollback, status: &state.Status{Position: pos(stages.Upgrade, stages.Completed, true)}, kind: cleanupStart, action: rollback},
		{name: "rollback mode: post-pivot failure rolls back", gen: 1, mode: events.BreachRollback, status: &state.Status{Position: pos(stages.Upgrade, stages.Failed, true)}, kind: cleanupStart, action: rollback},
		{name: "rollback mode: failed rollback retried", gen: 1, mode: events.BreachRollback, status: &state.Status{Position: pos(stages.Rollback, stages.Failed, true)}, kind: cleanupStart, action: rollback},
		{name: "rollback mode: prepared aborts", gen: 1, mode: events.BreachRollback, status: &state.Status{Position: pos(stages.Prep, stages.Completed, false)}, kind: cleanupStart, action: abort},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := NewPlan(request([]string{"sno-01"}, step(1, prep, upgrade)), []string{"sno-01"}, t0)
			p.Clusters[0].Generation, p.Clusters[0].State, p.Clusters[0].FinishedAt = c.gen, state.ClusterFailed, t0
			statuses := map[string]state.Status{}
			if c.status != nil {
				st := *c.status
				if st.PlanID == "" {
					st.PlanID = p.Spec.PlanID
				}
				statuses["sno-01"] = st
			}
			e := &engine{q: &p, statuses: statuses, now: t0.Add(c.later)}
			mode := c.mode
			if mode == "" {
				mode = events.BreachAbort
			}
			d := e.cleanupDecision(0, mode)
			if d.kind != c.kind || d.action != c.action || !strings.Contains(d.msg, c.text) {
				t.Errorf("decision %+v, want kind %d action %q text %q", d, c.kind, c.action, c.text)
			}
		})
	}
}

func TestCleanupRefusedOrTimedOut(t *testing.T) {
	f := newFleet(t, request([]string{"sno-01", "sno-02"}, step(2, prep, aof)))
	f.reconcile()
	f.failRun("sno-01", "boom")
	f.failRun("sno-02", "boom")
	f.offline["sno-02"] = true
	// sno-01's agent will refuse Idle: by the time the write lands it
	// rolled back by itself and failed (a made-up race).
	f.reconcile()
	f.setPosition("sno-01", stages.Position{Stage: stages.Rollback, State: stages.Failed, AfterPivot: true}, "rollback failed")
	f.accept(DesiredWrite{ClusterID: "sno-01", Stage: stages.Idle, Generation: f.desired["sno-01"]})
	f.reconcile()
	if c := f.cluster("sno-01"); c.Cleanup != state.CleanupFailed || !strings.Contains(c.CleanupMessage, "InvalidTransition") {
		t.Fatalf("refused cleanup: %+v", c)
	}
	f.wantPhase(events.PlanRunning, "")
	f.now = f.now.Add(2*time.Hour + time.Second)
	f.reconcile()
	if c := f.cluster("sno-02"); c.Cleanup != state.CleanupFailed || !strings.HasPrefix(c.CleanupMessage, "TimedOut") {
		t.Fatalf("cleanup of an offline agent: %+v", c)
	}
	f.wantPhase(events.PlanFailed, ReasonClustersFailed)
}
