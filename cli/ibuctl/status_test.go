package ibuctl

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/testkit/natstest"
)

// testNowUnix is the clock of the hand-made plans.
const testNowUnix = 1772445600 // 2026-03-02T10:00:00Z

// handMadePlan is a plan of 15 clusters in [Prep] then [Upgrade,Finalize]:
// 8 finished, 4 busy (one in Prep, one in Upgrade, two in Finalize), one
// between actions, one not started, one failed in Prep; with the node
// agents' statuses of the busy ones.
func testNow() time.Time { return time.Unix(testNowUnix, 0).UTC() }

func handMadePlan() (state.Plan, map[string]state.Status) {
	eta := int64(14 * 60)
	p := state.Plan{
		Spec: events.PlanCreateRequested{PlanID: "spring", SeedImage: "quay.io/ibu/seed:4.16.9", SeedVersion: "4.16.9",
			Clusters: events.ClusterSelection{Selector: &events.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}},
			Steps: []events.PlanStep{
				{Actions: []stages.Action{stages.ActionPrep}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 10}},
				{Actions: []stages.Action{stages.ActionUpgrade, stages.ActionFinalize}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 5}},
			}},
		Phase: events.PlanRunning, CurrentStep: 1, ETASeconds: &eta,
		CreatedAt: testNow().Add(-62 * time.Minute), StartedAt: testNow().Add(-61 * time.Minute),
	}
	all := []stages.Action{stages.ActionPrep, stages.ActionUpgrade, stages.ActionFinalize}
	for i := 1; i <= 8; i++ {
		p.Clusters = append(p.Clusters, state.PlanCluster{ClusterID: fmt.Sprintf("sno-%02d", i), Step: 1, ActionIndex: 1,
			Action: stages.ActionFinalize, Generation: 4, State: state.ClusterSucceeded, Completed: all})
	}
	started := testNow().Add(-3 * time.Minute)
	p.Clusters[0].Canary = true
	p.Clusters = append(p.Clusters,
		state.PlanCluster{ClusterID: "sno-09", Step: 1, Action: stages.ActionUpgrade, Stage: stages.Upgrade, Generation: 2,
			State: state.ClusterInProgress, Completed: all[:1], StartedAt: started},
		state.PlanCluster{ClusterID: "sno-10", Step: 1, ActionIndex: 1, Action: stages.ActionFinalize, Stage: stages.Idle, Generation: 3,
			State: state.ClusterInProgress, Completed: all[:2], StartedAt: started},
		state.PlanCluster{ClusterID: "sno-11", Step: 1, ActionIndex: 1, Action: stages.ActionFinalize, Stage: stages.Idle, Generation: 3,
			State: state.ClusterInProgress, Completed: all[:2], StartedAt: started},
		state.PlanCluster{ClusterID: "sno-12", Step: 0, Action: stages.ActionPrep, Stage: stages.Prep, Generation: 1,
			State: state.ClusterInProgress, StartedAt: testNow().Add(-90 * time.Second)},
		state.PlanCluster{ClusterID: "sno-13", Step: 1, Action: stages.ActionUpgrade, Generation: 1,
			State: state.ClusterPending, Completed: all[:1]},
		state.PlanCluster{ClusterID: "sno-14", Action: stages.ActionPrep, State: state.ClusterPending},
		state.PlanCluster{ClusterID: "sno-15", Action: stages.ActionPrep, Stage: stages.Prep, Generation: 1, State: state.ClusterFailed,
			Reason: "CheckCompatibility", Message: "seed is for x86_64, cluster is arm64", StartedAt: started},
	)
	p.Recount()
	statuses := map[string]state.Status{
		"sno-09": {ClusterID: "sno-09", Position: stages.Position{Stage: stages.Upgrade, State: stages.InProgress, AfterPivot: true}, Step: "Reboot"},
		"sno-10": {ClusterID: "sno-10", Position: stages.Position{Stage: stages.Idle, State: stages.InProgress, AfterPivot: true}, Step: "RemoveOldStateroot"},
		"sno-12": {ClusterID: "sno-12", Position: stages.Position{Stage: stages.Prep, State: stages.InProgress}, Step: "Precache",
			Precache: &state.Precache{Total: 125, Pulled: 40}},
		"sno-15": {ClusterID: "sno-15", Position: stages.Position{Stage: stages.Prep, State: stages.Failed}, Step: "CheckCompatibility"},
		"other":  {ClusterID: "other", Position: stages.IdlePosition}, // not in the plan: ignored
	}
	for i := 1; i <= 8; i++ {
		id := fmt.Sprintf("sno-%02d", i)
		statuses[id] = state.Status{ClusterID: id, Position: stages.IdlePosition}
	}
	return p, statuses
}

const wantStatusView = `Plan spring  Running  step 2/2  ETA 14m
Seed quay.io/ibu/seed:4.16.9 (4.16.9)  created 1h2m ago

Steps
  1 Prep              [########################------] 12/15  1 running, 1 failed
  2 Upgrade,Finalize  [################--------------]  8/15  3 running

Stages
  Prep      [########################------] 12/15  1 running, 1 failed
  Upgrade   [####################----------] 10/15  1 running
  Finalize  [################--------------]  8/15  2 running

Clusters  15: Pending 2 · InProgress 4 · Succeeded 8 · Failed 1
Agents    Idle InProgress 1 · Idle Completed 8 · Prep InProgress 1 · Prep Failed 1 · Upgrade InProgress 1

In progress (4)
  sno-09  Upgrade   Upgrade InProgress (after pivot) · Reboot           3m
  sno-10  Finalize  Idle InProgress (after pivot) · RemoveOldStateroot  3m
  sno-11  Finalize                                                      3m
  sno-12  Prep      Prep InProgress · Precache 40/125 images            1m30s

Failures (1)
  sno-15  Prep  Failed  CheckCompatibility: seed is for x86_64, cluster is arm64
`

func TestRenderPlanStatus(t *testing.T) {
	p, statuses := handMadePlan()
	got := renderPlanStatus(p, statuses, testNow())
	if got != wantStatusView {
		t.Fatalf("status view:\n%s\nwant:\n%s", got, wantStatusView)
	}
	if strings.Contains(got, "\x1b") {
		t.Fatal("the renderer must not write ANSI codes; the viewer clears the screen on a terminal only")
	}
}

func TestRenderStatusEdges(t *testing.T) {
	if got := bar(9, 15, 14); got != "[########------]" {
		t.Errorf("bar 9/15: %s", got)
	}
	if got := bar(0, 0, 4); got != "[----]" {
		t.Errorf("bar 0/0: %s", got)
	}
	if got := bar(15, 15, 4); got != "[####]" {
		t.Errorf("bar 15/15: %s", got)
	}
	// A finished plan shows when it finished, not an ETA; a long list of
	// busy clusters is cut.
	p, _ := handMadePlan()
	p.Phase, p.FinishedAt, p.Reason = events.PlanAborted, testNow().Add(-time.Minute), "AbortRequested"
	for i := range p.Clusters {
		p.Clusters[i].State = state.ClusterInProgress
		p.Clusters[i].Completed = nil
	}
	got := renderPlanStatus(p, nil, testNow())
	for _, want := range []string{"Plan spring  Aborted (AbortRequested)  step 2/2  finished 1m ago\n",
		"In progress (15)\n", "  … and 5 more\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ETA") || strings.Contains(got, "Agents") {
		t.Errorf("unexpected ETA or agents line:\n%s", got)
	}
}

func TestStatusCommand(t *testing.T) {
	h := startTestHub(t)
	p, statuses := handMadePlan()
	h.put(bus.BucketPlans, "spring", p)
	for id, st := range statuses {
		h.put(bus.BucketStatus, id, st)
	}
	done := p
	done.Spec.PlanID, done.Phase = "autumn", events.PlanCompleted
	h.put(bus.BucketPlans, "autumn", done)

	// Without a plan: the active plans only.
	out, _, err := h.run(t.Context(), "status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "spring  Running  [##########----------] 8/15  2/2 Upgrade,Finalize  1") || strings.Contains(out, "autumn") {
		t.Fatalf("summary:\n%s", out)
	}
	// With a plan, once: the same view as the renderer's (bar the ages).
	out, _, err = h.run(t.Context(), "status", "spring")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 Upgrade,Finalize  [################--------------]  8/15  3 running",
		"Agents    Idle InProgress 1 · Idle Completed 8 · Prep InProgress 1", "sno-12  Prep      Prep InProgress · Precache 40/125 images"} {
		if !strings.Contains(out, want) {
			t.Errorf("status spring lacks %q:\n%s", want, out)
		}
	}
	out, _, err = h.run(t.Context(), "status", "spring", "-o", "json")
	var rep statusReport
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.Steps[0].Done != 12 || rep.Counts.Failed != 1 || len(rep.Running) != 4 {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	_, _, err = h.run(t.Context(), "status", "nope")
	oneLineError(t, err, `no such plan "nope"`)
}

func TestStatusWatchRedrawsUntilThePlanEnds(t *testing.T) {
	h := startTestHub(t)
	p, statuses := handMadePlan()
	h.put(bus.BucketPlans, "spring", p)
	cmd := h.start("status", "spring", "--watch")
	natstest.WaitFor(t, 10*time.Second, "the first view", func() bool {
		return strings.Count(cmd.out.String(), "Plan spring  Running") == 1
	})
	// A cluster's agent status changes: the view is drawn again with it.
	h.put(bus.BucketStatus, "sno-12", statuses["sno-12"])
	natstest.WaitFor(t, 10*time.Second, "a view with sno-12's precache", func() bool {
		return strings.Contains(cmd.out.String(), "Precache 40/125 images")
	})
	// A status of a cluster outside the plan is ignored.
	h.put(bus.BucketStatus, "other", statuses["other"])
	// The plan ends: the last view is drawn and the command returns.
	for i := range p.Clusters {
		p.Clusters[i].State, p.Clusters[i].Step = state.ClusterSucceeded, 1
		p.Clusters[i].Completed = []stages.Action{stages.ActionPrep, stages.ActionUpgrade, stages.ActionFinalize}
	}
	p.Phase, p.FinishedAt, p.ETASeconds = events.PlanCompleted, time.Now(), nil
	h.put(bus.BucketPlans, "spring", p)
	if err := cmd.wait(t); err != nil {
		t.Fatalf("status --watch: %v", err)
	}
	out := cmd.out.String()
	if !strings.Contains(out, "Plan spring  Completed  step 2/2  finished") ||
		!strings.Contains(out, "Finalize  [##############################] 15/15") {
		t.Fatalf("last view:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Fatal("cleared the screen on a non-terminal")
	}
}
