package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"ibu.dev/node-agent/agent/simspoke"
	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
)

// schedulerBinary builds cmd/scheduler once per test binary.
func schedulerBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "scheduler")
	cmd := exec.Command("go", "build", "-o", bin, "ibu.dev/services/scheduler/cmd/scheduler")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build the scheduler: %v", err)
	}
	return bin
}

func startProcess(t *testing.T, bin, url string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "--nats-url", url, "--name", "proc", "--lease-ttl", "3s", "--health-addr", "127.0.0.1:0", "--log-format", "text", "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	})
	return cmd
}

// The scheduler process is killed with SIGKILL in the middle of a plan and
// started again: the plan completes, and every cluster was driven exactly
// once per action (no generation lost, none written twice).
func TestSchedulerKilledMidPlanResumes(t *testing.T) {
	bin := schedulerBinary(t)
	f := newFleet(t, 8, func(_ string, s *simspoke.Spoke) { s.RebootDelay = 150 * time.Millisecond })
	first := startProcess(t, bin, f.srv.URL())
	f.request(basicPlan("killme", f.seedRef, 2, ids(8)...))
	f.waitPlan("killme", 60*time.Second, "upgrading", func(p state.Plan) bool {
		return p.CurrentStep == 1 && p.Counts.InProgress > 0
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	startProcess(t, bin, f.srv.URL())
	p := f.waitPlan("killme", 90*time.Second, "completed", terminal)
	if p.Phase != events.PlanCompleted {
		t.Fatalf("plan %s: %s %s", p.Phase, p.Reason, p.Message)
	}
	for _, id := range ids(8) {
		if gens := f.desiredHistory(id); !slices.Equal(gens, []int64{1, 2, 3}) {
			t.Errorf("%s: desired generations %v, want [1 2 3]", id, gens)
		}
	}
}
