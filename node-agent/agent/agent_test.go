package agent_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/stages"
)

var (
	prepDone     = stages.Position{Stage: stages.Prep, State: stages.Completed}
	prepFailed   = stages.Position{Stage: stages.Prep, State: stages.Failed}
	upgradeDone  = stages.Position{Stage: stages.Upgrade, State: stages.Completed, AfterPivot: true}
	rollbackDone = stages.Position{Stage: stages.Rollback, State: stages.Completed}
)

func TestLifecyclePrepUpgradeFinalize(t *testing.T) {
	f := newFixture(t)
	f.start()
	f.waitPosition(stages.IdlePosition, 0)

	gen := f.desire(stages.Prep)
	st := f.waitPosition(prepDone, gen)
	if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot, newRoot}) {
		t.Fatalf("after Prep deployments = %v: the new stateroot must not be the boot default", got)
	}
	if st.Precache == nil || st.Precache.String() != "total: 5 (pulled: 5, failed: 0)" || f.spoke.Images.Pulls() != 5 {
		t.Errorf("precache = %+v, pulls %d", st.Precache, f.spoke.Images.Pulls())
	}
	if !slices.Equal(st.ValidNextStages, []stages.Stage{stages.Idle, stages.Upgrade}) {
		t.Errorf("valid next = %v", st.ValidNextStages)
	}
	root, varDir, err := f.spoke.Host.Stateroots().Paths(t.Context(), newRoot)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(root, "etc", "hostname"):                 "sno-001\n", // identity kept, not the seed's
		filepath.Join(root, "etc", "seed-release"):             seedVersion + "\n",
		filepath.Join(varDir, "lib", "kubelet", "seed-marker"): seedVersion,
	} {
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", path, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "motd")); !os.IsNotExist(err) {
		t.Errorf("etc/motd is in the seed's deletions list but exists: %v", err)
	}

	gen = f.desire(stages.Upgrade)
	st = f.waitPosition(upgradeDone, gen)
	if got := f.deployments(); !slices.Equal(got, []string{"*" + newRoot, oldRoot}) {
		t.Fatalf("after Upgrade deployments = %v", got)
	}
	if f.spoke.Boots != 1 || st.BootedStateroot != newRoot {
		t.Errorf("boots %d, booted %s", f.spoke.Boots, st.BootedStateroot)
	}

	gen = f.desire(stages.Idle)
	st = f.waitPosition(stages.IdlePosition, gen)
	if got := f.deployments(); !slices.Equal(got, []string{"*" + newRoot}) {
		t.Fatalf("after Finalize deployments = %v", got)
	}
	var recorded []stages.Stage
	for _, h := range st.History {
		recorded = append(recorded, h.Stage)
		if h.End.IsZero() || h.State != stages.Completed || len(h.Phases) == 0 {
			t.Errorf("history record %+v incomplete", h)
		}
	}
	if !slices.Equal(recorded, []stages.Stage{stages.Prep, stages.Upgrade, stages.Idle}) {
		t.Errorf("history stages %v", recorded)
	}
	for step, n := range f.stepRuns() {
		if n != 1 {
			t.Errorf("step %s succeeded %d times, want once", step, n)
		}
	}
}

func TestRollbackThenFinalizeRollback(t *testing.T) {
	f := newFixture(t)
	f.start()
	f.waitPosition(prepDone, f.desire(stages.Prep))
	f.waitPosition(upgradeDone, f.desire(stages.Upgrade))

	f.waitPosition(rollbackDone, f.desire(stages.Rollback))
	if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot, newRoot}) {
		t.Fatalf("after Rollback deployments = %v", got)
	}
	f.waitPosition(stages.IdlePosition, f.desire(stages.Idle))
	if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot}) {
		t.Fatalf("after finalizing the rollback deployments = %v", got)
	}
	if f.spoke.Boots != 2 {
		t.Errorf("boots = %d, want 2", f.spoke.Boots)
	}
}

func TestAbortAfterPrepRemovesNewStateroot(t *testing.T) {
	f := newFixture(t)
	f.start()
	f.waitPosition(prepDone, f.desire(stages.Prep))
	f.waitPosition(stages.IdlePosition, f.desire(stages.Idle))
	if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot}) {
		t.Fatalf("after Abort deployments = %v", got)
	}
	if _, err := os.Stat(f.spoke.Config.WorkDir + "/seed-" + seedVersion); !os.IsNotExist(err) {
		t.Errorf("seed work directory left behind: %v", err)
	}
}

// A desired stage the state machine does not allow is refused with a
// condition and a rejected event, and nothing changes on the host.
func TestInvalidDesiredStageRefused(t *testing.T) {
	f := newFixture(t)
	f.start()
	f.waitPosition(stages.IdlePosition, 0)
	for _, c := range []struct {
		stage stages.Stage
		cond  string
		msg   string
	}{
		{stages.Upgrade, stages.CondUpgradeInProgress, "Prep first"},
		{stages.Rollback, stages.CondRollbackInProgress, "Upgrade not started or already finalized"},
	} {
		gen := f.desire(c.stage)
		st := f.waitPosition(stages.IdlePosition, gen)
		cond, ok := stages.FindCondition(st.Conditions, c.cond)
		if !ok || cond.Reason != stages.ReasonInvalidTransition || cond.Message != c.msg {
			t.Errorf("%s: condition %+v, want InvalidTransition %q", c.stage, cond, c.msg)
		}
	}
	if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot}) {
		t.Fatalf("deployments changed: %v", got)
	}
	rej := f.events(events.TypeRejected)
	if len(rej) != 2 {
		t.Fatalf("%d rejected events, want 2", len(rej))
	}
	r, _ := events.DataAs[events.Rejected](rej[0])
	if r.Reason != stages.ReasonInvalidTransition || !strings.Contains(r.Message, "Prep first") {
		t.Errorf("rejected event %+v", r)
	}
}

// Compatibility is checked before anything is pulled; every reason is
// reported at once.
func TestIncompatibleSeedFailsPrepBeforeAnyChange(t *testing.T) {
	f := newFixture(t, func(o *fixtureOpts) {
		o.mutateSeed = func(i *seedimage.SeedInfo) { i.Architecture, i.NetworkType = "arm64", "OpenShiftSDN" }
	})
	f.start()
	st := f.waitPosition(prepFailed, f.desire(stages.Prep))
	for _, want := range []string{"ArchitectureMismatch", "NetworkTypeMismatch"} {
		if !strings.Contains(st.Message, want) {
			t.Errorf("status message %q lacks %s", st.Message, want)
		}
	}
	if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot}) {
		t.Fatalf("deployments changed: %v", got)
	}
	if n := f.reg.BlobGets(); len(n) > 1 {
		t.Errorf("layers were pulled before the compatibility check: %v", n)
	}
	if !slices.Equal(st.ValidNextStages, []stages.Stage{stages.Idle, stages.Prep}) {
		t.Errorf("valid next = %v", st.ValidNextStages)
	}
}

func TestBadRegistryCredentialsFailPrep(t *testing.T) {
	f := newFixture(t)
	bad := filepath.Join(t.TempDir(), "auth.json")
	os.WriteFile(bad, []byte(`{"auths":{"`+f.reg.Host+`":{"auth":"aWJ1Ondyb25n"}}}`), 0o600)
	f.spoke.Config.SeedOptions = []seedimage.Option{seedimage.WithAuthFile(bad)}
	f.start()
	st := f.waitPosition(prepFailed, f.desire(stages.Prep))
	if !strings.Contains(st.Message, "InspectSeed") || !strings.Contains(strings.ToLower(st.Message), "credentials") {
		t.Errorf("status message %q does not say the credentials were refused", st.Message)
	}
	if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot}) {
		t.Fatalf("deployments changed: %v", got)
	}
}

// A failed Prep resumes from the failed step: nothing done is redone.
func TestFailedPrepResumes(t *testing.T) {
	f := newFixture(t)
	f.spoke.Images.FailPull(seedImages()[3], errors.New("registry hiccup"))
	f.start()
	st := f.waitPosition(prepFailed, f.desire(stages.Prep))
	if st.Precache == nil || st.Precache.Failed != 1 || st.Precache.Pulled != 4 {
		t.Fatalf("precache = %+v", st.Precache)
	}
	f.spoke.Images.FailPull(seedImages()[3], nil)
	f.waitPosition(prepDone, f.desire(stages.Prep))
	runs := f.stepRuns()
	for _, step := range []string{"InspectSeed", "CheckCompatibility", "PullSeed", "ImportCommit", "DeployStateroot", "ApplyVar", "ApplyEtc", "Precache"} {
		if runs["Prep/"+step] != 1 {
			t.Errorf("step %s succeeded %d times, want once", step, runs["Prep/"+step])
		}
	}
	if f.spoke.Images.Pulls() != 5 {
		t.Errorf("images pulled %d times, want 5", f.spoke.Images.Pulls())
	}
}
