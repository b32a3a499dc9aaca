package events

import (
	"errors"
	"testing"
)

// TestAsks: every pair joins a task to two cluster events, the task's
// service is the pair's, and the failed answer's data is a Failure.
func TestAsks(t *testing.T) {
	if len(Asks()) != 5 {
		t.Fatalf("%d pairs, want 5", len(Asks()))
	}
	for _, a := range Asks() {
		req, ok := Lookup(a.Request)
		if !ok || req.Scope != ScopeTask || req.Service != a.Service {
			t.Errorf("%s: request spec %+v (found %v); want a task for %s", a.Request, req, ok, a.Service)
		}
		for _, typ := range []string{a.Completed, a.Failed} {
			if s, ok := Lookup(typ); !ok || s.Scope != ScopeCluster {
				t.Errorf("%s: answer %s is not a cluster event (%+v, %v)", a.Request, typ, s, ok)
			}
		}
		s, _ := Lookup(a.Failed)
		if _, ok := s.NewData().(Failure); !ok {
			t.Errorf("%s: the data of %s is not a Failure", a.Request, a.Failed)
		}
		if a.Asker == "" {
			t.Errorf("%s: no asker", a.Request)
		}
		if got, ok := AskOf(a.Request); !ok || got != a {
			t.Errorf("AskOf(%s) = %+v, %v", a.Request, got, ok)
		}
	}
	if _, ok := AskOf(TypeStageChanged); ok {
		t.Errorf("AskOf(%s) found a pair", TypeStageChanged)
	}
	want := map[string][2]string{
		TypeHealthCheckRequested: {TypeHealthPassed, TypeHealthFailed},
		TypeBackupRequested:      {TypeBackupCompleted, TypeBackupFailed},
		TypeRestoreRequested:     {TypeRestoreCompleted, TypeRestoreFailed},
		TypePrecacheRequested:    {TypePrecachePlanned, TypePrecacheFailed},
		TypeSeedCaptureRequested: {TypeSeedCaptureCompleted, TypeSeedCaptureFailed},
	}
	for req, w := range want {
		a, _ := AskOf(req)
		if a.Completed != w[0] || a.Failed != w[1] {
			t.Errorf("AskOf(%s) = %+v; want %s / %s", req, a, w[0], w[1])
		}
	}
}

func TestFailure(t *testing.T) {
	var f Failure = SeedCaptureFailed{Reason: "ExportFailed", Message: "disk full"}
	if r, m := f.Failure(); r != "ExportFailed" || m != "disk full" {
		t.Errorf("Failure() = %q, %q", r, m)
	}
}

func TestFailureOf(t *testing.T) {
	e, err := New("/t", "sno-001", SeedCaptureFailed{ClusterID: "sno-001", BuildID: "b1", Mode: CaptureFull,
		Reason: "ExportFailed", Message: "disk full", WorkloadsRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := FailureOf(e)
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := f.(*SeedCaptureFailed)
	if r, m := f.Failure(); !ok || r != "ExportFailed" || m != "disk full" || !sc.WorkloadsRunning {
		t.Errorf("FailureOf = %#v", f)
	}
	ok2, _ := New("/t", "sno-001", HealthPassed{ClusterID: "sno-001", Generation: 1, Step: "s"})
	if _, err := FailureOf(ok2); !errors.Is(err, ErrSchema) {
		t.Errorf("FailureOf(health.passed) = %v; want ErrSchema", err)
	}
}

func TestClusterEventFilter(t *testing.T) {
	got, err := ClusterEventFilter("sno-001")
	if err != nil || got != "ibu.event.sno-001.>" {
		t.Errorf("ClusterEventFilter(sno-001) = %q, %v", got, err)
	}
	for _, bad := range []string{"", "a.b", "*", ">", "plan"} {
		if got, err := ClusterEventFilter(bad); !errors.Is(err, ErrInvalidID) {
			t.Errorf("ClusterEventFilter(%q) = %q, %v; want ErrInvalidID", bad, got, err)
		}
	}
	if AnswerID("c.r.1.s") != "c.r.1.s.answer" {
		t.Errorf("AnswerID = %q", AnswerID("c.r.1.s"))
	}
}

func TestPlanEventFilter(t *testing.T) {
	got, err := PlanEventFilter("p1")
	if err != nil || got != "ibu.event.plan.p1.>" {
		t.Errorf("PlanEventFilter(p1) = %q, %v", got, err)
	}
	for _, bad := range []string{"", "a.b", "*", ">"} {
		if got, err := PlanEventFilter(bad); !errors.Is(err, ErrInvalidID) {
			t.Errorf("PlanEventFilter(%q) = %q, %v; want ErrInvalidID", bad, got, err)
		}
	}
}
