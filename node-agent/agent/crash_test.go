package agent_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"ibu.dev/shared/stages"
)

// runCrashing runs the spoke and starts it again whenever it stops at the
// boundary (once), as a process killed there and restarted by systemd would.
func (f *fixture) runCrashing(boundary string) *atomic.Int32 {
	f.armed.Store(true)
	f.runWithCrashAt(boundary)
	return &f.crashes
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

// The same for Rollback and the finalize of a rollback.
func TestCrashAtEveryRollbackBoundary(t *testing.T) {
	var boundaries []string
	for _, s := range []string{"SetDefaultOld", "RecordBootID", "Reboot", "VerifyBooted", "HealthCheck", "RemoveNewStateroot"} {
		boundaries = append(boundaries, "before:"+s, "after:"+s)
	}
	for _, b := range boundaries {
		t.Run(b, func(t *testing.T) {
			f := newFixture(t)
			f.runWithCrashAt(b)
			f.waitPosition(prepDone, f.desire(stages.Prep))
			f.waitPosition(upgradeDone, f.desire(stages.Upgrade))
			f.armed.Store(true)
			f.waitPosition(rollbackDone, f.desire(stages.Rollback))
			f.waitPosition(stages.IdlePosition, f.desire(stages.Idle))
			if f.crashes.Load() != 1 {
				t.Fatalf("the agent never reached %s", b)
			}
			if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot}) {
				t.Errorf("deployments = %v", got)
			}
			if f.spoke.Boots != 2 {
				t.Errorf("host rebooted %d times, want 2", f.spoke.Boots)
			}
			runs := f.stepRuns()
			if len(runs) != 23 {
				t.Errorf("%d distinct steps succeeded, want 23: %v", len(runs), runs)
			}
			for step, n := range runs {
				if n != 1 {
					t.Errorf("step %s succeeded %d times", step, n)
				}
			}
		})
	}
}

// runWithCrashAt runs the spoke with one crash at boundary, armed once
// f.armed is set (a rollback's boundaries name steps the upgrade runs too).
func (f *fixture) runWithCrashAt(boundary string) {
	f.spoke.StepHook = func(b string) error {
		if b == boundary && f.armed.Load() && f.crashes.Load() == 0 {
			f.crashes.Add(1)
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
			if f.crashes.Load() == 0 {
				done <- err
				return
			}
		}
	}()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("agent: %v", err)
		}
	})
}
