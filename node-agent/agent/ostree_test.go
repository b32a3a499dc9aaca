package agent_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/host/ostree"
	"ibu.dev/node-agent/host/ostreetest"
	"ibu.dev/node-agent/host/sim"
	"ibu.dev/node-agent/journal"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/telemetry"
)

// tarDir packs dir under prefix (e.g. "repo/"), as a seed's ostree layer.
func tarDir(t *testing.T, dir, prefix string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = prefix + filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}

// emulatedReboot "reboots" a test sysroot: the agent's Run returns and the
// harness writes the boot default into the booted file; the boot id
// changes at every boot.
type emulatedReboot struct{ boots atomic.Int64 }

func (r *emulatedReboot) Reboot(context.Context, string) error { return host.ErrRebooting }
func (r *emulatedReboot) BootID(context.Context) (string, error) {
	return fmt.Sprintf("boot-%d", r.boots.Load()), nil
}

// ostreeAgent runs an agent for f's cluster on the real ostree backend of
// sys, through emulated reboots, until the test ends.
func ostreeAgent(t *testing.T, f *fixture, sys *ostreetest.Sysroot) *ostree.Stateroots {
	sr := sys.Stateroots()
	oldDir, _, err := sr.Paths(t.Context(), oldRoot)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(oldDir, "etc", "hostname"), []byte(cluster+"\n"), 0o644)
	rb := &emulatedReboot{}
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.spoke.Config
	cfg.WorkDir = filepath.Join(t.TempDir(), "work")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		for {
			a, err := agent.New(cfg, agent.Deps{JS: f.js, Stateroots: sr, Rebooter: rb, Boot: rb,
				Images: sim.NewImages(0, 0), Journal: j, Telemetry: telemetry.Telemetry{Logger: f.spoke.Logger}})
			if err != nil {
				done <- err
				return
			}
			err = a.Run(ctx)
			if !errors.Is(err, host.ErrRebooting) {
				done <- err
				return
			}
			sys.Boot()
			rb.boots.Add(1)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop")
		}
	})
	return sr
}

func ostreeFixture(t *testing.T) (*fixture, *ostreetest.Sysroot, string) {
	sys := ostreetest.NewSysroot(t)
	repoDir, commit := ostreetest.SeedRepo(t, seedVersion)
	f := newFixture(t, func(o *fixtureOpts) {
		o.ostreeTar = tarDir(t, repoDir, "repo/")
		o.mutateSeed = func(i *seedimage.SeedInfo) { i.OstreeCommit = commit }
	})
	return f, sys, commit
}

// adminStatus is `ostree admin status` as "stateroot@commit" in boot order.
func adminStatus(sys *ostreetest.Sysroot) string {
	var parts []string
	for _, d := range sys.Status() {
		parts = append(parts, fmt.Sprintf("%s@%s", d.Stateroot, d.Checksum[:8]))
	}
	return strings.Join(parts, " ")
}

func wantStatus(t *testing.T, sys *ostreetest.Sysroot, step, want string) {
	t.Helper()
	if got := adminStatus(sys); got != want {
		t.Fatalf("after %s: ostree admin status = %q, want %q", step, got, want)
	}
}

// The whole life cycle on the real ostree backend: Prep deploys the seed's
// commit into a new stateroot beside the booted one, not as the default;
// Upgrade makes it the boot default (checked with ostree admin status) and
// boots it, keeping /etc; Finalize removes the old stateroot.
func TestLifecycleOnRealOstree(t *testing.T) {
	f, sys, commit := ostreeFixture(t)
	sr := ostreeAgent(t, f, sys)
	oldC, newC := sys.Commit[:8], commit[:8]

	f.waitPosition(prepDone, f.desire(stages.Prep))
	wantStatus(t, sys, "Prep", fmt.Sprintf("rhcos@%s rhcos_4.16.9@%s", oldC, newC))
	newDir, _, err := sr.Paths(t.Context(), newRoot)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(newDir, "etc", "hostname")); string(b) != cluster+"\n" {
		t.Errorf("new stateroot's hostname = %q, want the cluster's", b)
	}

	f.waitPosition(upgradeDone, f.desire(stages.Upgrade))
	wantStatus(t, sys, "Upgrade", fmt.Sprintf("rhcos_4.16.9@%s rhcos@%s", newC, oldC))
	newDir, _, _ = sr.Paths(t.Context(), newRoot)
	if b, _ := os.ReadFile(filepath.Join(newDir, "etc", "seed-release")); string(b) != seedVersion+"\n" {
		t.Errorf("seed /etc content lost across the pivot: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(newDir, "etc", "hostname")); string(b) != cluster+"\n" {
		t.Errorf("identity lost across the pivot: %q", b)
	}

	f.waitPosition(stages.IdlePosition, f.desire(stages.Idle))
	wantStatus(t, sys, "Finalize", fmt.Sprintf("rhcos_4.16.9@%s", newC))
	if _, err := os.Stat(filepath.Join(sys.Dir, "ostree", "deploy", oldRoot)); !os.IsNotExist(err) {
		t.Errorf("old stateroot directory left behind: %v", err)
	}
}

// Rollback makes the old stateroot the default again and boots it; its
// finalize removes the new stateroot.
func TestRollbackOnRealOstree(t *testing.T) {
	f, sys, commit := ostreeFixture(t)
	ostreeAgent(t, f, sys)
	oldC, newC := sys.Commit[:8], commit[:8]
	f.waitPosition(prepDone, f.desire(stages.Prep))
	f.waitPosition(upgradeDone, f.desire(stages.Upgrade))
	st := f.waitPosition(rollbackDone, f.desire(stages.Rollback))
	if got := adminStatus(sys); !strings.HasPrefix(got, "rhcos@"+oldC) {
		t.Fatalf("after Rollback: ostree admin status = %q, want rhcos first", got)
	}
	if st.BootedStateroot != oldRoot {
		t.Errorf("booted %s after rollback", st.BootedStateroot)
	}
	f.waitPosition(stages.IdlePosition, f.desire(stages.Idle))
	if got := adminStatus(sys); strings.Contains(got, newC) || !strings.HasPrefix(got, "rhcos@") {
		t.Fatalf("after finalizing the rollback: ostree admin status = %q", got)
	}
}

// Abort after Prep removes the new stateroot and leaves the old default.
func TestAbortOnRealOstree(t *testing.T) {
	f, sys, _ := ostreeFixture(t)
	ostreeAgent(t, f, sys)
	f.waitPosition(prepDone, f.desire(stages.Prep))
	f.waitPosition(stages.IdlePosition, f.desire(stages.Idle))
	wantStatus(t, sys, "Abort", "rhcos@"+sys.Commit[:8])
	if _, err := os.Stat(filepath.Join(sys.Dir, "ostree", "deploy", newRoot)); !os.IsNotExist(err) {
		t.Errorf("new stateroot directory left behind: %v", err)
	}
}
