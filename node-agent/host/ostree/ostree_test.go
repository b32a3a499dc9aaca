package ostree_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/host/hosttest"
	"ibu.dev/node-agent/host/ostree"
	"ibu.dev/node-agent/host/ostreetest"
)

type harness struct {
	sys *ostreetest.Sysroot
	s   *ostree.Stateroots
}

func (h harness) Stateroots() host.Stateroots { return h.s }
func (h harness) Initial() (stateroot, version string) {
	return ostreetest.InitialStateroot, ostreetest.InitialVersion
}
func (h harness) Boot(t *testing.T) { h.sys.Boot() }
func (h harness) Seed(t *testing.T, version string) (repoDir, commit string) {
	return ostreetest.SeedRepo(t, version)
}

func TestSuite(t *testing.T) {
	hosttest.Run(t, func(t *testing.T) hosttest.Harness {
		sys := ostreetest.NewSysroot(t)
		return harness{sys: sys, s: sys.Stateroots()}
	})
}

// TestPivotKeepsEtc checks, on the sysroot itself, what the 2022.7 pivot
// (a redeploy of the commit in its own stateroot) does to /etc and kargs.
func TestPivotKeepsEtc(t *testing.T) {
	ctx := t.Context()
	sys := ostreetest.NewSysroot(t)
	s := sys.Stateroots()
	repo, commit := ostreetest.SeedRepo(t, "4.16.9")
	if err := s.Import(ctx, repo, commit, "rhcos_4.16.9"); err != nil {
		t.Fatal(err)
	}
	d, err := s.Deploy(ctx, "rhcos_4.16.9", commit, []string{"root=UUID=1111", "console=tty0", "console=ttyS0", "ibu=4.16.9"})
	if err != nil {
		t.Fatal(err)
	}
	root, _, err := s.Paths(ctx, "rhcos_4.16.9")
	if err != nil {
		t.Fatal(err)
	}
	etc := filepath.Join(root, "etc")
	mustWrite(t, filepath.Join(etc, "added.conf"), "added\n")
	mustWrite(t, filepath.Join(etc, "hostname"), "changed\n")
	if err := os.Remove(filepath.Join(etc, "os-release")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDefault(ctx, "rhcos_4.16.9"); err != nil {
		t.Fatal(err)
	}
	deps := sys.Status()
	if len(deps) != 2 || deps[0].Stateroot != "rhcos_4.16.9" || deps[0].Checksum != commit {
		t.Fatalf("status after SetDefault: %+v", deps)
	}
	newRoot, _, err := s.Paths(ctx, "rhcos_4.16.9")
	if err != nil {
		t.Fatal(err)
	}
	if hasSetDefault(t) {
		if newRoot != root {
			t.Fatalf("set-default moved the deployment: %s -> %s", root, newRoot)
		}
	} else if deps[0].Serial != d.Serial+1 || newRoot == root {
		t.Fatalf("want a redeploy with serial %d, got %+v at %s", d.Serial+1, deps[0], newRoot)
	}
	if _, err := os.Stat(root); newRoot != root && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale deployment %s not undeployed: %v", root, err)
	}
	newEtc := filepath.Join(newRoot, "etc")
	wantFile(t, filepath.Join(newEtc, "added.conf"), "added\n")
	wantFile(t, filepath.Join(newEtc, "hostname"), "changed\n")
	if _, err := os.Stat(filepath.Join(newEtc, "os-release")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("etc/os-release deleted before the pivot is back: %v", err)
	}
	// The kernel arguments, given at Deploy, survive the pivot.
	entry := bootEntry(t, sys, "rhcos_4.16.9")
	for _, want := range []string{"root=UUID=1111 console=tty0 console=ttyS0 ibu=4.16.9 "} {
		if !strings.Contains(entry, want) {
			t.Fatalf("boot entry lacks %q:\n%s", want, entry)
		}
	}
}

// TestSetDefaultNative runs SetDefault against an ostree that has
// `admin set-default` (a shim over 2022.7 that renumbers the BLS entries).
func TestSetDefaultNative(t *testing.T) {
	ostreetest.Require(t)
	ctx := t.Context()
	shim := filepath.Join(t.TempDir(), "ostree-shim")
	log := shim + ".log"
	mustWrite(t, shim, `#!/bin/bash
set -e
echo "$*" >> `+log+`
if [ "$1 $2" = "admin --help" ]; then
  /usr/bin/ostree admin --help | sed 's/^  status /  set-default        Change the default bootloader entry\n  status /'
  exit 0
fi
if [ "$1 $2" = "admin set-default" ]; then
  sysroot=${3#--sysroot=}; idx=$4
  cd "$sysroot/boot/loader/entries"
  max=$(sed -n 's/^version //p' *.conf | sort -n | tail -1)
  f=$(for e in *.conf; do echo "$(sed -n 's/^version //p' $e) $e"; done | sort -rn | sed -n "$((idx+1))p" | cut -d' ' -f2)
  sed -i "s/^version .*/version $((max+1))/" "$f"
  exit 0
fi
exec /usr/bin/ostree "$@"
`)
	if err := os.Chmod(shim, 0o755); err != nil {
		t.Fatal(err)
	}
	sys := ostreetest.NewSysroot(t)
	s := sys.Stateroots(ostree.WithCommand(append(sys.Command[:len(sys.Command)-1:len(sys.Command)-1], shim)...))
	repo, commit := ostreetest.SeedRepo(t, "4.16.9")
	if err := s.Import(ctx, repo, commit, "new"); err != nil {
		t.Fatal(err)
	}
	d, err := s.Deploy(ctx, "new", commit, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.SetDefault(ctx, "new"); err != nil {
			t.Fatal(err)
		}
	}
	deps := sys.Status()
	if len(deps) != 2 || deps[0].Stateroot != "new" || deps[0].Serial != d.Serial {
		t.Fatalf("status: %+v", deps)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "admin set-default"); n != 1 {
		t.Fatalf("%d set-default calls, want 1:\n%s", n, b)
	}
	if strings.Contains(string(b), "--retain") {
		t.Fatalf("redeployed although set-default exists:\n%s", b)
	}
}

// TestImmutable runs ostree with CAP_LINUX_IMMUTABLE, as on a real host:
// deployment roots are immutable, and Remove still deletes the stateroot.
func TestImmutable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ctx := t.Context()
	sys := ostreetest.NewSysroot(t, ostreetest.WithImmutable())
	s := sys.Stateroots()
	repo, commit := ostreetest.SeedRepo(t, "4.16.9")
	if err := s.Import(ctx, repo, commit, "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deploy(ctx, "new", commit, nil); err != nil {
		t.Fatal(err)
	}
	root, varDir, err := s.Paths(ctx, "new")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("lsattr", "-d", root).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Fields(string(out))[0], "i") {
		t.Skipf("deployment root not immutable here: %s", out)
	}
	mustWrite(t, filepath.Join(root, "etc", "x.conf"), "x\n") // etc/ itself is not immutable
	if err := s.Remove(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(varDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stateroot dir left: %v", err)
	}
}

func TestBrokenSysroot(t *testing.T) {
	ostreetest.Require(t)
	ctx := t.Context()
	dir := t.TempDir() // exists, but has no ostree/repo
	s := ostree.New(dir)
	_, err := s.Deployments(ctx)
	ce, ok := errors.AsType[*ostree.CommandError](err)
	if !ok {
		t.Fatalf("err = %v, want a CommandError", err)
	}
	if ce.ExitCode != 1 || !strings.Contains(ce.Stderr, "ostree/repo") {
		t.Fatalf("CommandError = %+v", ce)
	}
	for _, want := range []string{"deployments: ", "ostree admin status --sysroot=" + dir, "exit status 1", "No such file or directory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := s.SetDefault(ctx, "rhcos"); err == nil || !strings.HasPrefix(err.Error(), "set default rhcos: ") {
		t.Errorf("SetDefault = %v", err)
	}
	if err := s.Import(ctx, t.TempDir(), strings.Repeat("ab", 32), "x"); err == nil || !strings.Contains(err.Error(), "pull-local") {
		t.Errorf("Import = %v", err)
	}
	s = ostree.New(dir, ostree.WithCommand("/nonexistent/ostree"))
	if _, err := s.Deployments(ctx); err == nil || !strings.Contains(err.Error(), "/nonexistent/ostree") {
		t.Errorf("Deployments with a missing binary = %v", err)
	}
}

func TestImportFromMissingRepo(t *testing.T) {
	ctx := t.Context()
	sys := ostreetest.NewSysroot(t)
	s := sys.Stateroots()
	_, commit := ostreetest.SeedRepo(t, "4.16.9")
	err := s.Import(ctx, filepath.Join(t.TempDir(), "nope"), commit, "new")
	if err == nil || !strings.HasPrefix(err.Error(), "import new: ") || !strings.Contains(err.Error(), "pull-local") {
		t.Fatalf("Import = %v", err)
	}
}

func TestBootedFile(t *testing.T) {
	ctx := t.Context()
	sys := ostreetest.NewSysroot(t)
	s := sys.Stateroots()
	tests := []struct {
		name    string
		content string
		want    string // booted stateroot; "" for ErrNotFound
	}{
		{"name and deployment", "rhcos " + sys.Commit + ".0\n", "rhcos"},
		{"name only", "rhcos\n", "rhcos"},
		{"unknown stateroot", "other\n", ""},
		{"wrong serial", "rhcos " + sys.Commit + ".7\n", ""},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustWrite(t, sys.BootedFile, tc.content)
			b, err := s.Booted(ctx)
			if tc.want == "" {
				if !errors.Is(err, host.ErrNotFound) {
					t.Fatalf("Booted = %+v, %v; want ErrNotFound", b, err)
				}
				return
			}
			if err != nil || b.Stateroot != tc.want || !b.Booted {
				t.Fatalf("Booted = %+v, %v", b, err)
			}
		})
	}
	if err := os.Remove(sys.BootedFile); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Booted(ctx); !errors.Is(err, host.ErrNotFound) {
		t.Fatalf("Booted without the file = %v", err)
	}
}

func TestParseStatus(t *testing.T) {
	a := strings.Repeat("a", 64)
	b := strings.Repeat("b", 64)
	tests := []struct {
		name string
		out  string
		want []host.Deployment
		err  bool
	}{
		{"none", "No deployments.\n", nil, false},
		{"two, unbooted", "  rhcos_4.16.9 " + a + ".1\n    Version: 4.16.9\n    origin refspec: " + a + "\n  rhcos " + b + ".0\n    Version: 4.14.38\n    origin refspec: " + b + "\n",
			[]host.Deployment{
				{Stateroot: "rhcos_4.16.9", Checksum: a, Serial: 1, Index: 0, Version: "4.16.9"},
				{Stateroot: "rhcos", Checksum: b, Serial: 0, Index: 1, Version: "4.14.38"},
			}, false},
		{"booted, staged, tags", "  new " + a + ".0 (staged)\n    Version: 2\n* rhcos " + b + ".3 (rollback)\n    origin refspec: x\n",
			[]host.Deployment{
				{Stateroot: "new", Checksum: a, Serial: 0, Index: 0, Version: "2"},
				{Stateroot: "rhcos", Checksum: b, Serial: 3, Index: 1, Booted: true},
			}, false},
		{"garbage", "error: something\n", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ostree.ParseStatus(tc.out)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
			}
		})
	}
}

func hasSetDefault(t *testing.T) bool {
	out, err := exec.Command("ostree", "admin", "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(out), "set-default")
}

func bootEntry(t *testing.T, sys *ostreetest.Sysroot, stateroot string) string {
	t.Helper()
	entries, err := filepath.Glob(filepath.Join(sys.Dir, "boot", "loader", "entries", "*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(e)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "(ostree:"+stateroot+":") {
			return string(b)
		}
	}
	t.Fatalf("no boot entry for %s in %v", stateroot, entries)
	return ""
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantFile(t *testing.T, path, content string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content {
		t.Fatalf("%s = %q, want %q", path, b, content)
	}
}

// TestHostRoot runs the backend as from a container with the host's / at
// a mount point: here a symlink to /, so host paths and local paths differ.
func TestHostRoot(t *testing.T) {
	ctx := t.Context()
	sys := ostreetest.NewSysroot(t)
	mnt := filepath.Join(t.TempDir(), "host")
	if err := os.Symlink("/", mnt); err != nil {
		t.Fatal(err)
	}
	s := sys.Stateroots(ostree.WithHostRoot(mnt))
	repo, commit := ostreetest.SeedRepo(t, "4.16.9")
	if err := s.Import(ctx, repo, commit, "new"); err == nil || !strings.Contains(err.Error(), "not under the host root") {
		t.Fatalf("Import from outside the host root = %v", err)
	}
	if err := s.Import(ctx, filepath.Join(mnt, repo), commit, "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deploy(ctx, "new", commit, nil); err != nil {
		t.Fatal(err)
	}
	root, varDir, err := s.Paths(ctx, "new")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(root, mnt+"/") || !strings.HasPrefix(varDir, mnt+"/") {
		t.Fatalf("Paths = %s %s, want under %s", root, varDir, mnt)
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "os-release")); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(varDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stateroot dir left: %v", err)
	}
}
