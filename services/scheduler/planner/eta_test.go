package planner

import (
	"reflect"
	"testing"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

func TestDryRun(t *testing.T) {
	req := request(ids("sno", 8), step(3, prep), step(2, upgrade, finalize))
	req.Canaries = []string{"sno-05"}
	res := DryRun(req, req.Clusters.ClusterIDs, Estimates{})
	wantWaves := [][]string{{"sno-05"}, {"sno-01", "sno-02", "sno-03"}, {"sno-04", "sno-06", "sno-07"}, {"sno-08"}}
	if !reflect.DeepEqual(res.Waves, wantWaves) {
		t.Fatalf("waves %v, want %v", res.Waves, wantWaves)
	}
	if res.Clusters[0] != "sno-05" || len(res.Clusters) != 8 || len(res.Steps) != 2 {
		t.Fatalf("result %+v", res)
	}
	if got := res.Steps[1].Waves; len(got) != 5 || len(got[1]) != 2 {
		t.Errorf("step 2 waves %v", got)
	}
	// Step 1: the canary's 20m, then 7 clusters 3 at a time: 3 waves of
	// 20m. Step 2: 17m, then 7 two at a time: 4 waves of 17m.
	want := 20*time.Minute + 3*20*time.Minute + 17*time.Minute + 4*17*time.Minute
	if res.EstimatedDuration != want || res.Steps[0].EstimatedDuration != 80*time.Minute {
		t.Errorf("estimated %s (step 1: %s), want %s", res.EstimatedDuration, res.Steps[0].EstimatedDuration, want)
	}
	// Observed durations override the defaults.
	fast := DryRun(req, req.Clusters.ClusterIDs, Estimates{Prep: 10 * time.Minute})
	if fast.Steps[0].EstimatedDuration != 40*time.Minute || fast.Steps[1].EstimatedDuration != res.Steps[1].EstimatedDuration {
		t.Errorf("with Prep 10m: %s, %s", fast.Steps[0].EstimatedDuration, fast.Steps[1].EstimatedDuration)
	}
	// A new plan's ETA is the dry run's estimate.
	if p := NewPlan(req, req.Clusters.ClusterIDs, t0); p.ETASeconds == nil || *p.ETASeconds != int64(want/time.Second) {
		t.Errorf("new plan ETA %v, want %d", p.ETASeconds, int64(want/time.Second))
	}
}

func TestEstimates(t *testing.T) {
	d := DefaultEstimates()
	if d.Prep != 20*time.Minute || d.Upgrade != 15*time.Minute || d.Finalize != 2*time.Minute || d.Rollback != 10*time.Minute || d.Abort != 2*time.Minute {
		t.Fatalf("defaults %+v", d)
	}
	e := Estimates{Upgrade: time.Hour}.Observed(map[string]state.StageStat{
		"Prep": state.StageStat{}.Add(8 * time.Minute).Add(12 * time.Minute), "Upgrade": {},
	})
	for a, want := range map[stages.Action]time.Duration{prep: 10 * time.Minute, upgrade: time.Hour, finalize: 2 * time.Minute, aof: 0} {
		if got := e.For(a); got != want {
			t.Errorf("For(%s) = %s, want %s", a, got, want)
		}
	}
}

func TestETA(t *testing.T) {
	req := request(ids("sno", 4), step(2, prep), step(4, upgrade))
	f := newFleet(t, req)
	f.reconcile()
	// Two Preps in flight for 5m (15m left each), two pending (20m): over
	// two slots, 35m; then four Upgrades in a window of 4: 15m.
	if got := eta(f.plan, t0.Add(5*time.Minute)); got == nil || *got != int64((50*time.Minute)/time.Second) {
		t.Fatalf("eta %v, want 3000", got)
	}
	// An action running longer than expected counts as about to finish.
	if got := eta(f.plan, t0.Add(time.Hour)); *got != int64((20*time.Minute+15*time.Minute)/time.Second) {
		t.Errorf("eta late %d", *got)
	}
	// Observed means replace the defaults: two Preps of 10m.
	f.now = t0.Add(10 * time.Minute)
	f.complete("sno-01")
	f.complete("sno-02")
	f.reconcile()
	if m := f.plan.StageDurations["Prep"].Mean(); m != 10*time.Minute {
		t.Fatalf("Prep mean %s", m)
	}
	// Now sno-03/04 Prep just started (10m each), then Upgrades 15m.
	if got := f.plan.ETASeconds; got == nil || *got != int64((25*time.Minute)/time.Second) {
		t.Errorf("eta after observations %v, want 1500", got)
	}
	p := f.plan
	p.Phase = events.PlanPaused
	if eta(p, f.now) != nil {
		t.Error("paused plan has an ETA")
	}
}
