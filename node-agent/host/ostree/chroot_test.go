package ostree_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"ibu.dev/node-agent/host/ostree"
	"ibu.dev/node-agent/host/ostreetest"
)

// TestHostRootThroughChroot runs the backend the way the agent's container
// does (--host-root /host): the host's own ostree through chroot, with the
// host's / at a mount point (here a symlink to /).
func TestHostRootThroughChroot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("chroot needs root: run the node-agent tests as root (the agent runs privileged)")
	}
	if _, err := exec.LookPath("chroot"); err != nil {
		t.Fatalf("chroot is missing: %v (apt-get install coreutils)", err)
	}
	ctx := t.Context()
	sys := ostreetest.NewSysroot(t)
	mnt := filepath.Join(t.TempDir(), "host")
	if err := os.Symlink("/", mnt); err != nil {
		t.Fatal(err)
	}
	s := sys.Stateroots(ostree.WithCommand(append([]string{"chroot", mnt}, sys.Command...)...), ostree.WithHostRoot(mnt))
	booted, err := s.Booted(ctx)
	if err != nil || booted.Stateroot != ostreetest.InitialStateroot {
		t.Fatalf("Booted through chroot = %+v, %v", booted, err)
	}
	repo, commit := ostreetest.SeedRepo(t, "4.16.9")
	if err := s.Import(ctx, filepath.Join(mnt, repo), commit, "new"); err != nil {
		t.Fatalf("Import through chroot: %v", err)
	}
	if _, err := s.Deploy(ctx, "new", commit, nil); err != nil {
		t.Fatalf("Deploy through chroot: %v", err)
	}
	if err := s.Remove(ctx, "new"); err != nil {
		t.Fatalf("Remove through chroot: %v", err)
	}
}
