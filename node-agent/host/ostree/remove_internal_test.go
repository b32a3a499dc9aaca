package ostree

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRemoveAllImmutable checks the fallback for deployment roots ostree
// made immutable and left behind: chattr, then remove.
func TestRemoveAllImmutable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_LINUX_IMMUTABLE)")
	}
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Fatal("chattr is not installed (Debian package e2fsprogs)")
	}
	dir := filepath.Join(t.TempDir(), "stateroot")
	dep := filepath.Join(dir, "deploy", "abc.0")
	if err := os.MkdirAll(filepath.Join(dep, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../run", filepath.Join(dir, "var", "run")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chattr", "+i", dep).CombinedOutput(); err != nil {
		t.Skipf("chattr +i: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-R", "-f", "-i", dir).Run() })
	if err := os.RemoveAll(dir); err == nil {
		t.Fatal("RemoveAll of an immutable tree succeeded; the test proves nothing")
	}
	if err := New("/").removeAll(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s left: %v", dir, err)
	}
}
