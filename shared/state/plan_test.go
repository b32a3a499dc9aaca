package state

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
)

func TestPlanIsActive(t *testing.T) {
	for phase, want := range map[events.PlanPhase]bool{
		events.PlanPending: true, events.PlanRunning: true, events.PlanPaused: true, events.PlanAborting: true,
		events.PlanAborted: false, events.PlanCompleted: false, events.PlanFailed: false,
	} {
		if got := (Plan{Phase: phase}).IsActive(); got != want {
			t.Errorf("IsActive(%s) = %v, want %v", phase, got, want)
		}
	}
}

func TestPlanCounts(t *testing.T) {
	p := Plan{
		Spec: events.PlanCreateRequested{Steps: []events.PlanStep{{Actions: []stages.Action{stages.ActionPrep}}, {Actions: []stages.Action{stages.ActionUpgrade}}}},
		Clusters: []PlanCluster{
			{ClusterID: "fresh", State: ClusterPending},
			{ClusterID: "between-steps", Step: 1, State: ClusterPending, Generation: 3, Completed: []stages.Action{stages.ActionPrep}},
			{ClusterID: "running", State: ClusterInProgress, Generation: 1},
			{ClusterID: "step0-done", State: ClusterSucceeded, Generation: 1},
			{ClusterID: "all-done", Step: 1, State: ClusterSucceeded, Generation: 2},
			{ClusterID: "failed", State: ClusterFailed, Generation: 1},
			{ClusterID: "timedout", State: ClusterTimedOut, Generation: 1},
			{ClusterID: "failed-cleaning", State: ClusterFailed, Generation: 2, Cleanup: CleanupInProgress},
			{ClusterID: "skipped", State: ClusterSkipped},
			{ClusterID: "aborted", State: ClusterAborted, Generation: 2},
		},
	}
	p.Recount()
	want := events.PlanCounts{Total: 10, Pending: 1, InProgress: 4, Succeeded: 1, Failed: 2, Skipped: 2}
	if p.Counts != want {
		t.Fatalf("counts = %+v, want %+v", p.Counts, want)
	}
	if sum := want.Pending + want.InProgress + want.Succeeded + want.Failed + want.Skipped; sum != want.Total {
		t.Fatalf("counts do not add up: %d != %d", sum, want.Total)
	}
	if got := p.Failures(); got != 3 {
		t.Errorf("Failures = %d, want 3", got)
	}
	if i := p.Cluster("running"); i != 2 || p.Cluster("nope") != -1 {
		t.Errorf("Cluster index = %d", i)
	}
	if ev := p.StatusEvent(); ev.Counts != want {
		t.Errorf("status event counts %+v", ev.Counts)
	}
}

func TestPlanJSONRoundTripCamelCase(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	eta := int64(600)
	p := Plan{
		Spec:  events.PlanCreateRequested{PlanID: "p1", Steps: []events.PlanStep{{Actions: []stages.Action{stages.ActionPrep}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 2}}}},
		Phase: events.PlanRunning, Reason: "StepInProgress", CreatedAt: now, UpdatedAt: now, StartedAt: now,
		ETASeconds: &eta, Owner: "replica-1", LeaseUntil: now.Add(15 * time.Second),
		Clusters: []PlanCluster{{ClusterID: "sno-1", Canary: true, Action: stages.ActionPrep, Stage: stages.Prep,
			Generation: 4, State: ClusterInProgress, StartedAt: now, StepWorked: events.Duration(time.Minute),
			Completed: []stages.Action{stages.ActionPrep}}},
		StageDurations: map[string]StageStat{"Prep": StageStat{}.Add(20 * time.Minute).Add(10 * time.Minute)},
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"spec", "phase", "clusters", "currentStep", "counts", "createdAt", "etaSeconds", "owner", "leaseUntil", "stageDurations"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	if _, ok := m["finishedAt"]; ok {
		t.Errorf("zero finishedAt serialised: %s", b)
	}
	c := m["clusters"].([]any)[0].(map[string]any)
	for _, k := range []string{"clusterId", "canary", "actionIndex", "generation", "stepWorked", "completed"} {
		if _, ok := c[k]; !ok {
			t.Errorf("cluster has no %q: %v", k, c)
		}
	}
	var back Plan
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, p)
	}
	if got := back.StageDurations["Prep"].Mean(); got != 15*time.Minute {
		t.Errorf("mean = %s, want 15m", got)
	}
	if (StageStat{}).Mean() != 0 {
		t.Error("empty stat has a mean")
	}
}

func TestPlanClusterHelpers(t *testing.T) {
	c := PlanCluster{State: ClusterFailed, Cleanup: CleanupInProgress, Completed: []stages.Action{stages.ActionPrep}}
	if !c.Busy() || !c.State.IsFailure() || !c.HasCompleted(stages.ActionPrep) || c.HasCompleted(stages.ActionUpgrade) {
		t.Errorf("helpers wrong for %+v", c)
	}
	if (PlanCluster{State: ClusterSucceeded}).Busy() || ClusterAborted.IsFailure() {
		t.Error("succeeded is busy or aborted is a failure")
	}
}
