package planner

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

func TestAllowedFailures(t *testing.T) {
	cases := []struct {
		max   string
		total int
		want  int
	}{
		{"0", 10, 0}, {"3", 10, 3}, {"10%", 10, 1}, {"15%", 10, 2}, {"10%", 25, 3}, {"0%", 10, 0}, {"100%", 7, 7}, {"1%", 1000, 10},
	}
	for _, c := range cases {
		got, ok := AllowedFailures(&events.FailurePolicy{MaxFailures: c.max, OnBreach: events.BreachPause}, c.total)
		if !ok || got != c.want {
			t.Errorf("AllowedFailures(%s of %d) = %d, %v; want %d", c.max, c.total, got, ok, c.want)
		}
	}
	if _, ok := AllowedFailures(nil, 10); ok {
		t.Error("no policy gives a threshold")
	}
}

func TestFailureThreshold(t *testing.T) {
	cases := []struct {
		name     string
		max      string
		onBreach events.BreachAction
		phase    events.PlanPhase
	}{
		{"count, pause", "1", events.BreachPause, events.PlanPaused},
		{"percentage, pause", "20%", events.BreachPause, events.PlanPaused}, // 20% of 6 → 2 allowed
		{"count, abort", "1", events.BreachAbort, events.PlanAborting},
		{"percentage, rollback", "25%", events.BreachRollback, events.PlanAborting}, // 25% of 6 → 2 allowed
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := request(ids("sno", 6), step(6, prep))
			req.FailurePolicy = &events.FailurePolicy{MaxFailures: c.max, OnBreach: c.onBreach}
			f := newFleet(t, req)
			allowed, _ := AllowedFailures(req.FailurePolicy, 6)
			f.reconcile()
			for i := range allowed {
				f.failRun(ids("sno", 6)[i], "boom")
				f.reconcile()
				f.wantPhase(events.PlanRunning, "") // at the threshold, not over it
			}
			f.failRun(ids("sno", 6)[allowed], "boom")
			f.reconcile()
			f.wantPhase(c.phase, ReasonFailureThresholdReached)
			if !strings.Contains(f.plan.Message, "more than the") {
				t.Errorf("message %q", f.plan.Message)
			}
		})
	}
}

func TestBreachPauseLetsInFlightFinishAndPausesAgainOnResume(t *testing.T) {
	req := request(ids("sno", 6), step(3, prep))
	req.FailurePolicy = &events.FailurePolicy{MaxFailures: "0", OnBreach: events.BreachPause}
	f := newFleet(t, req)
	f.reconcile()
	f.failRun("sno-01", "boom")
	if ws := f.reconcile(); len(ws) != 0 {
		t.Fatalf("started %v after the breach", writtenIDs(ws))
	}
	f.wantPhase(events.PlanPaused, ReasonFailureThresholdReached)
	f.complete("sno-02") // in flight: finishes while paused
	if ws := f.reconcile(); len(ws) != 0 {
		t.Fatalf("paused plan started %v", writtenIDs(ws))
	}
	f.wantState("sno-02", state.ClusterSucceeded, "")
	p, err := Resume(f.plan, "known flake", f.now)
	if err != nil {
		t.Fatal(err)
	}
	f.plan = p
	if ws := f.reconcile(); !slices.Equal(writtenIDs(ws), []string{"sno-04", "sno-05"}) {
		t.Fatalf("after resume: %v", writtenIDs(ws))
	}
	f.failRun("sno-03", "boom again")
	f.reconcile()
	f.wantPhase(events.PlanPaused, ReasonFailureThresholdReached)
}

func TestBreachAbort(t *testing.T) {
	// Step 0 prepares everyone; in step 1 (Upgrade, window 3) two failures
	// breach "1": the plan aborts. Upgrades in flight finish; failed and
	// prepared clusters abort back to Idle as slots free up; upgraded
	// clusters that finished the plan are left as they are.
	req := request(ids("sno", 6), step(6, prep), step(3, upgrade))
	req.FailurePolicy = &events.FailurePolicy{MaxFailures: "1", OnBreach: events.BreachAbort}
	f := newFleet(t, req)
	f.reconcile()
	for _, id := range ids("sno", 6) {
		f.complete(id)
	}
	f.reconcile() // step 1: sno-01..03 upgrade
	f.complete("sno-01")
	f.failRun("sno-02", "pivot failed") // pre-pivot failure
	if ws := f.reconcile(); !slices.Equal(writtenIDs(ws), []string{"sno-04", "sno-05"}) {
		t.Fatalf("writes %v", writtenIDs(ws))
	}
	f.failRun("sno-04", "backup failed")
	ws := f.reconcile()
	f.wantPhase(events.PlanAborting, ReasonFailureThresholdReached)
	if f.plan.AbortMode != events.BreachAbort {
		t.Fatalf("abort mode %q", f.plan.AbortMode)
	}
	// sno-03 and sno-05 still upgrade: one slot, for sno-02.
	if !reflect.DeepEqual(ws, []DesiredWrite{{"sno-02", stages.Idle, 3, abort}}) {
		t.Fatalf("writes %+v", ws)
	}
	f.wantState("sno-01", state.ClusterSucceeded, "")
	f.complete("sno-02")
	f.complete("sno-03")
	ws = f.reconcile()
	if !reflect.DeepEqual(ws, []DesiredWrite{{"sno-04", stages.Idle, 3, abort}, {"sno-06", stages.Idle, 2, abort}}) {
		t.Fatalf("writes %+v", ws)
	}
	f.wantState("sno-06", state.ClusterAborted, ReasonPlanAborted)
	f.wantState("sno-03", state.ClusterSucceeded, "")
	f.complete("sno-04")
	f.complete("sno-06")
	f.complete("sno-05")
	if ws := f.reconcile(); len(ws) != 0 {
		t.Fatalf("writes %+v", ws)
	}
	f.wantPhase(events.PlanAborted, ReasonFailureThresholdReached)
	upgraded := stages.Position{Stage: stages.Upgrade, State: stages.Completed, AfterPivot: true}
	for id, want := range map[string]stages.Position{"sno-01": upgraded, "sno-03": upgraded, "sno-05": upgraded,
		"sno-02": stages.IdlePosition, "sno-04": stages.IdlePosition, "sno-06": stages.IdlePosition} {
		if got := f.statuses[id].Position; got != want {
			t.Errorf("%s at %s, want %s", id, got, want)
		}
	}
	if c := f.plan.Counts; c.Succeeded != 3 || c.Failed != 2 || c.Skipped != 1 || c.InProgress != 0 {
		t.Errorf("counts %+v", c)
	}
	if c := f.cluster("sno-02"); c.Cleanup != state.CleanupSucceeded || c.Reason != "UpgradeFailed" {
		t.Errorf("sno-02 %+v", c)
	}
}

func TestBreachRollback(t *testing.T) {
	// [Prep], [Upgrade], [Finalize]: the upgrades that completed in this
	// plan roll back, then their rollback is finalized (back to Idle).
	req := request(ids("sno", 5), step(5, prep), step(5, upgrade), step(5, finalize))
	req.FailurePolicy = &events.FailurePolicy{MaxFailures: "20%", OnBreach: events.BreachRollback} // 1 allowed
	f := newFleet(t, req)
	f.reconcile()
	for _, id := range ids("sno", 5) {
		f.complete(id)
	}
	f.reconcile()
	f.complete("sno-01")
	f.complete("sno-02")
	f.setPosition("sno-03", stages.Position{Stage: stages.Rollback, State: stages.InProgress, AfterPivot: true}, "auto-rollback")
	f.reconcile()
	f.wantPhase(events.PlanRunning, "")
	f.failRun("sno-04", "pivot failed") // pre-pivot: the second failure
	ws := f.reconcile()
	f.wantPhase(events.PlanAborting, ReasonFailureThresholdReached)
	if f.plan.AbortMode != events.BreachRollback {
		t.Fatalf("mode %s", f.plan.AbortMode)
	}
	// sno-01/02 roll back; sno-04 aborts; sno-03 is rolling back by
	// itself (wait); sno-05 is still upgrading (finishes first).
	want := []DesiredWrite{{"sno-01", stages.Rollback, 3, rollback}, {"sno-02", stages.Rollback, 3, rollback}, {"sno-04", stages.Idle, 3, abort}}
	if !reflect.DeepEqual(ws, want) {
		t.Fatalf("writes %+v\nwant %+v", ws, want)
	}
	f.wantState("sno-01", state.ClusterAborted, ReasonRolledBack)
	f.complete("sno-05") // its upgrade completes: it rolls back too
	f.complete("sno-01")
	f.setPosition("sno-03", stages.Position{Stage: stages.Rollback, State: stages.Completed}, "auto-rollback completed")
	ws = f.reconcile()
	want = []DesiredWrite{{"sno-01", stages.Idle, 4, finalize}, {"sno-03", stages.Idle, 3, finalize}, {"sno-05", stages.Rollback, 3, rollback}}
	if !reflect.DeepEqual(ws, want) {
		t.Fatalf("writes %+v\nwant %+v", ws, want)
	}
	for _, id := range []string{"sno-01", "sno-02", "sno-03", "sno-04", "sno-05"} {
		if f.statuses[id].State == stages.InProgress {
			f.complete(id)
		}
	}
	f.reconcile()
	for _, id := range []string{"sno-02", "sno-05"} { // their finalize of the rollback
		f.complete(id)
	}
	f.reconcile()
	f.wantPhase(events.PlanAborted, ReasonFailureThresholdReached)
	for _, id := range ids("sno", 5) {
		if pos := f.statuses[id].Position; pos != stages.IdlePosition {
			t.Errorf("%s at %s", id, pos)
		}
	}
	if c := f.plan.Counts; c.Failed != 2 || c.Skipped != 3 {
		t.Errorf("counts %+v", c)
	}
}

func TestAbortRequest(t *testing.T) {
	// [Prep], [Upgrade]; window 2 in Prep. Abort while sno-01 is prepared,
	// sno-02 is in Prep, the rest never started.
	f := newFleet(t, request(ids("sno", 4), step(2, prep), step(2, upgrade)))
	f.reconcile()
	f.complete("sno-01")
	f.reconcile() // sno-03 starts
	p, err := Abort(f.plan, "wrong seed", f.now)
	if err != nil {
		t.Fatal(err)
	}
	if p.Phase != events.PlanAborting || p.Reason != ReasonAbortRequested || p.Message != "wrong seed" || p.ETASeconds != nil {
		t.Fatalf("aborting plan %s/%s %q eta %v", p.Phase, p.Reason, p.Message, p.ETASeconds)
	}
	f.plan = p
	ws := f.reconcile()
	// Preps in flight are interrupted at once; the prepared cluster aborts
	// as slots allow (window 2: both slots hold the interrupted Preps).
	want := []DesiredWrite{{"sno-02", stages.Idle, 2, abort}, {"sno-03", stages.Idle, 2, abort}}
	if !reflect.DeepEqual(ws, want) {
		t.Fatalf("writes %+v", ws)
	}
	f.wantState("sno-04", state.ClusterSkipped, ReasonPlanAborted)
	f.wantState("sno-02", state.ClusterAborted, ReasonPlanAborted)
	f.complete("sno-02")
	ws = f.reconcile()
	if !reflect.DeepEqual(ws, []DesiredWrite{{"sno-01", stages.Idle, 2, abort}}) {
		t.Fatalf("writes %+v", ws)
	}
	f.complete("sno-01")
	f.complete("sno-03")
	f.reconcile()
	f.wantPhase(events.PlanAborted, ReasonAbortRequested)
	if c := f.plan.Counts; c.Skipped != 4 {
		t.Errorf("counts %+v", c)
	}
	if _, err := Abort(f.plan, "", f.now); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("abort of an aborted plan: %v", err)
	}
}

func TestAbortBeforeStart(t *testing.T) {
	f := newFleet(t, request(ids("sno", 2), step(2, prep)))
	p, err := Abort(f.plan, "", t0)
	if err != nil || p.Message != "aborted on request" {
		t.Fatal(p.Message, err)
	}
	f.plan = p
	if ws := f.reconcile(); len(ws) != 0 {
		t.Fatalf("writes %+v", ws)
	}
	f.wantPhase(events.PlanAborted, ReasonAbortRequested)
	if f.plan.Counts.Skipped != 2 {
		t.Errorf("counts %+v", f.plan.Counts)
	}
}

func TestPauseAndResume(t *testing.T) {
	f := newFleet(t, request(ids("sno", 4), step(2, prep)))
	f.reconcile()
	p, err := Pause(f.plan, "change freeze", f.now)
	if err != nil {
		t.Fatal(err)
	}
	f.plan = p
	f.wantPhase(events.PlanPaused, ReasonPauseRequested)
	f.complete("sno-01")
	if ws := f.reconcile(); len(ws) != 0 {
		t.Fatalf("paused plan started %v", writtenIDs(ws))
	}
	f.wantState("sno-01", state.ClusterSucceeded, "") // in flight: observed
	if p, err = Resume(f.plan, "", f.now); err != nil {
		t.Fatal(err)
	}
	f.plan = p
	if f.plan.ETASeconds == nil {
		t.Error("a resumed plan has no ETA")
	}
	if ws := f.reconcile(); !slices.Equal(writtenIDs(ws), []string{"sno-03"}) {
		t.Fatalf("resumed: %v", writtenIDs(ws))
	}
}

func TestControlNotAllowed(t *testing.T) {
	ops := map[string]func(state.Plan, string, time.Time) (state.Plan, error){"pause": Pause, "resume": Resume, "abort": Abort}
	cases := []struct {
		phase events.PlanPhase
		op    string
		code  string // "" allowed
		to    events.PlanPhase
	}{
		{events.PlanPending, "pause", "", events.PlanPaused},
		{events.PlanPending, "resume", ControlNotPaused, ""},
		{events.PlanPending, "abort", "", events.PlanAborting},
		{events.PlanRunning, "pause", "", events.PlanPaused},
		{events.PlanRunning, "resume", ControlNotPaused, ""},
		{events.PlanRunning, "abort", "", events.PlanAborting},
		{events.PlanPaused, "pause", ControlAlreadyPaused, ""},
		{events.PlanPaused, "resume", "", events.PlanRunning},
		{events.PlanPaused, "abort", "", events.PlanAborting},
		{events.PlanAborting, "pause", ControlAborting, ""},
		{events.PlanAborting, "resume", ControlNotPaused, ""},
		{events.PlanAborting, "abort", ControlAlreadyAborting, ""},
		{events.PlanCompleted, "pause", ControlPlanFinished, ""},
		{events.PlanFailed, "resume", ControlPlanFinished, ""},
		{events.PlanAborted, "abort", ControlPlanFinished, ""},
	}
	for _, c := range cases {
		p := NewPlan(request([]string{"sno-01"}, step(1, prep)), []string{"sno-01"}, t0)
		p.Phase = c.phase
		got, err := ops[c.op](p, "", t0.Add(time.Minute))
		if c.code == "" {
			if err != nil || got.Phase != c.to || !got.UpdatedAt.Equal(t0.Add(time.Minute)) {
				t.Errorf("%s on %s: %s, %v; want %s", c.op, c.phase, got.Phase, err, c.to)
			}
			continue
		}
		var ce *ControlError
		if !errors.As(err, &ce) || !errors.Is(err, ErrNotAllowed) || ce.Reason != c.code || ce.Op != c.op {
			t.Errorf("%s on %s: %v; want %s", c.op, c.phase, err, c.code)
			continue
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("%s on %s changed the plan", c.op, c.phase)
		}
	}
}
