package agent_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"ibu.dev/shared/stages"
)

// runCrashing runs the spoke and starts it again whenever it stops at the
// boundary (once), as a process killed there and restarted by systemd would.
func (f *fixture) runCrashing(boundary string) *atomic.Int32 {
	var crashes atomic.Int32
	f.spoke.StepHook = func(b string) error {
		if b == boundary && crashes.Load() == 0 {
			crashes.Add(1)
			return errors.New("killed")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		for {
			err := f.spoke.Run(ctx, f.js)
			if ctx.Err() != nil || err == nil {
				done <- nil
				return
			}
			if crashes.Load() == 0 {
				done <- err
				return
			}
			// "killed" at the boundary: start again from the journal.
		}
	}()
	f.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				f.t.Errorf("agent: %v", err)
			}
		case <-time.After(10 * time.Second):
			f.t.Error("agent did not stop")
		}
	})
	return &crashes
}

// Every step boundary of Prep, Upgrade and Finalize: stopping the agent
// there and starting it again reaches the same end as an uninterrupted run,
// every step succeeds exactly once (the reboot happens once), and the
// history has one record per stage.
func TestCrashAtEveryStepBoundary(t *testing.T) {
	var boundaries []string
	for _, plan := range [][]string{
		{"InspectSeed", "CheckCompatibility", "PullSeed", "ImportCommit", "DeployStateroot", "ApplyVar", "ApplyEtc", "Precache"},
		{"BackupData", "ExportIdentity", "Pivot", "RecordBootID", "Reboot", "VerifyBooted", "HealthCheck", "RestoreData"},
		{"RemoveOldStateroot", "CleanWorkDir"},
	} {
		for _, s := range plan {
			boundaries = append(boundaries, "before:"+s, "after:"+s)
		}
	}
	for _, b := range boundaries {
		t.Run(b, func(t *testing.T) {
			f := newFixture(t)
			crashes := f.runCrashing(b)
			f.waitPosition(stages.IdlePosition, 0)
			f.waitPosition(prepDone, f.desire(stages.Prep))
			f.waitPosition(upgradeDone, f.desire(stages.Upgrade))
			st := f.waitPosition(stages.IdlePosition, f.desire(stages.Idle))
			if crashes.Load() != 1 {
				t.Fatalf("the agent never reached %s", b)
			}
			if got := f.deployments(); !slices.Equal(got, []string{"*" + newRoot}) {
				t.Errorf("deployments = %v", got)
			}
			if f.spoke.Boots != 1 {
				t.Errorf("host rebooted %d times, want 1", f.spoke.Boots)
			}
			runs := f.stepRuns()
			if len(runs) != 18 {
				t.Errorf("%d distinct steps succeeded, want 18: %v", len(runs), runs)
			}
			for step, n := range runs {
				if n != 1 {
					t.Errorf("step %s succeeded %d times", step, n)
				}
			}
			var hist []stages.Stage
			for _, h := range st.History {
				hist = append(hist, h.Stage)
				if h.State != stages.Completed || h.End.IsZero() {
					t.Errorf("history record %+v", h)
				}
			}
			if !slices.Equal(hist, []stages.Stage{stages.Prep, stages.Upgrade, stages.Idle}) {
				t.Errorf("history = %v", hist)
			}
		})
	}
}
