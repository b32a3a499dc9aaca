package stages

import (
	"testing"
	"time"
)

func TestSetConditionKeepsTransitionTimeUnlessStatusFlips(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	conds := SetCondition(nil, Condition{Type: CondPrepInProgress, Status: True, Reason: ReasonInProgress, Message: "a"}, t0)
	conds = SetCondition(conds, Condition{Type: CondPrepInProgress, Status: True, Reason: ReasonInProgress, Message: "b"}, t1)
	c, _ := FindCondition(conds, CondPrepInProgress)
	if !c.LastTransitionTime.Equal(t0) || c.Message != "b" {
		t.Fatalf("same status: got %+v, want time %v and message b", c, t0)
	}
	conds = SetCondition(conds, Condition{Type: CondPrepInProgress, Status: False, Reason: ReasonCompleted}, t2)
	c, _ = FindCondition(conds, CondPrepInProgress)
	if !c.LastTransitionTime.Equal(t2) || len(conds) != 1 {
		t.Fatalf("flip: got %+v (%d conds), want time %v", c, len(conds), t2)
	}
}

func TestConditionsFor(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		p    Position
		want map[string]string // type -> status/reason
	}{
		{IdlePosition, map[string]string{CondIdle: "True/Idle"}},
		{Position{Prep, InProgress, false}, map[string]string{CondIdle: "False/InProgress", CondPrepInProgress: "True/InProgress"}},
		{Position{Prep, Completed, false}, map[string]string{CondPrepInProgress: "False/Completed", CondPrepCompleted: "True/Completed"}},
		{Position{Upgrade, Failed, true}, map[string]string{CondUpgradeInProgress: "False/Failed", CondUpgradeCompleted: "False/Failed"}},
		{Position{Idle, Failed, false}, map[string]string{CondIdle: "False/Failed"}},
	}
	for _, c := range cases {
		got := ConditionsFor(nil, c.p, "msg", now)
		for typ, want := range c.want {
			cond, ok := FindCondition(got, typ)
			if !ok {
				t.Errorf("%s: no %s condition in %+v", c.p, typ, got)
				continue
			}
			if s := string(cond.Status) + "/" + cond.Reason; s != want {
				t.Errorf("%s: %s = %s, want %s", c.p, typ, s, want)
			}
		}
	}
	// A restarted stage drops its stale Completed condition.
	conds := ConditionsFor(nil, Position{Prep, Failed, false}, "failed", now)
	conds = ConditionsFor(conds, Position{Prep, InProgress, false}, "resumed", now)
	if _, ok := FindCondition(conds, CondPrepCompleted); ok {
		t.Errorf("PrepCompleted kept after resume: %+v", conds)
	}
}

func TestInvalidTransitionCondition(t *testing.T) {
	_, err := Decide(Position{Upgrade, Failed, true}, Idle)
	te, ok := err.(*TransitionError)
	if !ok {
		t.Fatalf("want TransitionError, got %v", err)
	}
	c := InvalidTransitionCondition(te)
	if c.Type != CondIdle || c.Reason != ReasonInvalidTransition || c.Message != "Transition to Idle not allowed - Rollback first" {
		t.Errorf("got %+v", c)
	}
}

func TestStageRecordPhases(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := StageRecord{Stage: Upgrade, Start: t0, State: InProgress}
	r = r.StartPhase("PrePivot", t0)
	r = r.StartPhase("PostPivot", t0.Add(5*time.Minute))
	r = r.Finish(Completed, t0.Add(12*time.Minute))
	if len(r.Phases) != 2 || r.Phases[0].End != t0.Add(5*time.Minute) || r.Phases[1].End != t0.Add(12*time.Minute) {
		t.Fatalf("phases = %+v", r.Phases)
	}
	if r.Duration() != 12*time.Minute || r.State != Completed {
		t.Errorf("duration %v state %s", r.Duration(), r.State)
	}
}
