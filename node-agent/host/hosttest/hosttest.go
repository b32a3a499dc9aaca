// Package hosttest is the behavioural test suite every host.Stateroots
// backend must pass (the ostree CLI and the simulation): Run drives a
// full upgrade cycle, rollback, removal and the error cases through a small
// Harness, calling every operation twice to check idempotence.
package hosttest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"ibu.dev/node-agent/host"
)

// Harness is one fresh host for the suite.
type Harness interface {
	// Stateroots is the backend under test.
	Stateroots() host.Stateroots
	// Initial is the stateroot and version the host starts booted on.
	Initial() (stateroot, version string)
	// Seed returns a repository (for Import) holding a commit of an OS
	// of the given version.
	Seed(t *testing.T, version string) (repoDir, commit string)
	// Boot restarts the host into its boot default.
	Boot(t *testing.T)
}

// Stateroot and version the suite upgrades to.
const (
	NewStateroot = "rhcos_4.16.9"
	NewVersion   = "4.16.9"
)

// Run runs the suite; newHarness makes a fresh host for each subtest,
// which run in parallel.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"Initial", testInitial},
		{"UpgradeAndRollback", testUpgradeAndRollback},
		{"Finalize", testFinalize},
		{"AbortAndRedo", testAbortAndRedo},
		{"Errors", testErrors},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newHarness(t))
		})
	}
}

func testInitial(t *testing.T, h Harness) {
	ctx := t.Context()
	sr, version := h.Initial()
	deps := deployments(t, h)
	if len(deps) != 1 {
		t.Fatalf("deployments = %+v, want one", deps)
	}
	d := deps[0]
	if d.Stateroot != sr || d.Version != version || d.Index != 0 || !d.Booted || len(d.Checksum) != 64 {
		t.Fatalf("initial deployment = %+v, want %s %s at index 0, booted", d, sr, version)
	}
	b, err := h.Stateroots().Booted(ctx)
	if err != nil || b != d {
		t.Fatalf("Booted() = %+v, %v; want %+v", b, err, d)
	}
}

// prep imports and deploys the seed into NewStateroot, twice each.
func prep(t *testing.T, h Harness) host.Deployment {
	t.Helper()
	ctx := t.Context()
	s := h.Stateroots()
	repo, commit := h.Seed(t, NewVersion)
	for range 2 {
		if err := s.Import(ctx, repo, commit, NewStateroot); err != nil {
			t.Fatalf("Import: %v", err)
		}
	}
	var got []host.Deployment
	for range 2 {
		d, err := s.Deploy(ctx, NewStateroot, commit, []string{"root=UUID=0000", "rw", "ibu=" + NewVersion})
		if err != nil {
			t.Fatalf("Deploy: %v", err)
		}
		got = append(got, d)
	}
	if got[0] != got[1] {
		t.Fatalf("Deploy twice gave %+v then %+v", got[0], got[1])
	}
	d := got[0]
	if d.Stateroot != NewStateroot || d.Checksum != commit || d.Version != NewVersion || d.Booted || d.Index == 0 {
		t.Fatalf("Deploy = %+v, want %s %s %s, not booted, not the default", d, NewStateroot, commit, NewVersion)
	}
	old, _ := h.Initial()
	wantOrder(t, h, old, NewStateroot)
	wantBooted(t, h, old)
	return d
}

func testUpgradeAndRollback(t *testing.T, h Harness) {
	ctx := t.Context()
	s := h.Stateroots()
	old, _ := h.Initial()
	prep(t, h)

	// Lay /etc and /var files in the new stateroot, as the seed apply does.
	root, varDir := paths(t, h, NewStateroot)
	write(t, filepath.Join(root, "etc", "ibu-test.conf"), "from prep\n")
	write(t, filepath.Join(varDir, "lib", "ibu", "marker"), "var from prep\n")

	// Pivot: the new stateroot becomes the default, the old stays booted.
	for range 2 {
		if err := s.SetDefault(ctx, NewStateroot); err != nil {
			t.Fatalf("SetDefault(%s): %v", NewStateroot, err)
		}
		wantOrder(t, h, NewStateroot, old)
		wantBooted(t, h, old)
	}
	root2, varDir2 := paths(t, h, NewStateroot)
	wantFile(t, filepath.Join(root2, "etc", "ibu-test.conf"), "from prep\n")
	wantFile(t, filepath.Join(varDir2, "lib", "ibu", "marker"), "var from prep\n")

	h.Boot(t)
	wantBooted(t, h, NewStateroot)
	for range 2 {
		if err := s.Remove(ctx, NewStateroot); !errors.Is(err, host.ErrBooted) {
			t.Fatalf("Remove(booted %s) = %v, want ErrBooted", NewStateroot, err)
		}
	}
	wantOrder(t, h, NewStateroot, old)

	// Rollback.
	for range 2 {
		if err := s.SetDefault(ctx, old); err != nil {
			t.Fatalf("SetDefault(%s): %v", old, err)
		}
		wantOrder(t, h, old, NewStateroot)
		wantBooted(t, h, NewStateroot)
	}
	h.Boot(t)
	wantBooted(t, h, old)
	if err := s.Remove(ctx, old); !errors.Is(err, host.ErrBooted) {
		t.Fatalf("Remove(booted %s) = %v, want ErrBooted", old, err)
	}

	// Clean up the failed upgrade.
	for range 2 {
		if err := s.Remove(ctx, NewStateroot); err != nil {
			t.Fatalf("Remove(%s): %v", NewStateroot, err)
		}
		wantOrder(t, h, old)
		wantBooted(t, h, old)
	}
	wantGone(t, root2)
	wantGone(t, varDir2)
}

func testFinalize(t *testing.T, h Harness) {
	ctx := t.Context()
	s := h.Stateroots()
	old, _ := h.Initial()
	prep(t, h)
	if err := s.SetDefault(ctx, NewStateroot); err != nil {
		t.Fatal(err)
	}
	h.Boot(t)
	oldRoot, oldVar := paths(t, h, old)
	for range 2 {
		if err := s.Remove(ctx, old); err != nil {
			t.Fatalf("Remove(%s): %v", old, err)
		}
		wantOrder(t, h, NewStateroot)
		wantBooted(t, h, NewStateroot)
	}
	wantGone(t, oldRoot)
	wantGone(t, oldVar)
	if err := s.SetDefault(ctx, old); !errors.Is(err, host.ErrNotFound) {
		t.Fatalf("SetDefault(removed %s) = %v, want ErrNotFound", old, err)
	}
}

func testAbortAndRedo(t *testing.T, h Harness) {
	ctx := t.Context()
	s := h.Stateroots()
	old, _ := h.Initial()
	d := prep(t, h)
	if err := s.Remove(ctx, NewStateroot); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	wantOrder(t, h, old)
	// The commit went with its ref: deploying it again needs an Import.
	if _, err := s.Deploy(ctx, NewStateroot, d.Checksum, nil); !errors.Is(err, host.ErrNotFound) {
		t.Fatalf("Deploy(pruned commit) = %v, want ErrNotFound", err)
	}
	wantOrder(t, h, old)
	prep(t, h)
}

func testErrors(t *testing.T, h Harness) {
	ctx := t.Context()
	s := h.Stateroots()
	old, _ := h.Initial()
	initial := deployments(t, h)[0]
	repo, commit := h.Seed(t, NewVersion)
	if err := s.Import(ctx, repo, commit, NewStateroot); err != nil {
		t.Fatal(err)
	}
	missing := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

	tests := []struct {
		name   string
		op     func() error
		target error // nil: any error
	}{
		{"SetDefault missing", func() error { return s.SetDefault(ctx, "nope") }, host.ErrNotFound},
		{"Paths missing", func() error { _, _, err := s.Paths(ctx, "nope"); return err }, host.ErrNotFound},
		{"Deploy missing commit", func() error { _, err := s.Deploy(ctx, "other", missing, nil); return err }, host.ErrNotFound},
		{"Remove missing", func() error { return s.Remove(ctx, "nope") }, errNil},
		{"Remove booted", func() error { return s.Remove(ctx, old) }, host.ErrBooted},
		{"Deploy other commit in stateroot", func() error { _, err := s.Deploy(ctx, old, commit, nil); return err }, nil},
		{"Deploy bad checksum", func() error { _, err := s.Deploy(ctx, "other", "abc", nil); return err }, nil},
		{"Import bad stateroot", func() error { return s.Import(ctx, repo, commit, "../x") }, nil},
		{"Remove bad stateroot", func() error { return s.Remove(ctx, "a/b") }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 {
				err := tc.op()
				switch {
				case tc.target == errNil:
					if err != nil {
						t.Fatalf("err = %v, want nil", err)
					}
				case tc.target != nil:
					if !errors.Is(err, tc.target) {
						t.Fatalf("err = %v, want %v", err, tc.target)
					}
				case err == nil:
					t.Fatal("err = nil, want an error")
				}
			}
			deps := deployments(t, h)
			if len(deps) != 1 || deps[0] != initial {
				t.Fatalf("deployments changed: %+v", deps)
			}
		})
	}
}

var errNil = errors.New("want nil")

func deployments(t *testing.T, h Harness) []host.Deployment {
	t.Helper()
	deps, err := h.Stateroots().Deployments(t.Context())
	if err != nil {
		t.Fatalf("Deployments: %v", err)
	}
	for i, d := range deps {
		if d.Index != i {
			t.Fatalf("deployment %d has index %d: %+v", i, d.Index, deps)
		}
	}
	return deps
}

// wantOrder checks the stateroots of the deployments, in boot order.
func wantOrder(t *testing.T, h Harness, stateroots ...string) {
	t.Helper()
	deps := deployments(t, h)
	var got []string
	for _, d := range deps {
		got = append(got, d.Stateroot)
	}
	if len(got) != len(stateroots) {
		t.Fatalf("stateroots in boot order = %v, want %v", got, stateroots)
	}
	for i := range got {
		if got[i] != stateroots[i] {
			t.Fatalf("stateroots in boot order = %v, want %v", got, stateroots)
		}
	}
}

func wantBooted(t *testing.T, h Harness, stateroot string) {
	t.Helper()
	b, err := h.Stateroots().Booted(t.Context())
	if err != nil {
		t.Fatalf("Booted: %v", err)
	}
	if b.Stateroot != stateroot || !b.Booted {
		t.Fatalf("Booted() = %+v, want %s", b, stateroot)
	}
	n := 0
	for _, d := range deployments(t, h) {
		if d.Booted {
			n++
			if d != b {
				t.Fatalf("booted deployment %+v, Booted() = %+v", d, b)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d deployments marked booted", n)
	}
}

func paths(t *testing.T, h Harness, stateroot string) (root, varDir string) {
	t.Helper()
	root, varDir, err := h.Stateroots().Paths(t.Context(), stateroot)
	if err != nil {
		t.Fatalf("Paths(%s): %v", stateroot, err)
	}
	root2, varDir2, err := h.Stateroots().Paths(t.Context(), stateroot)
	if err != nil || root2 != root || varDir2 != varDir {
		t.Fatalf("Paths twice: %s %s, then %s %s %v", root, varDir, root2, varDir2, err)
	}
	for _, dir := range []string{filepath.Join(root, "etc"), varDir} {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Fatalf("Paths(%s): %s is not a directory: %v", stateroot, dir, err)
		}
	}
	return root, varDir
}

func write(t *testing.T, path, content string) {
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
		t.Fatalf("want file %s: %v", path, err)
	}
	if string(b) != content {
		t.Fatalf("%s = %q, want %q", path, b, content)
	}
}

func wantGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still exists (%v)", path, err)
	}
}
