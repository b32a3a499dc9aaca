package planner

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

// t0 is a Monday, 10:00 UTC.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%02d", prefix, i+1)
	}
	return out
}

func step(maxConc int, actions ...stages.Action) events.PlanStep {
	return events.PlanStep{Actions: actions, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: maxConc}}
}

func request(clusters []string, steps ...events.PlanStep) events.PlanCreateRequested {
	return events.PlanCreateRequested{PlanID: "spring", SeedImage: "registry.example/seed:4.16.9", SeedVersion: "4.16.9",
		Clusters: events.ClusterSelection{ClusterIDs: clusters}, Steps: steps}
}

// fleet is a plan and a tiny simulation of its clusters' agents: each
// desired write is acted on as the node agent would (refused with an
// InvalidTransition condition, or started), and the test finishes or
// fails the runs.
type fleet struct {
	t        *testing.T
	now      time.Time
	plan     state.Plan
	statuses map[string]state.Status
	desired  map[string]int64
	written  map[string][]int64 // every generation written, per cluster
	offline  map[string]bool    // agents that do not see their desired state
	writes   []DesiredWrite     // of the last reconcile
}

func newFleet(t *testing.T, req events.PlanCreateRequested) *fleet {
	t.Helper()
	if err := Validate(req); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	f := &fleet{t: t, now: t0, statuses: map[string]state.Status{}, desired: map[string]int64{},
		written: map[string][]int64{}, offline: map[string]bool{}}
	var all []string
	all = append(all, req.Canaries...)
	all = append(all, req.Clusters.ClusterIDs...)
	for _, id := range all {
		f.statuses[id] = state.Status{ClusterID: id, Position: stages.IdlePosition, ValidNextStages: stages.ValidNextStages(stages.IdlePosition)}
	}
	f.plan = NewPlan(req, req.Clusters.ClusterIDs, t0)
	return f
}

// reconcile runs Reconcile (twice, checking it is deterministic), applies
// the writes to IBU_DESIRED and lets the agents act on them.
func (f *fleet) reconcile() []DesiredWrite {
	f.t.Helper()
	p, ws := Reconcile(f.plan, f.statuses, f.desired, f.now)
	p2, ws2 := Reconcile(f.plan, f.statuses, f.desired, f.now)
	if !reflect.DeepEqual(p, p2) || !reflect.DeepEqual(ws, ws2) {
		f.t.Fatalf("Reconcile is not deterministic")
	}
	f.checkInvariants(p)
	// The service stores the plan as JSON and compares it with
	// reflect.DeepEqual: a round trip must not change it.
	b, err := json.Marshal(p)
	if err != nil {
		f.t.Fatal(err)
	}
	var back state.Plan
	if err := json.Unmarshal(b, &back); err != nil {
		f.t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		f.t.Fatalf("the plan changes in a JSON round trip:\n%+v\n%+v", p, back)
	}
	f.plan, f.writes = p, ws
	for _, w := range ws {
		if prev := f.written[w.ClusterID]; len(prev) > 0 && w.Generation <= prev[len(prev)-1] {
			f.t.Fatalf("%s: generation %d written after %d", w.ClusterID, w.Generation, prev[len(prev)-1])
		}
		f.written[w.ClusterID] = append(f.written[w.ClusterID], w.Generation)
		f.desired[w.ClusterID] = w.Generation
		if !f.offline[w.ClusterID] {
			f.accept(w)
		}
	}
	return ws
}

func (f *fleet) checkInvariants(p state.Plan) {
	f.t.Helper()
	c := p.Counts
	if c.Total != len(p.Clusters) || c.Pending+c.InProgress+c.Succeeded+c.Failed+c.Skipped != c.Total {
		f.t.Fatalf("counts do not add up: %+v", c)
	}
	if p.Phase == events.PlanRunning {
		busy := 0
		for _, pc := range p.Clusters {
			if pc.Busy() {
				busy++
			}
		}
		if mc := p.Spec.Steps[p.CurrentStep].RolloutStrategy.MaxConcurrency; busy > mc {
			f.t.Fatalf("%d clusters busy in a window of %d", busy, mc)
		}
	}
}

// accept is the agent reacting to a new desired stage.
func (f *fleet) accept(w DesiredWrite) {
	st := f.statuses[w.ClusterID]
	act, err := stages.Decide(st.Position, w.Stage)
	st.ObservedGeneration = max(st.ObservedGeneration, w.Generation)
	st.PlanID = f.plan.Spec.PlanID
	st.UpdatedAt = f.now
	var te *stages.TransitionError
	switch {
	case errors.As(err, &te):
		st.Conditions = stages.SetCondition(st.Conditions, stages.InvalidTransitionCondition(te), f.now)
	case err != nil:
		f.t.Fatal(err)
	case act != stages.ActionNone:
		st.Action = act
		st.Position = stages.Position{Stage: agentStage(act), State: stages.InProgress, AfterPivot: st.AfterPivot}
		st.Message = string(act) + " started"
		st.Conditions = stages.ConditionsFor(st.Conditions, st.Position, st.Message, f.now)
	}
	st.ValidNextStages = stages.ValidNextStages(st.Position)
	f.statuses[w.ClusterID] = st
}

func agentStage(a stages.Action) stages.Stage {
	switch a {
	case stages.ActionPrep, stages.ActionResumePrep:
		return stages.Prep
	case stages.ActionUpgrade:
		return stages.Upgrade
	case stages.ActionRollback, stages.ActionRetryRollback:
		return stages.Rollback
	}
	return stages.Idle
}

// complete finishes the cluster's run successfully.
func (f *fleet) complete(id string) {
	f.t.Helper()
	st := f.statuses[id]
	if st.State != stages.InProgress {
		f.t.Fatalf("complete %s: it is %s", id, st.Position)
	}
	switch st.Stage {
	case stages.Upgrade:
		st.AfterPivot = true
	case stages.Rollback:
		st.AfterPivot = false
	case stages.Idle:
		st.Position = stages.IdlePosition
	}
	st.State = stages.Completed
	st.Message = string(st.Action) + " completed"
	st.Conditions = stages.ConditionsFor(st.Conditions, st.Position, st.Message, f.now)
	st.ValidNextStages = stages.ValidNextStages(st.Position)
	st.UpdatedAt = f.now
	f.statuses[id] = st
}

// failRun fails the cluster's run with a message.
func (f *fleet) failRun(id, msg string) {
	f.t.Helper()
	st := f.statuses[id]
	if st.State != stages.InProgress {
		f.t.Fatalf("fail %s: it is %s", id, st.Position)
	}
	st.State, st.Message = stages.Failed, msg
	st.Conditions = stages.ConditionsFor(st.Conditions, st.Position, msg, f.now)
	st.ValidNextStages = stages.ValidNextStages(st.Position)
	st.UpdatedAt = f.now
	f.statuses[id] = st
}

// setPosition puts a cluster's agent somewhere directly.
func (f *fleet) setPosition(id string, pos stages.Position, msg string) {
	st := f.statuses[id]
	st.Position, st.Message, st.UpdatedAt = pos, msg, f.now
	st.ValidNextStages = stages.ValidNextStages(pos)
	f.statuses[id] = st
}

func (f *fleet) cluster(id string) state.PlanCluster {
	f.t.Helper()
	i := f.plan.Cluster(id)
	if i < 0 {
		f.t.Fatalf("no cluster %s in the plan", id)
	}
	return f.plan.Clusters[i]
}

func (f *fleet) inProgress() []string {
	var out []string
	for _, c := range f.plan.Clusters {
		if c.Busy() {
			out = append(out, c.ClusterID)
		}
	}
	return out
}

func writtenIDs(ws []DesiredWrite) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.ClusterID
	}
	return out
}

func (f *fleet) wantPhase(phase events.PlanPhase, reason string) {
	f.t.Helper()
	if f.plan.Phase != phase || (reason != "" && f.plan.Reason != reason) {
		f.t.Fatalf("plan is %s/%s (%s), want %s/%s", f.plan.Phase, f.plan.Reason, f.plan.Message, phase, reason)
	}
}

func (f *fleet) wantState(id string, s state.ClusterState, reason string) {
	f.t.Helper()
	c := f.cluster(id)
	if c.State != s || (reason != "" && c.Reason != reason) {
		f.t.Fatalf("%s is %s/%s (%s), want %s/%s", id, c.State, c.Reason, c.Message, s, reason)
	}
}

func sameIDs(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
