package planner

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

func TestFirstReconcileStartsThePlan(t *testing.T) {
	f := newFleet(t, request(ids("sno", 4), step(2, prep)))
	if f.plan.Phase != events.PlanPending || f.plan.Counts.Pending != 4 || f.plan.ETASeconds == nil {
		t.Fatalf("new plan: %+v", f.plan)
	}
	f.now = t0.Add(time.Second)
	ws := f.reconcile()
	f.wantPhase(events.PlanRunning, ReasonStepInProgress)
	if !f.plan.StartedAt.Equal(f.now) || !f.plan.UpdatedAt.Equal(f.now) {
		t.Errorf("startedAt %s updatedAt %s", f.plan.StartedAt, f.plan.UpdatedAt)
	}
	want := []DesiredWrite{{"sno-01", stages.Prep, 1, prep}, {"sno-02", stages.Prep, 1, prep}}
	if !reflect.DeepEqual(ws, want) {
		t.Fatalf("writes %+v, want %+v", ws, want)
	}
	if c := f.plan.Counts; c.InProgress != 2 || c.Pending != 2 {
		t.Errorf("counts %+v", c)
	}
	if f.plan.Message != "step 1 of 1 (Prep)" {
		t.Errorf("message %q", f.plan.Message)
	}
}

func TestSlidingWindowRefillsAtOnce(t *testing.T) {
	f := newFleet(t, request(ids("sno", 10), step(3, prep)))
	f.reconcile()
	if got := f.inProgress(); !slices.Equal(got, []string{"sno-01", "sno-02", "sno-03"}) {
		t.Fatalf("in progress %v", got)
	}
	f.now = f.now.Add(5 * time.Minute)
	if ws := f.reconcile(); len(ws) != 0 {
		t.Fatalf("nothing finished, yet writes %+v", ws)
	}
	f.complete("sno-02")
	f.now = f.now.Add(time.Minute)
	ws := f.reconcile()
	if !slices.Equal(writtenIDs(ws), []string{"sno-04"}) {
		t.Fatalf("after one finished: writes %v, want exactly sno-04", writtenIDs(ws))
	}
	f.wantState("sno-02", state.ClusterSucceeded, "")
	if got := f.inProgress(); !slices.Equal(got, []string{"sno-01", "sno-03", "sno-04"}) {
		t.Fatalf("in progress %v", got)
	}
	// Two finish at once: two start, in order.
	f.complete("sno-01")
	f.complete("sno-04")
	if ws := f.reconcile(); !slices.Equal(writtenIDs(ws), []string{"sno-05", "sno-06"}) {
		t.Fatalf("writes %v, want sno-05 and sno-06", writtenIDs(ws))
	}
	// A failure frees its slot at once too (no policy: it only counts).
	f.failRun("sno-03", "precache: registry unreachable")
	ws = f.reconcile()
	if !slices.Equal(writtenIDs(ws), []string{"sno-07"}) {
		t.Fatalf("writes %v, want sno-07", writtenIDs(ws))
	}
	f.wantState("sno-03", state.ClusterFailed, "PrepFailed")
	if c := f.cluster("sno-03"); c.Message != "precache: registry unreachable" {
		t.Errorf("failure message %q", c.Message)
	}
	f.wantPhase(events.PlanRunning, "")
}

func TestStepBarrier(t *testing.T) {
	// All clusters finish step 0 before any starts step 1; the window of
	// step 1 is its own.
	f := newFleet(t, request(ids("sno", 3), step(3, prep), step(1, upgrade)))
	f.reconcile()
	f.complete("sno-01")
	f.complete("sno-02")
	if ws := f.reconcile(); len(ws) != 0 {
		t.Fatalf("step 1 started before step 0 ended: %+v", ws)
	}
	if f.plan.CurrentStep != 0 {
		t.Fatalf("current step %d", f.plan.CurrentStep)
	}
	f.complete("sno-03")
	ws := f.reconcile()
	if f.plan.CurrentStep != 1 || !reflect.DeepEqual(ws, []DesiredWrite{{"sno-01", stages.Upgrade, 2, upgrade}}) {
		t.Fatalf("step %d, writes %+v", f.plan.CurrentStep, ws)
	}
	if f.plan.Message != "step 2 of 2 (Upgrade)" {
		t.Errorf("message %q", f.plan.Message)
	}
	// A cluster that failed step 0 does not take part in step 1.
	g := newFleet(t, request(ids("sno", 2), step(2, prep), step(2, upgrade)))
	g.reconcile()
	g.complete("sno-01")
	g.failRun("sno-02", "disk full")
	ws = g.reconcile()
	if !slices.Equal(writtenIDs(ws), []string{"sno-01"}) || g.cluster("sno-02").Step != 0 {
		t.Fatalf("writes %v; sno-02 at step %d", writtenIDs(ws), g.cluster("sno-02").Step)
	}
	g.complete("sno-01")
	g.reconcile()
	g.wantPhase(events.PlanFailed, ReasonClustersFailed)
	if g.plan.Message != "1 of 2 clusters did not succeed" || g.plan.FinishedAt.IsZero() || g.plan.ETASeconds != nil {
		t.Errorf("finished plan: %q %s %v", g.plan.Message, g.plan.FinishedAt, g.plan.ETASeconds)
	}
}

func TestActionsOfAStepRunBackToBack(t *testing.T) {
	f := newFleet(t, request(ids("sno", 2), step(1, prep, upgrade, finalize)))
	f.reconcile()
	f.complete("sno-01")
	ws := f.reconcile() // the next action of the same cluster keeps the slot
	if !reflect.DeepEqual(ws, []DesiredWrite{{"sno-01", stages.Upgrade, 2, upgrade}}) {
		t.Fatalf("writes %+v", ws)
	}
	f.complete("sno-01")
	ws = f.reconcile()
	if !reflect.DeepEqual(ws, []DesiredWrite{{"sno-01", stages.Idle, 3, finalize}}) {
		t.Fatalf("writes %+v", ws)
	}
	f.complete("sno-01")
	ws = f.reconcile()
	if !slices.Equal(writtenIDs(ws), []string{"sno-02"}) {
		t.Fatalf("writes %+v", ws)
	}
	f.wantState("sno-01", state.ClusterSucceeded, "")
	if c := f.cluster("sno-01"); !slices.Equal(c.Completed, []stages.Action{prep, upgrade, finalize}) {
		t.Errorf("completed %v", c.Completed)
	}
}

func TestCanariesGoFirstAndAlone(t *testing.T) {
	req := request(ids("sno", 6), step(3, prep), step(3, upgrade))
	req.Canaries = []string{"sno-05", "sno-02"}
	f := newFleet(t, req)
	if got := []string{f.plan.Clusters[0].ClusterID, f.plan.Clusters[1].ClusterID}; !slices.Equal(got, req.Canaries) || !f.plan.Clusters[0].Canary {
		t.Fatalf("order %v", got)
	}
	if ws := f.reconcile(); !slices.Equal(writtenIDs(ws), []string{"sno-05"}) {
		t.Fatalf("writes %v, want the first canary alone", writtenIDs(ws))
	}
	f.complete("sno-05")
	if ws := f.reconcile(); !slices.Equal(writtenIDs(ws), []string{"sno-02"}) {
		t.Fatalf("writes %v, want the second canary alone", writtenIDs(ws))
	}
	f.complete("sno-02")
	if ws := f.reconcile(); !slices.Equal(writtenIDs(ws), []string{"sno-01", "sno-03", "sno-04"}) {
		t.Fatalf("writes %v, want the window filled after the canaries", writtenIDs(ws))
	}
	for _, id := range []string{"sno-01", "sno-03", "sno-04"} {
		f.complete(id)
	}
	f.reconcile()
	f.complete("sno-06")
	// Step 2: the canaries go first again.
	if ws := f.reconcile(); f.plan.CurrentStep != 1 || !slices.Equal(writtenIDs(ws), []string{"sno-05"}) {
		t.Fatalf("step %d writes %v", f.plan.CurrentStep, writtenIDs(ws))
	}
}

func TestCanaryFailureStopsThePlan(t *testing.T) {
	req := request(ids("sno", 5), step(3, prep))
	req.Canaries = []string{"sno-01"}
	// A generous policy does not save a failing canary.
	req.FailurePolicy = &events.FailurePolicy{MaxFailures: "50%", OnBreach: events.BreachPause}
	f := newFleet(t, req)
	f.reconcile()
	f.failRun("sno-01", "seed incompatible: network type differs")
	ws := f.reconcile()
	if len(ws) != 0 {
		t.Fatalf("clusters started after the canary failed: %v", writtenIDs(ws))
	}
	f.wantPhase(events.PlanPaused, ReasonCanaryFailed)
	if !strings.Contains(f.plan.Message, "sno-01") || !strings.Contains(f.plan.Message, "network type differs") {
		t.Errorf("message %q", f.plan.Message)
	}
	if f.plan.ETASeconds != nil {
		t.Error("a paused plan has an ETA")
	}
	if ws := f.reconcile(); len(ws) != 0 {
		t.Fatalf("paused plan started %v", writtenIDs(ws))
	}
	// The operator looked and resumes: the others start.
	p, err := Resume(f.plan, "canary's disk was bad", f.now)
	if err != nil {
		t.Fatal(err)
	}
	f.plan = p
	if ws := f.reconcile(); !slices.Equal(writtenIDs(ws), []string{"sno-02", "sno-03", "sno-04"}) {
		t.Fatalf("after resume: writes %v", writtenIDs(ws))
	}
	f.wantPhase(events.PlanRunning, ReasonStepInProgress)
}

func TestCanaryTimeoutWithAbortPolicyAborts(t *testing.T) {
	req := request(ids("sno", 3), step(2, prep))
	req.Steps[0].RolloutStrategy.Timeout = events.Duration(30 * time.Minute)
	req.Canaries = []string{"sno-01"}
	req.FailurePolicy = &events.FailurePolicy{MaxFailures: "0", OnBreach: events.BreachAbort}
	f := newFleet(t, req)
	f.reconcile()
	f.now = f.now.Add(31 * time.Minute)
	ws := f.reconcile()
	f.wantState("sno-01", state.ClusterTimedOut, ReasonTimedOut)
	f.wantPhase(events.PlanAborting, ReasonFailureThresholdReached)
	// The timed-out canary's Prep is still running: Idle aborts it.
	if !reflect.DeepEqual(ws, []DesiredWrite{{"sno-01", stages.Idle, 2, abort}}) {
		t.Fatalf("writes %+v", ws)
	}
	f.wantState("sno-02", state.ClusterSkipped, ReasonPlanAborted)
	f.complete("sno-01")
	f.reconcile()
	f.wantPhase(events.PlanAborted, ReasonFailureThresholdReached)
	if c := f.cluster("sno-01"); c.State != state.ClusterTimedOut || c.Cleanup != state.CleanupSucceeded {
		t.Errorf("canary %+v", c)
	}
}

func TestOutcomesFromTheStatus(t *testing.T) {
	cases := []struct {
		name   string
		steps  []events.PlanStep
		before func(f *fleet) // brings sno-01 to the action under test
		act    func(f *fleet)
		state  state.ClusterState
		reason string
		text   string
	}{
		{name: "completed", steps: []events.PlanStep{step(1, prep)},
			act: func(f *fleet) { f.complete("sno-01") }, state: state.ClusterSucceeded},
		{name: "failed", steps: []events.PlanStep{step(1, prep)},
			act:   func(f *fleet) { f.failRun("sno-01", "PullSeed: digest mismatch") },
			state: state.ClusterFailed, reason: "PrepFailed", text: "digest mismatch"},
		{name: "refused: position unchanged", steps: []events.PlanStep{step(1, prep)},
			before: func(f *fleet) {
				f.setPosition("sno-01", stages.Position{Stage: stages.Rollback, State: stages.Failed}, "rollback failed earlier")
			},
			state: state.ClusterFailed, reason: ReasonInvalidTransition, text: "Rollback failed - retry the rollback first"},
		{name: "auto-rollback after a failed pivot", steps: []events.PlanStep{step(1, prep, upgrade)},
			before: func(f *fleet) { f.reconcile(); f.complete("sno-01") },
			act: func(f *fleet) {
				f.setPosition("sno-01", stages.Position{Stage: stages.Rollback, State: stages.Completed}, "Rollback due to failure after pivot: health check failed")
			},
			state: state.ClusterFailed, reason: ReasonRolledBack, text: "health check failed"},
		{name: "upgrade completed without a pivot", steps: []events.PlanStep{step(1, prep, upgrade)},
			before: func(f *fleet) { f.reconcile(); f.complete("sno-01") },
			act: func(f *fleet) {
				f.setPosition("sno-01", stages.Position{Stage: stages.Upgrade, State: stages.Completed}, "odd")
			},
			state: state.ClusterFailed, reason: ReasonNotPivoted},
		{name: "prep again on a prepared cluster is a no-op that completes", steps: []events.PlanStep{step(1, prep)},
			before: func(f *fleet) {
				f.setPosition("sno-01", stages.Position{Stage: stages.Prep, State: stages.Completed}, "")
			},
			state: state.ClusterSucceeded},
		{name: "still running", steps: []events.PlanStep{step(1, prep)},
			act: func(f *fleet) {}, state: state.ClusterInProgress},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFleet(t, request([]string{"sno-01"}, c.steps...))
			if c.before != nil {
				c.before(f)
			}
			f.reconcile() // writes the action under test; the agent acts
			if c.act != nil {
				c.act(f)
			}
			f.reconcile()
			f.wantState("sno-01", c.state, c.reason)
			if got := f.cluster("sno-01").Message; !strings.Contains(got, c.text) {
				t.Errorf("message %q does not say %q", got, c.text)
			}
		})
	}
}

func TestStatusBeforeTheGenerationIsNotTakenAsDone(t *testing.T) {
	f := newFleet(t, request([]string{"sno-01"}, step(1, prep)))
	f.setPosition("sno-01", stages.Position{Stage: stages.Prep, State: stages.Completed}, "from an older run")
	f.offline["sno-01"] = true
	f.reconcile()
	f.reconcile()
	f.wantState("sno-01", state.ClusterInProgress, "")
	// The agent acts (a no-op: it is prepared) and observes the generation.
	st := f.statuses["sno-01"]
	st.ObservedGeneration = f.desired["sno-01"]
	f.statuses["sno-01"] = st
	f.reconcile()
	f.wantPhase(events.PlanCompleted, ReasonAllSucceeded)
}

func TestTimeout(t *testing.T) {
	req := request(ids("sno", 3), step(1, prep, upgrade))
	req.Steps[0].RolloutStrategy.Timeout = events.Duration(time.Hour)
	f := newFleet(t, req)
	f.reconcile()
	f.now = f.now.Add(40 * time.Minute)
	f.complete("sno-01")
	f.reconcile() // Prep took 40m; Upgrade starts with 20m left of the step
	f.now = f.now.Add(20 * time.Minute)
	f.reconcile()
	f.wantState("sno-01", state.ClusterInProgress, "")
	f.now = f.now.Add(time.Second)
	ws := f.reconcile()
	f.wantState("sno-01", state.ClusterTimedOut, ReasonTimedOut)
	if got := f.cluster("sno-01").Message; got != "Upgrade did not finish within the step timeout of 1h0m0s" {
		t.Errorf("message %q", got)
	}
	if !slices.Equal(writtenIDs(ws), []string{"sno-02"}) || f.plan.Counts.Failed != 1 {
		t.Fatalf("writes %v counts %+v", writtenIDs(ws), f.plan.Counts)
	}
	// A late completion changes nothing: the scheduler stopped waiting.
	f.complete("sno-01")
	f.reconcile()
	f.wantState("sno-01", state.ClusterTimedOut, ReasonTimedOut)
	// The default timeout is two hours.
	g := newFleet(t, request([]string{"sno-01"}, step(1, prep)))
	g.reconcile()
	g.now = g.now.Add(2 * time.Hour)
	g.reconcile()
	g.wantState("sno-01", state.ClusterInProgress, "")
	g.now = g.now.Add(time.Second)
	g.reconcile()
	g.wantState("sno-01", state.ClusterTimedOut, ReasonTimedOut)
	g.wantPhase(events.PlanFailed, ReasonClustersFailed)
}

func TestMaintenanceWindowGatesOnlyUpgrade(t *testing.T) {
	// Saturday 22:00 to Sunday 04:00, Paris; t0 is a Monday.
	req := request(ids("sno", 2), step(2, prep, upgrade, finalize))
	req.MaintenanceWindows = []events.MaintenanceWindow{{Days: []events.Weekday{events.Saturday}, Start: "22:00", End: "04:00", TimeZone: "Europe/Paris"}}
	f := newFleet(t, req)
	if ws := f.reconcile(); len(ws) != 2 || ws[0].Stage != stages.Prep {
		t.Fatalf("Prep waits for no window: %+v", ws)
	}
	f.complete("sno-01")
	f.complete("sno-02")
	f.now = f.now.Add(20 * time.Minute)
	if ws := f.reconcile(); len(ws) != 0 {
		t.Fatalf("Upgrade started outside the window: %+v", ws)
	}
	c := f.cluster("sno-01")
	if c.State != state.ClusterPending || c.Action != upgrade || c.Message != "waiting for maintenance window (opens 2026-03-07T22:00:00+01:00)" {
		t.Fatalf("waiting cluster: %+v", c)
	}
	if !strings.HasSuffix(f.plan.Message, c.Message) {
		t.Errorf("plan message %q", f.plan.Message)
	}
	// Idle reconciles while closed change nothing.
	before := f.plan
	f.now = f.now.Add(time.Hour)
	if p, ws := Reconcile(f.plan, f.statuses, f.desired, f.now); !reflect.DeepEqual(p, before) || len(ws) != 0 {
		t.Fatalf("a closed window changed the plan")
	}
	// Sunday 03:00 Paris, in Saturday's window: both start (window 2).
	f.now = time.Date(2026, 3, 8, 2, 0, 0, 0, time.UTC)
	ws := f.reconcile()
	if !slices.Equal(writtenIDs(ws), []string{"sno-01", "sno-02"}) || ws[0].Stage != stages.Upgrade {
		t.Fatalf("window open: writes %+v", ws)
	}
	if c := f.cluster("sno-01"); c.Message != "" || c.Reason != "" {
		t.Errorf("waiting message kept: %+v", c)
	}
	// The window closes while the upgrades run: they are not cut off, and
	// Finalize, which no window gates, follows.
	f.now = time.Date(2026, 3, 8, 3, 30, 0, 0, time.UTC) // 04:30 Paris
	f.reconcile()
	f.wantState("sno-01", state.ClusterInProgress, "")
	f.complete("sno-01")
	f.complete("sno-02")
	ws = f.reconcile()
	if len(ws) != 2 || ws[0].Action != finalize {
		t.Fatalf("after the window: %+v", ws)
	}
	f.complete("sno-01")
	f.complete("sno-02")
	f.reconcile()
	f.wantPhase(events.PlanCompleted, ReasonAllSucceeded)
}

func TestIdempotenceAndCrashBetweenPlanAndDesired(t *testing.T) {
	f := newFleet(t, request(ids("sno", 5), step(2, prep)))
	f.desired["sno-01"] = 7 // ibuctl set it by hand before
	p1, ws1 := Reconcile(f.plan, f.statuses, f.desired, t0)
	p2, ws2 := Reconcile(f.plan, f.statuses, f.desired, t0)
	if !reflect.DeepEqual(p1, p2) || !reflect.DeepEqual(ws1, ws2) {
		t.Fatal("same inputs, different outputs")
	}
	want := []DesiredWrite{{"sno-01", stages.Prep, 8, prep}, {"sno-02", stages.Prep, 1, prep}}
	if !reflect.DeepEqual(ws1, want) {
		t.Fatalf("writes %+v, want %+v", ws1, want)
	}
	// The service stored p1, then crashed before writing IBU_DESIRED. The
	// next reconcile, on the stored plan, re-issues the same writes with
	// the same generations, and starts nothing else.
	later := t0.Add(10 * time.Second)
	p3, ws3 := Reconcile(p1, f.statuses, f.desired, later)
	if !reflect.DeepEqual(ws3, want) {
		t.Fatalf("re-issued writes %+v, want %+v", ws3, want)
	}
	if !reflect.DeepEqual(p3, p1) {
		t.Fatalf("the re-issue changed the plan:\n%+v\n%+v", p3, p1)
	}
	// One of the two writes landed before the crash: only the other one is
	// re-issued.
	f.desired["sno-01"] = 8
	if _, ws := Reconcile(p1, f.statuses, f.desired, later); !reflect.DeepEqual(ws, want[1:]) {
		t.Fatalf("writes %+v, want %+v", ws, want[1:])
	}
	// Once both landed, the plan is a fixed point: nothing to write or store.
	f.desired["sno-02"] = 1
	if p, ws := Reconcile(p1, f.statuses, f.desired, later); len(ws) != 0 || !reflect.DeepEqual(p, p1) {
		t.Fatalf("fixed point: writes %+v, changed %v", ws, !reflect.DeepEqual(p, p1))
	}
}

func TestGenerationSupersedesWhatTheAgentSaw(t *testing.T) {
	f := newFleet(t, request([]string{"sno-01"}, step(1, prep)))
	st := f.statuses["sno-01"]
	st.ObservedGeneration = 12 // IBU_DESIRED was deleted and written since
	f.statuses["sno-01"] = st
	f.desired["sno-01"] = 3
	ws := f.reconcile()
	if len(ws) != 1 || ws[0].Generation != 13 {
		t.Fatalf("writes %+v, want generation 13", ws)
	}
}

func TestFullPlanTenClustersToCompleted(t *testing.T) {
	req := request(ids("sno", 10), step(4, prep), step(3, upgrade, finalize))
	req.Canaries = []string{"sno-07"}
	req.FailurePolicy = &events.FailurePolicy{MaxFailures: "10%", OnBreach: events.BreachAbort}
	f := newFleet(t, req)
	// How long the simulated agents take per stage.
	agentTimes := map[stages.Stage]time.Duration{stages.Prep: 18 * time.Minute, stages.Upgrade: 14 * time.Minute, stages.Idle: 2 * time.Minute}
	finishAt := map[string]time.Time{}
	var etas []int64
	for round := 0; f.plan.IsActive() && round < 500; round++ {
		for _, w := range f.reconcile() {
			finishAt[w.ClusterID] = f.now.Add(agentTimes[w.Stage])
		}
		if f.plan.ETASeconds != nil {
			etas = append(etas, *f.plan.ETASeconds)
		}
		// Jump to the next agent event, as a tiny event-driven simulation.
		var next time.Time
		for id, at := range finishAt {
			if f.statuses[id].State == stages.InProgress && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
		if next.IsZero() {
			continue
		}
		f.now = next
		for id, at := range finishAt {
			if f.statuses[id].State == stages.InProgress && !at.After(next) {
				f.complete(id)
			}
		}
	}
	f.wantPhase(events.PlanCompleted, ReasonAllSucceeded)
	if c := f.plan.Counts; c.Succeeded != 10 || c.Total != 10 {
		t.Fatalf("counts %+v", c)
	}
	for _, c := range f.plan.Clusters {
		if !slices.Equal(c.Completed, []stages.Action{prep, upgrade, finalize}) || c.Step != 1 {
			t.Errorf("%s: completed %v at step %d", c.ClusterID, c.Completed, c.Step)
		}
		if gens := f.written[c.ClusterID]; len(gens) != 3 || !slices.IsSorted(gens) {
			t.Errorf("%s: generations %v", c.ClusterID, gens)
		}
		if st := f.statuses[c.ClusterID]; st.Position != stages.IdlePosition {
			t.Errorf("%s ended at %s", c.ClusterID, st.Position)
		}
	}
	if m := f.plan.StageDurations["Prep"].Mean(); m != 18*time.Minute || f.plan.StageDurations["Prep"].Count != 10 {
		t.Errorf("Prep stats %+v", f.plan.StageDurations["Prep"])
	}
	// Canary 18m, then 9 clusters in a window of 4 (3 waves of 18m), then
	// the canary's 16m, then 9 in a window of 3 (3 waves of 16m).
	if want := t0.Add(18*time.Minute + 3*18*time.Minute + 16*time.Minute + 3*16*time.Minute); !f.plan.FinishedAt.Equal(want) {
		t.Errorf("finished at %s, want %s", f.plan.FinishedAt, want)
	}
	if len(etas) == 0 || etas[0] <= etas[len(etas)-1] {
		t.Errorf("ETA did not go down: %v", etas)
	}
	if f.plan.ETASeconds != nil {
		t.Error("a completed plan has an ETA")
	}
	if p, ws := Reconcile(f.plan, f.statuses, f.desired, f.now.Add(time.Hour)); !reflect.DeepEqual(p, f.plan) || ws != nil {
		t.Error("a finished plan changed")
	}
}

func TestAbortOnFailureMarkerStep(t *testing.T) {
	f := newFleet(t, request(ids("sno", 4), step(4, prep), step(1, aof), step(4, upgrade)))
	f.reconcile()
	f.complete("sno-01")
	f.failRun("sno-02", "CheckCompatibility: FIPS differs")
	f.complete("sno-03")
	f.reconcile()
	f.now = f.now.Add(3 * time.Hour) // sno-04 times out in Prep, still running
	ws := f.reconcile()
	f.wantState("sno-04", state.ClusterTimedOut, ReasonTimedOut)
	// Step 1 (the marker, window 1): the healthy pass at once, one failed
	// cluster is aborted at a time.
	if f.plan.CurrentStep != 1 || !reflect.DeepEqual(ws, []DesiredWrite{{"sno-02", stages.Idle, 2, abort}}) {
		t.Fatalf("step %d writes %+v", f.plan.CurrentStep, ws)
	}
	f.wantState("sno-01", state.ClusterSucceeded, "")
	f.complete("sno-02")
	ws = f.reconcile()
	if !reflect.DeepEqual(ws, []DesiredWrite{{"sno-04", stages.Idle, 2, abort}}) {
		t.Fatalf("writes %+v", ws)
	}
	if c := f.cluster("sno-02"); c.State != state.ClusterFailed || c.Cleanup != state.CleanupSucceeded || c.Reason != "PrepFailed" {
		t.Fatalf("cleaned cluster %+v", c)
	}
	f.complete("sno-04")
	ws = f.reconcile()
	if f.plan.CurrentStep != 2 || !slices.Equal(writtenIDs(ws), []string{"sno-01", "sno-03"}) {
		t.Fatalf("step %d writes %v", f.plan.CurrentStep, writtenIDs(ws))
	}
	f.complete("sno-01")
	f.complete("sno-03")
	f.reconcile()
	f.wantPhase(events.PlanFailed, ReasonClustersFailed)
	if c := f.plan.Counts; c.Succeeded != 2 || c.Failed != 2 {
		t.Errorf("counts %+v", c)
	}
	for _, id := range []string{"sno-02", "sno-04"} {
		if pos := f.statuses[id].Position; pos != stages.IdlePosition {
			t.Errorf("%s left at %s", id, pos)
		}
	}
}

func TestAbortOnFailureAtTheEndOfAStep(t *testing.T) {
	// [Prep, Upgrade, AbortOnFailure]: a cluster failing in the step is
	// cleaned up in the step; one that cannot go to Idle is left, with why.
	f := newFleet(t, request(ids("sno", 3), step(3, prep, upgrade, aof)))
	f.reconcile()
	f.complete("sno-01")
	f.complete("sno-02")
	f.failRun("sno-03", "no space left")
	ws := f.reconcile()
	if !reflect.DeepEqual(ws, []DesiredWrite{{"sno-01", stages.Upgrade, 2, upgrade}, {"sno-02", stages.Upgrade, 2, upgrade}, {"sno-03", stages.Idle, 2, abort}}) {
		t.Fatalf("writes %+v", ws)
	}
	f.complete("sno-01")
	// sno-02 fails after the pivot without auto-rollback: Idle is refused.
	f.setPosition("sno-02", stages.Position{Stage: stages.Upgrade, State: stages.Failed, AfterPivot: true}, "RestoreData failed")
	f.complete("sno-03")
	ws = f.reconcile()
	if len(ws) != 0 {
		t.Fatalf("writes %+v", ws)
	}
	f.wantState("sno-02", state.ClusterFailed, "UpgradeFailed")
	c := f.cluster("sno-02")
	if c.Cleanup != state.CleanupSkipped || !strings.Contains(c.CleanupMessage, "Rollback first") {
		t.Errorf("sno-02 cleanup %s %q", c.Cleanup, c.CleanupMessage)
	}
	f.wantState("sno-01", state.ClusterSucceeded, "")
	f.wantPhase(events.PlanFailed, ReasonClustersFailed)
}

func TestAbortOnFailureWaitsForTheAgentsOwnRollback(t *testing.T) {
	f := newFleet(t, request([]string{"sno-01", "sno-02"}, step(2, prep, upgrade), step(2, aof)))
	f.reconcile()
	f.complete("sno-01")
	f.complete("sno-02")
	f.reconcile()
	f.complete("sno-01")
	f.setPosition("sno-02", stages.Position{Stage: stages.Rollback, State: stages.InProgress, AfterPivot: true}, "Rollback due to failure after pivot")
	if ws := f.reconcile(); len(ws) != 0 || f.plan.CurrentStep != 1 {
		t.Fatalf("writes %+v at step %d; want to wait for the rollback", ws, f.plan.CurrentStep)
	}
	f.wantState("sno-02", state.ClusterFailed, ReasonRolledBack)
	f.setPosition("sno-02", stages.Position{Stage: stages.Rollback, State: stages.Completed}, "Rollback completed")
	ws := f.reconcile()
	if !reflect.DeepEqual(ws, []DesiredWrite{{"sno-02", stages.Idle, 3, finalize}}) {
		t.Fatalf("writes %+v, want the rollback finalized", ws)
	}
	f.complete("sno-02")
	f.reconcile()
	f.wantPhase(events.PlanFailed, ReasonClustersFailed)
	if c := f.cluster("sno-02"); c.Cleanup != state.CleanupSucceeded {
		t.Errorf("cleanup %+v", c)
	}
}

func TestReconcileFinishedAndBrokenPlans(t *testing.T) {
	p := NewPlan(request([]string{"sno-01"}, step(1, prep)), []string{"sno-01"}, t0)
	p.Phase = events.PlanCompleted
	if got, ws := Reconcile(p, nil, nil, t0.Add(time.Hour)); !reflect.DeepEqual(got, p) || ws != nil {
		t.Error("a finished plan changed")
	}
	broken := NewPlan(request([]string{"sno-01"}), []string{"sno-01"}, t0)
	got, ws := Reconcile(broken, nil, nil, t0)
	if got.Phase != events.PlanFailed || got.Reason != ReasonInvalidPlan || ws != nil {
		t.Errorf("plan without steps: %s/%s %v", got.Phase, got.Reason, ws)
	}
	out := NewPlan(request([]string{"sno-01"}, step(1, prep)), []string{"sno-01"}, t0)
	out.Clusters[0].ActionIndex = 3
	if got, _ := Reconcile(out, nil, nil, t0); got.Phase != events.PlanFailed || !strings.Contains(got.Message, "out of range") {
		t.Errorf("cluster out of range: %s %q", got.Phase, got.Message)
	}
}
