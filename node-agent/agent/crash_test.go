package agent_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"ibu.dev/shared/stages"
)

// runCrashing runs the spoke and starts it again whenever it stops at the
// boundary (once), as a process killed there and restarted by systemd would.
func (f *fixture) runCrashing(boundary string) {
	f.armed.Store(true)
	f.runWithCrashAt(boundary)
}

// Every step boundary of Prep, Upgrade and Finalize: stopping the agent
// there and starting it again reaches the same end as an uninterrupted run,
// every step succeeds exactly once (the reboot happens once), and the
// history has one record per stage.
func TestCrashAtEveryStepBoundary(t *testing.T) {
	var boundaries []string
	for _, plan := range [][]string{
		{"PrepHealthCheck", "InspectSeed", "CheckCompatibility", "ValidateOADP", "PullSeed", "ImportCommit", "DeployStateroot", "ApplyVar", "ApplyEtc", "Precache"},
		{"PrePivotHealthCheck", "BackupData", "ExportIdentity", "Pivot", "RecordBootID", "Reboot", "VerifyBooted", "HealthCheck", "RestoreData"},
		{"FinalizeHealthCheck", "RemoveOldStateroot", "CleanWorkDir"},
	} {
		for _, s := range plan {
			boundaries = append(boundaries, "before:"+s, "after:"+s)
		}
	}
	for _, b := range boundaries {
		t.Run(b, func(t *testing.T) {
			f := newFixture(t)
			f.runCrashing(b)
			f.waitPosition(stages.IdlePosition, 0)
			f.waitPosition(prepDone, f.desire(stages.Prep))
			f.waitPosition(upgradeDone, f.desire(stages.Upgrade))
			st := f.waitPosition(stages.IdlePosition, f.desire(stages.Idle))
			f.checkSameEnd(b, []string{"*" + newRoot}, 1, 22)
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
			f.checkSameEnd(b, []string{"*" + oldRoot}, 2, 26)
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

// checkSameEnd asserts that a run stopped once at boundary ended as an
// uninterrupted one: the deployments, the number of reboots, and every one
// of the distinct steps succeeded exactly once.
func (f *fixture) checkSameEnd(boundary string, deployments []string, boots, distinctSteps int) {
	t := f.t
	t.Helper()
	if f.crashes.Load() != 1 {
		t.Fatalf("the agent never reached %s", boundary)
	}
	if got := f.deployments(); !slices.Equal(got, deployments) {
		t.Errorf("deployments = %v, want %v", got, deployments)
	}
	if f.spoke.Boots != boots {
		t.Errorf("host rebooted %d times, want %d", f.spoke.Boots, boots)
	}
	runs := f.stepRuns()
	if len(runs) != distinctSteps {
		t.Errorf("%d distinct steps succeeded, want %d: %v", len(runs), distinctSteps, runs)
	}
	for step, n := range runs {
		if n != 1 {
			t.Errorf("step %s succeeded %d times", step, n)
		}
	}
}
