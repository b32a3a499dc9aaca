package stability_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"ibu.dev/services/health/stability"
	"ibu.dev/shared/events"
)

func TestHealthyClusterPasses(t *testing.T) {
	s := newSpoke(t)
	s.healthy("")
	g := &stability.Gate{Client: s.dc, Interval: 20 * time.Millisecond, Timeout: 30 * time.Second}
	o, err := g.Wait(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Passed {
		t.Fatalf("not passed: %s %s %+v", o.Reason, o.Message, o.Checks)
	}
	if len(o.Checks) != len(stability.Names()) {
		t.Fatalf("%d check results, want %d", len(o.Checks), len(stability.Names()))
	}
	for _, c := range o.Checks {
		if !c.Passed {
			t.Errorf("%s failed: %s", c.Name, c.Message)
		}
	}
}

// TestFailuresNameTheCulprits: a degraded operator and a pending CSR fail
// their checks, and the report names both objects.
func TestFailuresNameTheCulprits(t *testing.T) {
	s := newSpoke(t)
	s.healthy("")
	s.update(gvrCO, false, "etcd", conds("Available", "True", "Progressing", "False", "Degraded", "True"))
	s.csr("node-csr-pending-7", false)
	g := &stability.Gate{Client: s.dc, Interval: 50 * time.Millisecond, Timeout: 300 * time.Millisecond}
	o, err := g.Wait(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o.Passed || o.Reason != stability.ReasonTimedOut {
		t.Fatalf("outcome %+v, want failed TimedOut", o)
	}
	for _, want := range []string{"ClusterOperator etcd Degraded", "CertificateSigningRequest node-csr-pending-7 pending"} {
		if !strings.Contains(o.Message, want) {
			t.Errorf("message %q does not name %q", o.Message, want)
		}
	}
	byName := map[string]events.CheckResult{}
	for _, c := range o.Checks {
		byName[c.Name] = c
	}
	if c := byName[stability.CheckClusterOperators]; c.Passed || c.Reason != stability.ReasonOperatorDegraded || c.Tier != events.TierMandatory {
		t.Errorf("ClusterOperators result %+v", c)
	}
	if c := byName[stability.CheckCSRs]; c.Passed || c.Reason != stability.ReasonPendingCSR || c.Tier != events.TierDeferred {
		t.Errorf("CSR result %+v", c)
	}
	if c := byName[stability.CheckNode]; !c.Passed {
		t.Errorf("Node result %+v", c)
	}
}

// TestEachCheckFails: every check fails on its own kind of trouble.
func TestEachCheckFails(t *testing.T) {
	tests := []struct {
		check, reason string
		break_        func(s *spoke)
	}{
		{stability.CheckClusterOperators, stability.ReasonOperatorUnavailable, func(s *spoke) {
			s.update(gvrCO, false, "etcd", conds("Available", "False", "Progressing", "False", "Degraded", "False"))
		}},
		{stability.CheckClusterOperators, stability.ReasonOperatorProgressing, func(s *spoke) {
			s.update(gvrCO, false, "etcd", conds("Available", "True", "Progressing", "True", "Degraded", "False"))
		}},
		{stability.CheckMachineConfigPools, stability.ReasonPoolNotReady, func(s *spoke) {
			s.update(gvrMCP, false, "master", map[string]any{"machineCount": int64(1), "readyMachineCount": int64(0), "updatedMachineCount": int64(1)})
		}},
		{stability.CheckDataProtection, stability.ReasonDPANotReconciled, func(s *spoke) {
			s.update(gvrDPA, true, "dpa", conds("Reconciled", "False"))
		}},
		{stability.CheckDataProtection, stability.ReasonStorageUnavailable, func(s *spoke) {
			s.update(gvrBSL, true, "default", map[string]any{"phase": "Unavailable"})
		}},
		{stability.CheckNode, stability.ReasonNodeNotReady, func(s *spoke) {
			s.update(gvrNode, false, "sno", conds("Ready", "True", "NetworkUnavailable", "True"))
		}},
		{stability.CheckCSVs, stability.ReasonCSVNotSucceeded, func(s *spoke) {
			s.update(gvrCSV, true, "oadp-operator.v1.4.0", map[string]any{"phase": "Installing"})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.check+"/"+tc.reason, func(t *testing.T) {
			s := newSpoke(t)
			s.healthy("")
			tc.break_(s)
			rs, err := stability.Round(s.ctx, s.dc, stability.Selection{Checks: []string{tc.check}})
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 1 || rs[0].Passed || rs[0].Reason != tc.reason {
				t.Fatalf("results %+v, want %s failed with %s", rs, tc.check, tc.reason)
			}
		})
	}
}

// TestFlappingResetsTheWindow: health lost during the window restarts it;
// the gate passes only a full window after the last recovery.
func TestFlappingResetsTheWindow(t *testing.T) {
	s := newSpoke(t)
	s.healthy("")
	var mu sync.Mutex
	healthyRounds, failedRounds := 0, 0
	rounds := make(chan bool, 1000)
	window := 800 * time.Millisecond
	g := &stability.Gate{Client: s.dc, Window: window, Interval: 20 * time.Millisecond, Timeout: time.Minute,
		Selection: stability.Selection{Tiers: []events.HealthTier{events.TierMandatory}},
		OnRound: func(rs []events.CheckResult) {
			ok := true
			for _, r := range rs {
				ok = ok && r.Passed
			}
			mu.Lock()
			if ok {
				healthyRounds++
			} else {
				failedRounds++
			}
			mu.Unlock()
			rounds <- ok
		}}
	type res struct {
		o   stability.Outcome
		err error
		at  time.Time
	}
	done := make(chan res, 1)
	go func() {
		o, err := g.Wait(s.ctx)
		done <- res{o, err, time.Now()}
	}()
	waitRound := func(want bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case ok := <-rounds:
				if ok == want {
					return
				}
			case <-deadline:
				t.Fatalf("no round with healthy=%v", want)
			}
		}
	}
	waitRound(true)
	s.update(gvrCO, false, "etcd", conds("Available", "True", "Progressing", "False", "Degraded", "True"))
	waitRound(false)
	recovered := time.Now()
	s.update(gvrCO, false, "etcd", operatorOK)
	r := <-done
	if r.err != nil || !r.o.Passed {
		t.Fatalf("outcome %+v, %v", r.o, r.err)
	}
	if r.o.Resets < 1 {
		t.Fatalf("resets = %d, want at least 1", r.o.Resets)
	}
	if held := r.at.Sub(recovered); held < window {
		t.Fatalf("passed %s after the last recovery, before the %s window", held, window)
	}
}

// TestDeadline: a gate never waits forever.
func TestDeadline(t *testing.T) {
	s := newSpoke(t)
	s.healthy("")
	// Healthy, but the window is longer than the deadline.
	g := &stability.Gate{Client: s.dc, Window: time.Hour, Interval: 50 * time.Millisecond, Timeout: 300 * time.Millisecond}
	o, err := g.Wait(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o.Passed || o.Reason != stability.ReasonTimedOut || !strings.Contains(o.Message, "deadline") {
		t.Fatalf("outcome %+v, want TimedOut before the window", o)
	}
}

func TestUnknownCheckRefused(t *testing.T) {
	s := newSpoke(t)
	g := &stability.Gate{Client: s.dc, Selection: stability.Selection{Checks: []string{"Etcd"}}}
	o, err := g.Wait(s.ctx)
	if err != nil || o.Passed || o.Reason != stability.ReasonUnknownCheck {
		t.Fatalf("outcome %+v, %v; want UnknownCheck", o, err)
	}
}
