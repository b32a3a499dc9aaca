package sim_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/host/hosttest"
	"ibu.dev/node-agent/host/sim"
)

type harness struct{ h *sim.Host }

func (h harness) Stateroots() host.Stateroots          { return h.h.Stateroots() }
func (h harness) Initial() (stateroot, version string) { return "rhcos", "4.14.38" }
func (h harness) Boot(t *testing.T)                    { h.h.Boot() }
func (h harness) Seed(t *testing.T, version string) (repoDir, commit string) {
	commit = sim.Checksum(version)
	h.h.AddCommit(commit, version)
	return "", commit
}

func TestSuite(t *testing.T) {
	hosttest.Run(t, func(t *testing.T) hosttest.Harness {
		return harness{sim.NewHost("rhcos", "4.14.38", sim.WithDir(t.TempDir()))}
	})
}

func TestReboot(t *testing.T) {
	h := sim.NewHost("rhcos", "4.14.38")
	ctx := t.Context()
	s := h.Stateroots()
	commit := sim.Checksum("4.16.9")
	if err := s.Import(ctx, "", commit, "rhcos_4.16.9"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deploy(ctx, "rhcos_4.16.9", commit, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDefault(ctx, "rhcos_4.16.9"); err != nil {
		t.Fatal(err)
	}
	if h.RebootRequested() {
		t.Fatal("reboot requested before Reboot")
	}
	id0, _ := h.BootID(ctx)
	if err := h.Rebooter(3*time.Second).Reboot(ctx, "pivot"); !errors.Is(err, host.ErrRebooting) {
		t.Fatalf("Reboot = %v, want ErrRebooting", err)
	}
	req, ok := h.PendingReboot()
	if !ok || !h.RebootRequested() || req.Reason != "pivot" || req.Delay != 3*time.Second {
		t.Fatalf("PendingReboot = %+v, %v", req, ok)
	}
	// Nothing changes until the harness boots the host.
	if b, _ := s.Booted(ctx); b.Stateroot != "rhcos" {
		t.Fatalf("booted %s before Boot", b.Stateroot)
	}
	if d := h.Boot(); d.Stateroot != "rhcos_4.16.9" || !d.Booted || d.Index != 0 {
		t.Fatalf("Boot = %+v", d)
	}
	if h.RebootRequested() {
		t.Fatal("reboot still requested after Boot")
	}
	if id1, _ := h.BootID(ctx); id1 == id0 {
		t.Fatalf("BootID unchanged by Boot: %s", id1)
	}
	// A host whose boot loader fell back to the old stateroot.
	d, err := h.BootInto("rhcos")
	if err != nil || d.Stateroot != "rhcos" || d.Index != 1 {
		t.Fatalf("BootInto = %+v, %v", d, err)
	}
	if _, err := h.BootInto("nope"); !errors.Is(err, host.ErrNotFound) {
		t.Fatalf("BootInto(nope) = %v", err)
	}
}

func TestFaults(t *testing.T) {
	ctx := t.Context()
	boom := errors.New("boom")
	h := sim.NewHost("rhcos", "4.14.38")
	s := h.Stateroots()
	commit := sim.Checksum("4.16.9")

	h.FailNext(sim.OpImport, boom)
	if err := s.Import(ctx, "", commit, "new"); !errors.Is(err, boom) {
		t.Fatalf("Import = %v, want boom", err)
	}
	if _, err := s.Deploy(ctx, "new", commit, nil); !errors.Is(err, host.ErrNotFound) {
		t.Fatalf("Deploy after failed Import = %v, want ErrNotFound", err)
	}
	if err := s.Import(ctx, "", commit, "new"); err != nil {
		t.Fatal(err)
	}
	// A crash right after the deploy: the retry finds the deployment.
	h.FailAfter(sim.OpDeploy, boom)
	if _, err := s.Deploy(ctx, "new", commit, nil); !errors.Is(err, boom) {
		t.Fatalf("Deploy = %v, want boom", err)
	}
	d, err := s.Deploy(ctx, "new", commit, nil)
	if err != nil || d.Index != 1 || d.Stateroot != "new" {
		t.Fatalf("Deploy retry = %+v, %v", d, err)
	}
	deps, _ := s.Deployments(ctx)
	if len(deps) != 2 {
		t.Fatalf("deployments = %+v", deps)
	}
	h.FailNext(sim.OpReboot, boom)
	if err := h.Rebooter(0).Reboot(ctx, "x"); !errors.Is(err, boom) || h.RebootRequested() {
		t.Fatalf("Reboot = %v, requested %v", err, h.RebootRequested())
	}
}

func TestPathsWithoutDir(t *testing.T) {
	h := sim.NewHost("rhcos", "4.14.38")
	if _, _, err := h.Stateroots().Paths(t.Context(), "rhcos"); !errors.Is(err, sim.ErrNoDir) {
		t.Fatalf("Paths = %v, want ErrNoDir", err)
	}
}

func TestPathsLayout(t *testing.T) {
	dir := t.TempDir()
	h := sim.NewHost("rhcos", "4.14.38", sim.WithDir(dir))
	root, varDir, err := h.Stateroots().Paths(t.Context(), "rhcos")
	if err != nil {
		t.Fatal(err)
	}
	wantRoot := filepath.Join(dir, "ostree/deploy/rhcos/deploy", sim.Checksum("4.14.38")+".0")
	if root != wantRoot || varDir != filepath.Join(dir, "ostree/deploy/rhcos/var") {
		t.Fatalf("Paths = %s %s", root, varDir)
	}
	if _, err := os.Stat(filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkHosts measures a prep + pivot + boot + finalize cycle on
// in-memory hosts, the cost per simulated agent.
func BenchmarkHosts(b *testing.B) {
	ctx := b.Context()
	commit := sim.Checksum("4.16.9")
	b.ReportAllocs()
	for b.Loop() {
		h := sim.NewHost("rhcos", "4.14.38")
		h.AddCommit(commit, "4.16.9")
		s := h.Stateroots()
		_ = s.Import(ctx, "", commit, "rhcos_4.16.9")
		_, _ = s.Deploy(ctx, "rhcos_4.16.9", commit, nil)
		_ = s.SetDefault(ctx, "rhcos_4.16.9")
		_ = h.Rebooter(0).Reboot(ctx, "pivot")
		h.Boot()
		if err := s.Remove(ctx, "rhcos"); err != nil {
			b.Fatal(err)
		}
	}
}
