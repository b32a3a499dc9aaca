// Package ostreetest builds small real ostree sysroots and seed
// repositories for tests: a sysroot with one deployed stateroot, "rhcos",
// emulated as booted through a booted file, and archive repositories
// holding a seed's OS commit. Trees are a few files, so each helper takes
// well under a second. It needs the ostree CLI (the tests skip without it).
package ostreetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/host/ostree"
)

// Initial stateroot and version of the sysroot NewSysroot makes.
const (
	InitialStateroot = "rhcos"
	InitialVersion   = "4.14.38"
)

// Sysroot is a test sysroot with InitialStateroot deployed and booted.
type Sysroot struct {
	Dir        string   // the sysroot (--sysroot)
	Repo       string   // its repository
	BootedFile string   // the emulated booted deployment (see ostree.WithBootedFile)
	Commit     string   // the commit deployed in InitialStateroot
	Command    []string // argv prefix that runs ostree
	tb         testing.TB
}

// Option configures NewSysroot.
type Option func(*config)

type config struct{ immutable bool }

// WithImmutable runs ostree with all of root's capabilities, so that
// deployment roots get the immutable bit as on a real host (the cleanup
// clears it). By default ostree runs through ostree.SetprivNoImmutable
// when running as root and setpriv is installed.
func WithImmutable() Option { return func(c *config) { c.immutable = true } }

// Require fails the test when the ostree CLI is not installed: the real
// backend is tested against the real tool, never skipped (.ci/run installs
// Debian's ostree).
func Require(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("ostree"); err != nil {
		tb.Fatal("the ostree CLI is not installed; run: apt-get install -y ostree")
	}
}

// NewSysroot makes a sysroot in a temporary directory: `admin init-fs`,
// `sysroot.bootloader none`, a commit of a tiny fake OS tree of
// InitialVersion, and that commit deployed in InitialStateroot, which the
// booted file names as booted.
func NewSysroot(tb testing.TB, opts ...Option) *Sysroot {
	tb.Helper()
	Require(tb)
	var c config
	for _, o := range opts {
		o(&c)
	}
	dir := tb.TempDir()
	tb.Cleanup(func() { ClearImmutable(tb, dir) }) // runs before TempDir's removal
	s := &Sysroot{
		Dir:        filepath.Join(dir, "sysroot"),
		BootedFile: filepath.Join(dir, "booted"),
		Command:    []string{"ostree"},
		tb:         tb,
	}
	s.Repo = filepath.Join(s.Dir, "ostree", "repo")
	if _, err := exec.LookPath(ostree.SetprivNoImmutable[0]); err == nil && !c.immutable && os.Geteuid() == 0 {
		s.Command = append(append([]string(nil), ostree.SetprivNoImmutable...), s.Command...)
	}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	s.Ostree("admin", "init-fs", s.Dir)
	if os.Geteuid() != 0 {
		// A bare repository needs root to chown; bare-user-only does not.
		if err := os.RemoveAll(s.Repo); err != nil {
			tb.Fatal(err)
		}
		s.Ostree("init", "--repo="+s.Repo, "--mode=bare-user-only")
	}
	s.Ostree("config", "--repo="+s.Repo, "set", "sysroot.bootloader", "none")
	tree := filepath.Join(dir, "tree")
	WriteTree(tb, tree, InitialVersion, "initial")
	s.Commit = s.commit(s.Repo, tree, InitialVersion)
	s.Ostree("admin", "os-init", "--sysroot="+s.Dir, InitialStateroot)
	s.Ostree("admin", "deploy", "--sysroot="+s.Dir, "--os="+InitialStateroot, "--karg-none",
		"--karg-append=root=UUID=0000", "--karg-append=rw", s.Commit)
	s.Boot()
	return s
}

// Stateroots returns the ostree backend for this sysroot, running ostree
// the way the sysroot was made, emulating the boot with BootedFile, and
// logging every command to the test's output (shown on failure or -v).
func (s *Sysroot) Stateroots(opts ...ostree.Option) *ostree.Stateroots {
	logger := slog.New(slog.NewTextHandler(s.tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	base := []ostree.Option{
		ostree.WithCommand(s.Command...),
		ostree.WithBootedFile(s.BootedFile),
		ostree.WithLogger(logger),
	}
	return ostree.New(s.Dir, append(base, opts...)...)
}

// Ostree runs ostree with args and returns its standard output; it fails
// the test on error.
func (s *Sysroot) Ostree(args ...string) string {
	s.tb.Helper()
	return run(s.tb, append(append([]string(nil), s.Command...), args...)...)
}

// Status returns `ostree admin status` parsed, in boot order (Booted is
// not set: the sysroot is not really booted).
func (s *Sysroot) Status() []host.Deployment {
	s.tb.Helper()
	deps, err := ostree.ParseStatus(s.Ostree("admin", "status", "--sysroot="+s.Dir))
	if err != nil {
		s.tb.Fatal(err)
	}
	return deps
}

// Boot emulates a reboot: it writes the boot default (index 0) into the
// booted file and returns it.
func (s *Sysroot) Boot() host.Deployment {
	s.tb.Helper()
	deps := s.Status()
	if len(deps) == 0 {
		s.tb.Fatal("boot: no deployments")
	}
	d := deps[0]
	d.Booted = true
	s.BootInto(d)
	return d
}

// BootInto writes d into the booted file, as if the host came up on it.
func (s *Sysroot) BootInto(d host.Deployment) {
	s.tb.Helper()
	line := fmt.Sprintf("%s %s.%d\n", d.Stateroot, d.Checksum, d.Serial)
	if err := os.WriteFile(s.BootedFile, []byte(line), 0o644); err != nil {
		s.tb.Fatal(err)
	}
}

// SeedRepo makes an archive-mode repository (like the one in a seed
// image's ostree layer) holding one commit of a tiny fake OS tree of the
// given version, and returns the repository and the commit.
func SeedRepo(tb testing.TB, version string) (repoDir, commit string) {
	tb.Helper()
	Require(tb)
	dir := tb.TempDir()
	repoDir = filepath.Join(dir, "repo")
	run(tb, "ostree", "init", "--repo="+repoDir, "--mode=archive")
	tree := filepath.Join(dir, "tree")
	WriteTree(tb, tree, version, "seed")
	out := run(tb, "ostree", "commit", "--repo="+repoDir, "--orphan", "--tree=dir="+tree,
		"--subject=seed "+version, "--add-metadata-string=version="+version)
	return repoDir, strings.TrimSpace(out)
}

func (s *Sysroot) commit(repo, tree, version string) string {
	s.tb.Helper()
	out := s.Ostree("commit", "--repo="+repo, "--orphan", "--tree=dir="+tree,
		"--subject=os "+version, "--add-metadata-string=version="+version)
	return strings.TrimSpace(out)
}

// WriteTree writes a minimal OS tree that `ostree admin deploy` accepts:
// a kernel at usr/lib/modules/<version>/vmlinuz, usr/lib/os-release, and
// usr/etc (the deployment's default /etc). flavor varies the content.
func WriteTree(tb testing.TB, dir, version, flavor string) {
	tb.Helper()
	osRelease := fmt.Sprintf("NAME=\"Fake CoreOS\"\nID=rhcos\nVERSION_ID=%q\nVARIANT=%q\n", version, flavor)
	files := map[string]string{
		"usr/lib/modules/" + version + "/vmlinuz": "fake kernel " + version + "\n",
		"usr/lib/os-release":                      osRelease,
		"usr/etc/os-release":                      osRelease,
		"usr/etc/hostname":                        "sno-" + flavor + "\n",
		"usr/bin/true":                            "#!/bin/sh\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// ClearImmutable clears the immutable bit under dir (ostree sets it on
// deployment roots when it runs as root), so that dir can be removed.
func ClearImmutable(tb testing.TB, dir string) {
	tb.Helper()
	if _, err := os.Stat(dir); err != nil {
		return
	}
	// chattr exits 1 on symlinks, which it cannot read flags of, after
	// clearing everything else: a real failure shows as a failed removal.
	_ = exec.CommandContext(context.Background(), "chattr", "-R", "-f", "-i", dir).Run()
}

func run(tb testing.TB, argv ...string) string {
	tb.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		stderr := ""
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			stderr = strings.TrimSpace(string(ee.Stderr))
		}
		tb.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, stderr)
	}
	return string(out)
}
