// Package ostree implements host.Stateroots with the ostree command line
// (`ostree admin …` against a sysroot). It is written for ostree 2022.7 and
// later: it parses the text of `ostree admin status`, uses `os-init`, and
// pivots with `admin set-default` when the binary has it, or else by
// redeploying the target's commit in its own stateroot (see SetDefault).
package ostree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"ibu.dev/node-agent/host"
)

// RefPrefix is the prefix of the repository refs Import creates: the commit
// of stateroot S is kept alive by the ref RefPrefix+S.
const RefPrefix = "ibu/"

// SetprivNoImmutable is the command prefix WithoutImmutable puts in front of
// ostree: it drops CAP_LINUX_IMMUTABLE so that ostree, run as root, cannot
// set the immutable bit on deployment roots (which breaks removing a test's
// temporary directory). util-linux's setpriv must be installed.
var SetprivNoImmutable = []string{"setpriv", "--inh-caps=-linux_immutable", "--bounding-set=-linux_immutable"}

// Stateroots is host.Stateroots backed by the ostree CLI. Its methods
// serialise on a mutex: ostree locks the sysroot per command, but
// SetDefault and Remove run several commands that must not interleave.
type Stateroots struct {
	sysroot    string   // sysroot as ostree sees it (--sysroot)
	hostRoot   string   // prefix turning a host path into one this process can open
	command    []string // argv prefix that runs ostree
	bootedFile string   // emulated boot: file holding the booted stateroot
	log        *slog.Logger

	mu         sync.Mutex
	setDefault *bool             // feature detection result of `admin set-default`
	status     []host.Deployment // last parsed `admin status`, valid while
	statusKey  string            // the boot entries still have this key
}

var _ host.Stateroots = (*Stateroots)(nil)

// Option configures a Stateroots.
type Option func(*Stateroots)

// WithCommand sets the argv that runs ostree; the default is "ostree".
// Use e.g. WithCommand("chroot", "/host", "ostree") in an agent container
// that runs the host's own ostree (together with WithHostRoot("/host")).
func WithCommand(argv ...string) Option {
	return func(s *Stateroots) {
		if len(argv) > 0 {
			s.command = append([]string(nil), argv...)
		}
	}
}

// WithoutImmutable runs the configured command through
// SetprivNoImmutable so that deployments do not get the immutable bit.
// It is meant for tests running as root; apply it after WithCommand.
func WithoutImmutable() Option {
	return func(s *Stateroots) {
		s.command = append(append([]string(nil), SetprivNoImmutable...), s.command...)
	}
}

// WithHostRoot tells where the host's root file system is mounted in this
// process (e.g. "/host"), for use with a chroot command. The sysroot and
// every path given to ostree stay host paths; the paths this process opens
// (Paths' results, the stateroot directory Remove deletes) are prefixed
// with dir, and Import's repoDir, a path of this process, must be under
// dir. The default is "/" (no translation).
func WithHostRoot(dir string) Option {
	return func(s *Stateroots) { s.hostRoot = filepath.Clean(dir) }
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(s *Stateroots) {
		if l != nil {
			s.log = l
		}
	}
}

// WithBootedFile emulates the booted deployment for a sysroot that is not
// really booted (no `*` in `ostree admin status`, as in tests): the file
// holds the booted stateroot's name, optionally followed by a space and
// "<checksum>.<serial>" to name one deployment; a name alone means the
// stateroot's first deployment in boot order. A harness "reboots" the host
// by writing the boot default there. A real `*` always takes precedence.
func WithBootedFile(path string) Option {
	return func(s *Stateroots) { s.bootedFile = path }
}

// New returns the ostree backend for the sysroot at sysroot ("/" on a
// booted host).
func New(sysroot string, opts ...Option) *Stateroots {
	s := &Stateroots{
		sysroot:  filepath.Clean(sysroot),
		hostRoot: "/",
		command:  []string{"ostree"},
		log:      slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// CommandError is a failed ostree (or helper) command.
type CommandError struct {
	Args     []string // the full argv
	ExitCode int      // -1 when the command did not run or was killed
	Stderr   string   // trimmed standard error
	Err      error    // the underlying exec error
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: %v", strings.Join(e.Args, " "), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// run runs the ostree command with args and returns its standard output.
func (s *Stateroots) run(ctx context.Context, args ...string) (string, error) {
	argv := append(append([]string(nil), s.command...), args...)
	return s.exec(ctx, argv)
}

func (s *Stateroots) exec(ctx context.Context, argv []string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	s.log.DebugContext(ctx, "ran", "argv", argv, "duration", time.Since(start), "err", err)
	if err != nil {
		ce := &CommandError{Args: argv, ExitCode: -1, Stderr: strings.TrimSpace(stderr.String()), Err: err}
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			ce.ExitCode = ee.ExitCode()
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			ce.Err = fmt.Errorf("%w (%w)", err, ctxErr)
		}
		return stdout.String(), ce
	}
	return stdout.String(), nil
}

func (s *Stateroots) sysrootArg() string { return "--sysroot=" + s.sysroot }

func (s *Stateroots) repoArg() string {
	return "--repo=" + filepath.Join(s.sysroot, "ostree", "repo")
}

// local turns a host path into one this process can open.
func (s *Stateroots) local(hostPath string) string {
	return filepath.Join(s.hostRoot, hostPath)
}

// hostPath turns a path of this process into a host path.
func (s *Stateroots) hostPath(local string) (string, error) {
	local, err := filepath.Abs(local)
	if err != nil {
		return "", err
	}
	if s.hostRoot == "/" {
		return local, nil
	}
	rel, err := filepath.Rel(s.hostRoot, local)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s is not under the host root %s", local, s.hostRoot)
	}
	return filepath.Join("/", rel), nil
}

func (s *Stateroots) staterootDir(stateroot string) string {
	return filepath.Join(s.sysroot, "ostree", "deploy", stateroot)
}

// Deployments lists the deployments in boot order.
func (s *Stateroots) Deployments(ctx context.Context) ([]host.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deployments(ctx)
}

func (s *Stateroots) deployments(ctx context.Context) ([]host.Deployment, error) {
	key := s.bootEntriesKey()
	var deps []host.Deployment
	if key != "" && key == s.statusKey {
		deps = slices.Clone(s.status)
	} else {
		out, err := s.run(ctx, "admin", "status", s.sysrootArg())
		if err != nil {
			return nil, fmt.Errorf("deployments: %w", err)
		}
		if deps, err = ParseStatus(out); err != nil {
			return nil, fmt.Errorf("deployments: %w", err)
		}
		s.status, s.statusKey = slices.Clone(deps), key
	}
	if err := s.markBooted(deps); err != nil {
		return nil, fmt.Errorf("deployments: %w", err)
	}
	return deps, nil
}

// bootEntriesKey fingerprints the boot loader entries, from which `ostree
// admin status` derives the deployments and their order: every deploy and
// undeploy swaps the boot/loader symlink and rewrites the entries. While the
// key is unchanged the last parsed status is reused, which saves most of
// the status commands a Prep runs (each costs a process and ~15 ms). An
// empty key (no entries yet, or unreadable) disables the reuse.
func (s *Stateroots) bootEntriesKey() string {
	loader := s.local(filepath.Join(s.sysroot, "boot", "loader"))
	target, err := os.Readlink(loader)
	if err != nil {
		return ""
	}
	entries, err := os.ReadDir(filepath.Join(loader, "entries"))
	if err != nil {
		return ""
	}
	var b strings.Builder
	b.WriteString(target)
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return ""
		}
		fmt.Fprintf(&b, "|%s:%d:%d", e.Name(), info.Size(), info.ModTime().UnixNano())
	}
	return b.String()
}

// markBooted applies the booted file when ostree shows no booted deployment.
func (s *Stateroots) markBooted(deps []host.Deployment) error {
	if s.bootedFile == "" {
		return nil
	}
	for _, d := range deps {
		if d.Booted {
			return nil
		}
	}
	b, err := os.ReadFile(s.bootedFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("booted file: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return nil
	}
	for i := range deps {
		d := &deps[i]
		if d.Stateroot != fields[0] {
			continue
		}
		if len(fields) > 1 && fields[1] != fmt.Sprintf("%s.%d", d.Checksum, d.Serial) {
			continue
		}
		d.Booted = true
		return nil
	}
	return nil
}

var (
	deploymentLine = regexp.MustCompile(`^([* ]) (\S+) ([0-9a-f]{64})\.(\d+)((?: \([^)]*\))*)\s*$`)
	versionLine    = regexp.MustCompile(`^\s+Version: (.*?)\s*$`)
)

// ParseStatus parses the text of `ostree admin status` (2022.7 and later;
// there is no --json) into deployments in boot order. Booted is set from
// the `*` marker.
func ParseStatus(out string) ([]host.Deployment, error) {
	var deps []host.Deployment
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		if m := deploymentLine.FindStringSubmatch(line); m != nil {
			serial, err := strconv.Atoi(m[4])
			if err != nil {
				return nil, fmt.Errorf("status line %q: %w", line, err)
			}
			deps = append(deps, host.Deployment{
				Stateroot: m[2],
				Checksum:  m[3],
				Serial:    serial,
				Index:     len(deps),
				Booted:    m[1] == "*",
			})
			continue
		}
		if m := versionLine.FindStringSubmatch(line); m != nil && len(deps) > 0 {
			deps[len(deps)-1].Version = m[1]
		}
	}
	if len(deps) == 0 && !strings.Contains(out, "No deployments") {
		return nil, fmt.Errorf("unrecognised ostree admin status output: %q", strings.TrimSpace(out))
	}
	return deps, nil
}

// Booted returns the booted deployment (host.ErrNotFound when none is).
func (s *Stateroots) Booted(ctx context.Context) (host.Deployment, error) {
	deps, err := s.Deployments(ctx)
	if err != nil {
		return host.Deployment{}, fmt.Errorf("booted: %w", err)
	}
	for _, d := range deps {
		if d.Booted {
			return d, nil
		}
	}
	return host.Deployment{}, fmt.Errorf("booted: no booted deployment: %w", host.ErrNotFound)
}

// Import pulls commit from the archive repository repoDir (a path of this
// process) into the sysroot's repository and points ref ibu/<stateroot>
// at it. It does nothing when the ref already points at commit.
func (s *Stateroots) Import(ctx context.Context, repoDir, commit, stateroot string) error {
	if err := validate(stateroot, commit); err != nil {
		return fmt.Errorf("import %s: %w", stateroot, err)
	}
	src, err := s.hostPath(repoDir)
	if err != nil {
		return fmt.Errorf("import %s: %w", stateroot, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := RefPrefix + stateroot
	if cur, err := s.run(ctx, "rev-parse", s.repoArg(), ref); err == nil && strings.TrimSpace(cur) == commit {
		s.log.DebugContext(ctx, "commit already imported", "stateroot", stateroot, "commit", commit)
		return nil
	}
	start := time.Now()
	if _, err := s.run(ctx, "pull-local", s.repoArg(), src, commit); err != nil {
		return fmt.Errorf("import %s: %w", stateroot, err)
	}
	if _, err := s.run(ctx, "refs", s.repoArg(), "--force", "--create="+ref, commit); err != nil {
		return fmt.Errorf("import %s: %w", stateroot, err)
	}
	s.log.InfoContext(ctx, "imported commit", "stateroot", stateroot, "commit", commit, "duration", time.Since(start))
	return nil
}

// ExportCommit makes a new archive-mode repository at repoDir (a path of
// this process, under the host root) holding commit, pulled from the
// sysroot's repository, with ref pointing at it: what a seed capture ships.
func (s *Stateroots) ExportCommit(ctx context.Context, commit, ref, repoDir string) error {
	dst, err := s.hostPath(repoDir)
	if err != nil {
		return fmt.Errorf("export commit: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, args := range [][]string{
		{"init", "--repo=" + dst, "--mode=archive"},
		{"pull-local", "--repo=" + dst, filepath.Join(s.sysroot, "ostree", "repo"), commit},
		{"refs", "--repo=" + dst, "--create=" + ref, commit},
	} {
		if _, err := s.run(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// Deploy deploys commit in stateroot (created with `admin os-init` when
// missing) after the existing deployments (--not-as-default), with exactly
// kargs as kernel arguments (--karg-none: a new stateroot has nothing to
// inherit). A stateroot holds one commit: deploying another commit into a
// stateroot that has deployments fails; Remove it first. A commit missing
// from the repository yields host.ErrNotFound.
func (s *Stateroots) Deploy(ctx context.Context, stateroot, commit string, kargs []string) (host.Deployment, error) {
	if err := validate(stateroot, commit); err != nil {
		return host.Deployment{}, fmt.Errorf("deploy %s: %w", stateroot, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	deps, err := s.deployments(ctx)
	if err != nil {
		return host.Deployment{}, fmt.Errorf("deploy %s: %w", stateroot, err)
	}
	if d, ok := first(deps, stateroot); ok {
		if d.Checksum == commit {
			return d, nil
		}
		return host.Deployment{}, fmt.Errorf("deploy %s: stateroot already holds commit %s; remove it first", stateroot, d.Checksum)
	}
	if err := s.haveCommit(commit); err != nil {
		return host.Deployment{}, fmt.Errorf("deploy %s: %w", stateroot, err)
	}
	start := time.Now()
	if _, err := os.Stat(s.local(s.staterootDir(stateroot))); errors.Is(err, os.ErrNotExist) {
		if _, err := s.run(ctx, "admin", "os-init", s.sysrootArg(), stateroot); err != nil {
			return host.Deployment{}, fmt.Errorf("deploy %s: %w", stateroot, err)
		}
	} else if err != nil {
		return host.Deployment{}, fmt.Errorf("deploy %s: %w", stateroot, err)
	}
	args := []string{"admin", "deploy", s.sysrootArg(), "--os=" + stateroot, "--not-as-default", "--no-prune", "--karg-none"}
	for _, k := range kargs {
		args = append(args, "--karg-append="+k)
	}
	args = append(args, commit)
	if _, err := s.run(ctx, args...); err != nil {
		return host.Deployment{}, fmt.Errorf("deploy %s: %w", stateroot, err)
	}
	deps, err = s.deployments(ctx)
	if err != nil {
		return host.Deployment{}, fmt.Errorf("deploy %s: %w", stateroot, err)
	}
	d, ok := first(deps, stateroot)
	if !ok || d.Checksum != commit {
		return host.Deployment{}, fmt.Errorf("deploy %s: deployment of %s missing after ostree admin deploy", stateroot, commit)
	}
	s.log.InfoContext(ctx, "deployed", "stateroot", stateroot, "commit", commit, "index", d.Index, "duration", time.Since(start))
	return d, nil
}

// haveCommit checks that the commit object is fully in the repository.
func (s *Stateroots) haveCommit(commit string) error {
	repo := s.local(filepath.Join(s.sysroot, "ostree", "repo"))
	_, err := os.Stat(filepath.Join(repo, "objects", commit[:2], commit[2:]+".commit"))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("commit %s is not in the repository: %w", commit, host.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repo, "state", commit+".commitpartial")); err == nil {
		return fmt.Errorf("commit %s is only partially in the repository: %w", commit, host.ErrNotFound)
	}
	return nil
}

// Paths returns the root of the stateroot's newest deployment (its first
// in boot order, the one ostree merges /etc from) and the stateroot's var
// directory, as paths of this process.
func (s *Stateroots) Paths(ctx context.Context, stateroot string) (root, varDir string, err error) {
	if err := validate(stateroot); err != nil {
		return "", "", fmt.Errorf("paths %s: %w", stateroot, err)
	}
	deps, err := s.Deployments(ctx)
	if err != nil {
		return "", "", fmt.Errorf("paths %s: %w", stateroot, err)
	}
	d, ok := first(deps, stateroot)
	if !ok {
		return "", "", fmt.Errorf("paths %s: no deployment: %w", stateroot, host.ErrNotFound)
	}
	dir := s.local(s.staterootDir(stateroot))
	return filepath.Join(dir, "deploy", fmt.Sprintf("%s.%d", d.Checksum, d.Serial)), filepath.Join(dir, "var"), nil
}

// SetDefault makes the stateroot's newest deployment the boot default.
// With `ostree admin set-default` (newer ostree) that is one command. On
// 2022.7, which lacks it, the deployment's commit is deployed again in its
// own stateroot as the new default: ostree's 3-way /etc merge from the
// stateroot's merge deployment (the newest one, or the booted one when the
// stateroot is booted) carries the /etc changes, and the kernel arguments
// are carried too. The now stale deployments of the stateroot are then
// undeployed, except a booted one.
func (s *Stateroots) SetDefault(ctx context.Context, stateroot string) error {
	if err := validate(stateroot); err != nil {
		return fmt.Errorf("set default %s: %w", stateroot, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	deps, err := s.deployments(ctx)
	if err != nil {
		return fmt.Errorf("set default %s: %w", stateroot, err)
	}
	d, ok := first(deps, stateroot)
	if !ok {
		return fmt.Errorf("set default %s: no deployment: %w", stateroot, host.ErrNotFound)
	}
	if d.Index != 0 {
		start := time.Now()
		native, err := s.hasSetDefault(ctx)
		if err != nil {
			return fmt.Errorf("set default %s: %w", stateroot, err)
		}
		if native {
			_, err = s.run(ctx, "admin", "set-default", s.sysrootArg(), strconv.Itoa(d.Index))
		} else {
			_, err = s.run(ctx, "admin", "deploy", s.sysrootArg(), "--os="+stateroot, "--retain", "--no-prune", d.Checksum)
		}
		if err != nil {
			return fmt.Errorf("set default %s: %w", stateroot, err)
		}
		s.log.InfoContext(ctx, "set boot default", "stateroot", stateroot, "commit", d.Checksum,
			"from_index", d.Index, "set_default", native, "duration", time.Since(start))
	}
	if err := s.undeployStale(ctx, stateroot); err != nil {
		return fmt.Errorf("set default %s: %w", stateroot, err)
	}
	return nil
}

// undeployStale undeploys every deployment of stateroot but its first
// and a booted one, re-reading the indexes before each undeploy.
func (s *Stateroots) undeployStale(ctx context.Context, stateroot string) error {
	for {
		deps, err := s.deployments(ctx)
		if err != nil {
			return err
		}
		stale := -1
		seen := false
		for _, d := range deps {
			if d.Stateroot != stateroot {
				continue
			}
			if seen && !d.Booted {
				stale = d.Index
				break
			}
			seen = true
		}
		if stale < 0 {
			return nil
		}
		if _, err := s.run(ctx, "admin", "undeploy", s.sysrootArg(), strconv.Itoa(stale)); err != nil {
			return err
		}
		s.log.InfoContext(ctx, "undeployed stale deployment", "stateroot", stateroot, "index", stale)
	}
}

var setDefaultCommand = regexp.MustCompile(`(?m)^\s+set-default\s`)

// hasSetDefault detects `ostree admin set-default` once.
func (s *Stateroots) hasSetDefault(ctx context.Context) (bool, error) {
	if s.setDefault != nil {
		return *s.setDefault, nil
	}
	out, err := s.run(ctx, "admin", "--help")
	if err != nil {
		return false, fmt.Errorf("detect set-default: %w", err)
	}
	has := setDefaultCommand.MatchString(out)
	s.setDefault = &has
	s.log.DebugContext(ctx, "detected ostree admin set-default", "available", has)
	return has, nil
}

// Remove undeploys every deployment of stateroot, deletes its directory
// (with its var), its ref, and the objects nothing else needs. It refuses
// with host.ErrBooted when the stateroot is booted; a missing stateroot is
// not an error.
func (s *Stateroots) Remove(ctx context.Context, stateroot string) error {
	if err := validate(stateroot); err != nil {
		return fmt.Errorf("remove %s: %w", stateroot, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	did := false
	for {
		deps, err := s.deployments(ctx)
		if err != nil {
			return fmt.Errorf("remove %s: %w", stateroot, err)
		}
		idx := -1
		for _, d := range deps {
			if d.Stateroot != stateroot {
				continue
			}
			if d.Booted {
				return fmt.Errorf("remove %s: %w", stateroot, host.ErrBooted)
			}
			if idx < 0 {
				idx = d.Index
			}
		}
		if idx < 0 {
			break
		}
		if _, err := s.run(ctx, "admin", "undeploy", s.sysrootArg(), strconv.Itoa(idx)); err != nil {
			return fmt.Errorf("remove %s: %w", stateroot, err)
		}
		did = true
	}
	dir := s.local(s.staterootDir(stateroot))
	if _, err := os.Lstat(dir); err == nil {
		if err := s.removeAll(ctx, dir); err != nil {
			return fmt.Errorf("remove %s: %w", stateroot, err)
		}
		did = true
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", stateroot, err)
	}
	ref := RefPrefix + stateroot
	if _, err := s.run(ctx, "rev-parse", s.repoArg(), ref); err == nil {
		if _, err := s.run(ctx, "refs", s.repoArg(), "--delete", ref); err != nil {
			return fmt.Errorf("remove %s: %w", stateroot, err)
		}
		did = true
	}
	if !did {
		return nil
	}
	if _, err := s.run(ctx, "prune", s.repoArg(), "--refs-only"); err != nil {
		return fmt.Errorf("remove %s: %w", stateroot, err)
	}
	if _, err := s.run(ctx, "admin", "cleanup", s.sysrootArg()); err != nil {
		return fmt.Errorf("remove %s: %w", stateroot, err)
	}
	s.log.InfoContext(ctx, "removed stateroot", "stateroot", stateroot, "duration", time.Since(start))
	return nil
}

// removeAll deletes dir; when that fails (as root, ostree makes deployment
// roots immutable) it clears the immutable bits with chattr and retries.
func (s *Stateroots) removeAll(ctx context.Context, dir string) error {
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	// chattr fails on the symlinks (var/run, var/lock) after clearing the
	// rest, so only a second failure to remove counts.
	_, cerr := s.exec(ctx, []string{"chattr", "-R", "-f", "-i", dir})
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("%w (after clearing immutable bits: %v)", err, cerr)
	}
	return nil
}

// first returns the stateroot's first deployment in boot order.
func first(deps []host.Deployment, stateroot string) (host.Deployment, bool) {
	for _, d := range deps {
		if d.Stateroot == stateroot {
			return d, true
		}
	}
	return host.Deployment{}, false
}

var (
	staterootName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)
	checksum      = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// validate checks a stateroot name (a valid ostree osname and ref
// component) and, when given, a commit checksum.
func validate(stateroot string, commit ...string) error {
	if !staterootName.MatchString(stateroot) {
		return fmt.Errorf("invalid stateroot name %q", stateroot)
	}
	for _, c := range commit {
		if !checksum.MatchString(c) {
			return fmt.Errorf("invalid commit checksum %q", c)
		}
	}
	return nil
}
