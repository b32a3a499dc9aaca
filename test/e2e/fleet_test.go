package e2e

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/node-agent/agent/simspoke"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

func terminal(p state.Plan) bool {
	return p.Phase == events.PlanCompleted || p.Phase == events.PlanFailed || p.Phase == events.PlanAborted
}

// A 10-cluster plan with a canary completes: every cluster runs the new
// stateroot, finalized, and was driven exactly once per action.
func TestTenClusterPlanCompletes(t *testing.T) {
	f := newFleet(t, 10, nil)
	f.scheduler("s1", nil)
	req := basicPlan("spring", f.seedRef, 3, ids(10)...)
	req.Canaries = []string{"sno-004"}
	f.request(req)
	p := f.waitPlan("spring", 60*time.Second, "completed", terminal)
	if p.Phase != events.PlanCompleted {
		t.Fatalf("plan ended %s: %s %s", p.Phase, p.Reason, p.Message)
	}
	if p.Counts.Succeeded != 10 || p.Counts.Total != 10 {
		t.Errorf("counts %+v", p.Counts)
	}
	for id, s := range f.spokes {
		deps, _ := s.Host.Stateroots().Deployments(t.Context())
		if len(deps) != 1 || deps[0].Stateroot != "rhcos_"+seedVersion || !deps[0].Booted {
			t.Errorf("%s: deployments %+v", id, deps)
		}
		if gens := f.desiredHistory(id); !slices.Equal(gens, []int64{1, 2, 3}) {
			t.Errorf("%s: desired generations %v, want [1 2 3] (Prep, Upgrade, Finalize once each)", id, gens)
		}
	}
}

// A canary that fails stops the plan before any other cluster starts.
func TestCanaryFailureStopsThePlan(t *testing.T) {
	f := newFleet(t, 6, func(id string, s *simspoke.Spoke) {
		if id == "sno-002" {
			s.Images.FailPull(imageOf(0), errors.New("manifest unknown"))
		}
	})
	f.scheduler("s1", nil)
	req := basicPlan("canary", f.seedRef, 3, ids(6)...)
	req.Canaries = []string{"sno-002"}
	f.request(req)
	p := f.waitPlan("canary", 30*time.Second, "stopped", func(p state.Plan) bool {
		return terminal(p) || p.Phase == events.PlanPaused
	})
	if p.Phase == events.PlanCompleted {
		t.Fatal("plan completed despite the failed canary")
	}
	for _, id := range ids(6) {
		if id == "sno-002" {
			continue
		}
		if gens := f.desiredHistory(id); len(gens) != 0 {
			t.Errorf("%s was driven (%v) after the canary failed", id, gens)
		}
	}
}

// Past maxFailures the plan pauses; clusters in flight finish, no new one
// starts.
func TestFailureThresholdPauses(t *testing.T) {
	bad := map[string]bool{"sno-001": true, "sno-002": true}
	f := newFleet(t, 8, func(id string, s *simspoke.Spoke) {
		if bad[id] {
			s.Images.FailPull(imageOf(1), errors.New("blob unknown"))
		}
	})
	f.scheduler("s1", nil)
	req := basicPlan("threshold", f.seedRef, 2, ids(8)...)
	req.FailurePolicy = &events.FailurePolicy{MaxFailures: "1", OnBreach: events.BreachPause}
	f.request(req)
	p := f.waitPlan("threshold", 30*time.Second, "paused", func(p state.Plan) bool { return p.Phase == events.PlanPaused || terminal(p) })
	if p.Phase != events.PlanPaused || p.Counts.Failed < 2 {
		t.Fatalf("plan %s (%s) counts %+v, want Paused after 2 failures", p.Phase, p.Reason, p.Counts)
	}
	started := 0
	for _, id := range ids(8) {
		if len(f.desiredHistory(id)) > 0 {
			started++
		}
	}
	if started == 8 {
		t.Errorf("every cluster was started although the plan paused after the threshold")
	}
}

// Pause holds the plan; resume finishes it; abort returns prepared
// clusters to Idle.
func TestPauseResumeAndAbort(t *testing.T) {
	f := newFleet(t, 4, nil)
	f.scheduler("s1", nil)
	req := basicPlan("pausable", f.seedRef, 1, ids(4)...)
	f.request(req)
	f.request(events.PlanPauseRequested{PlanID: "pausable", Reason: "change freeze"})
	p := f.waitPlan("pausable", 20*time.Second, "paused", func(p state.Plan) bool { return p.Phase == events.PlanPaused })
	busy := func(p state.Plan) (n int) {
		for _, c := range p.Clusters {
			if c.Busy() {
				n++
			}
		}
		return n
	}
	started := func(p state.Plan) (n int) {
		for _, c := range p.Clusters {
			if c.Generation > 0 {
				n++
			}
		}
		return n
	}
	atPause := started(p)
	q := f.waitPlan("pausable", 10*time.Second, "in-flight work settles", func(p state.Plan) bool { return busy(p) == 0 })
	if started(q) != atPause {
		t.Errorf("clusters started while paused: %d at the pause, %d after", atPause, started(q))
	}
	f.request(events.PlanResumeRequested{PlanID: "pausable"})
	f.waitPlan("pausable", 60*time.Second, "completed", func(p state.Plan) bool { return p.Phase == events.PlanCompleted })

	g := newFleet(t, 3, nil)
	g.scheduler("s1", nil)
	only := basicPlan("abortme", g.seedRef, 3, ids(3)...)
	only.Steps = only.Steps[:1] // Prep only: the clusters stay prepared
	only.Steps = append(only.Steps, events.PlanStep{Actions: []stages.Action{stages.ActionUpgrade},
		RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 1}})
	only.MaintenanceWindows = []events.MaintenanceWindow{{Days: []events.Weekday{events.Monday}, Start: "03:00", End: "03:01", TimeZone: "Pacific/Kiritimati"}}
	g.request(only)
	g.waitPlan("abortme", 30*time.Second, "prepared", func(p state.Plan) bool { return p.CurrentStep == 1 })
	g.request(events.PlanAbortRequested{PlanID: "abortme", Reason: "wrong seed"})
	p = g.waitPlan("abortme", 30*time.Second, "aborted", terminal)
	if p.Phase != events.PlanAborted {
		t.Fatalf("plan %s, want Aborted", p.Phase)
	}
	for id, s := range g.spokes {
		deps, _ := s.Host.Stateroots().Deployments(t.Context())
		if len(deps) != 1 || deps[0].Stateroot != "rhcos" {
			t.Errorf("%s after abort: %+v", id, deps)
		}
	}
}

// A dry run resolves and estimates, and changes nothing.
func TestDryRunChangesNothing(t *testing.T) {
	f := newFleet(t, 5, nil)
	f.scheduler("s1", nil)
	sub := f.watchPlanEvents("dry")
	req := basicPlan("dry", f.seedRef, 2, ids(5)...)
	req.DryRun = true
	f.request(req)
	ev := sub.next(t, events.TypePlanStatusChanged)
	st, _ := events.DataAs[events.PlanStatusChanged](ev)
	if st.Reason != "DryRun" || st.Counts.Total != 5 || st.ETASeconds == nil || !strings.Contains(st.Message, "sno-001") {
		t.Errorf("dry run answer %+v", st)
	}
	if _, ok := f.plan("dry"); ok {
		t.Error("a dry run stored a plan")
	}
	for _, id := range ids(5) {
		if len(f.desiredHistory(id)) != 0 {
			t.Errorf("a dry run drove %s", id)
		}
	}
}

// Bad requests are refused with a precise reason; nothing starts.
func TestBadRequestsAreRefused(t *testing.T) {
	f := newFleet(t, 3, nil)
	f.scheduler("s1", nil)
	f.request(basicPlan("first", f.seedRef, 1, "sno-001"))
	f.waitPlan("first", 10*time.Second, "accepted", func(p state.Plan) bool { return true })
	cases := []struct {
		name   string
		req    events.PlanCreateRequested
		reason string
		text   string
	}{
		{"upgrade before prep", func() events.PlanCreateRequested {
			r := basicPlan("p1", f.seedRef, 1, "sno-002")
			r.Steps[0], r.Steps[1] = r.Steps[1], r.Steps[0]
			return r
		}(), "InvalidPlan", "Prep"},
		{"unknown cluster", basicPlan("p2", f.seedRef, 1, "sno-404"), "InvalidSelection", "sno-404"},
		{"overlapping plan", basicPlan("p3", f.seedRef, 1, "sno-001"), "InvalidSelection", "first"},
	}
	for _, c := range cases {
		sub := f.watchPlanEvents(c.req.PlanID)
		f.request(c.req)
		ev := sub.next(t, events.TypeRejected)
		r, _ := events.DataAs[events.Rejected](ev)
		if r.Reason != c.reason || !strings.Contains(r.Message, c.text) {
			t.Errorf("%s: rejected %+v, want %s mentioning %q", c.name, r, c.reason, c.text)
		}
		if _, ok := f.plan(c.req.PlanID); ok {
			t.Errorf("%s: plan stored", c.name)
		}
	}
	if gens := f.desiredHistory("sno-002"); len(gens) != 0 {
		t.Errorf("a refused plan drove sno-002: %v", gens)
	}
}

// Two replicas at once never drive a cluster twice.
func TestTwoReplicasDoNotDoubleDrive(t *testing.T) {
	f := newFleet(t, 6, nil)
	f.scheduler("s1", nil)
	f.scheduler("s2", nil)
	f.request(basicPlan("shared", f.seedRef, 3, ids(6)...))
	p := f.waitPlan("shared", 60*time.Second, "completed", terminal)
	if p.Phase != events.PlanCompleted {
		t.Fatalf("plan %s: %s", p.Phase, p.Message)
	}
	for _, id := range ids(6) {
		if gens := f.desiredHistory(id); !slices.Equal(gens, []int64{1, 2, 3}) {
			t.Errorf("%s: desired generations %v, want [1 2 3]", id, gens)
		}
	}
}

func imageOf(i int) string {
	s, _ := seedsimImages()
	return s[i]
}

// planEvents follows the events about one plan.
type planEvents struct {
	cons jetstream.Consumer
}

func (f *fleet) watchPlanEvents(planID string) *planEvents {
	f.t.Helper()
	cons, err := f.js.OrderedConsumer(f.t.Context(), bus.StreamEvents, jetstream.OrderedConsumerConfig{
		// All, not New: an ordered consumer is made on its first fetch, after
		// the request went out; the plan id is new to this hub anyway.
		FilterSubjects: []string{"ibu.event.plan." + planID + ".>"}, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		f.t.Fatal(err)
	}
	return &planEvents{cons: cons}
}

func (p *planEvents) next(t *testing.T, typ string) cloudEvent {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		msg, err := p.cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		e, err := bus.FromHeaders(msg.Headers(), msg.Data())
		if err == nil && e.Type() == typ {
			return e
		}
	}
	t.Fatalf("no %s event within 15s", typ)
	return cloudEvent{}
}

// An Upgrade step outside its maintenance window waits (Prep runs at any
// time) and starts when the window opens, on the scheduler's clock.
func TestUpgradeWaitsForItsWindow(t *testing.T) {
	f := newFleet(t, 3, nil)
	var clock atomic.Pointer[time.Time]
	closed := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) // a Monday, noon UTC
	clock.Store(&closed)
	now := func() time.Time { return *clock.Load() }
	f.scheduler("s1", now)
	req := basicPlan("windowed", f.seedRef, 3, ids(3)...)
	req.MaintenanceWindows = []events.MaintenanceWindow{{Days: []events.Weekday{events.Monday}, Start: "22:00", End: "23:30", TimeZone: "UTC"}}
	f.request(req)
	p := f.waitPlan("windowed", 30*time.Second, "prepared and waiting", func(p state.Plan) bool {
		return p.CurrentStep == 1 && p.Counts.Succeeded+p.Counts.InProgress == 3 && strings.Contains(p.Clusters[0].Message, "maintenance window")
	})
	for _, c := range p.Clusters {
		if c.Generation != 1 {
			t.Fatalf("%s started its Upgrade outside the window: %+v", c.ClusterID, c)
		}
	}
	open := time.Date(2026, 11, 23, 22, 5, 0, 0, time.UTC)
	clock.Store(&open)
	p = f.waitPlan("windowed", 60*time.Second, "completed", terminal)
	if p.Phase != events.PlanCompleted {
		t.Fatalf("plan %s: %s", p.Phase, p.Message)
	}
}

// Past maxFailures with onBreach Abort, the plan aborts: clusters not yet
// started are skipped and the prepared ones return to Idle.
func TestFailureThresholdAborts(t *testing.T) {
	bad := map[string]bool{"sno-001": true, "sno-002": true}
	f := newFleet(t, 6, func(id string, s *simspoke.Spoke) {
		if bad[id] {
			s.Images.FailPull(imageOf(2), errors.New("blob unknown"))
		}
	})
	f.scheduler("s1", nil)
	req := basicPlan("breach", f.seedRef, 2, ids(6)...)
	req.FailurePolicy = &events.FailurePolicy{MaxFailures: "1", OnBreach: events.BreachAbort}
	f.request(req)
	p := f.waitPlan("breach", 30*time.Second, "aborted", terminal)
	if p.Phase != events.PlanAborted {
		t.Fatalf("plan %s (%s), want Aborted", p.Phase, p.Reason)
	}
	for id, s := range f.spokes {
		deps, _ := s.Host.Stateroots().Deployments(t.Context())
		if len(deps) != 1 || deps[0].Stateroot != "rhcos" {
			t.Errorf("%s after the abort: %+v", id, deps)
		}
	}
}
