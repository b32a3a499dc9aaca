// Package sim is a simulated host cheap enough for thousands of agents in
// one process: the ostree deployments, the booted one and the reboot
// request live in memory behind a mutex, with the same semantics as the
// ostree backend. Deployment /etc and stateroot /var directories exist only
// when the host has a directory (WithDir); a harness "boots" the host with
// Boot after the agent asked for a reboot.
package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"ibu.dev/node-agent/host"
)

// Operation names for FailNext and FailAfter: the method names of
// host.Stateroots and host.Rebooter.
const (
	OpDeployments = "Deployments"
	OpBooted      = "Booted"
	OpImport      = "Import"
	OpDeploy      = "Deploy"
	OpPaths       = "Paths"
	OpSetDefault  = "SetDefault"
	OpRemove      = "Remove"
	OpReboot      = "Reboot"
)

// ErrNoDir is returned by Paths on a host made without WithDir: it has no
// files to lay.
var ErrNoDir = errors.New("simulated host has no directory (WithDir)")

// Checksum returns the fake commit checksum the simulation uses for an OS
// version: a SHA-256 of it, so every host agrees on it.
func Checksum(version string) string {
	sum := sha256.Sum256([]byte("ibu-sim-os:" + version))
	return hex.EncodeToString(sum[:])
}

// RebootRequest is a reboot the agent asked for.
type RebootRequest struct {
	Reason string
	Delay  time.Duration // the delay the Rebooter was made with
	At     time.Time
}

// Host is a simulated host. Its methods are safe for concurrent use.
type Host struct {
	dir string

	mu         sync.Mutex
	deps       []*deployment // boot order
	booted     *deployment
	versions   map[string]string // commit -> version, for commits a repo may hold
	present    map[string]bool   // commits in the host's repository
	refs       map[string]string // stateroot -> commit (ref ibu/<stateroot>)
	reboot     *RebootRequest
	boots      int // number of boots, for BootID
	failBefore map[string]error
	failAfter  map[string]error
}

type deployment struct {
	stateroot, checksum, version string
	serial                       int
}

// Option configures a Host.
type Option func(*Host)

// WithDir gives the host a directory laid out like a sysroot:
// dir/ostree/deploy/<stateroot>/deploy/<checksum>.<serial>/etc and
// dir/ostree/deploy/<stateroot>/var, made on demand by Paths and deleted
// by Remove. Without it Paths fails with ErrNoDir.
func WithDir(dir string) Option { return func(h *Host) { h.dir = dir } }

// NewHost returns a host booted on stateroot initialStateroot, whose one
// deployment holds Checksum(initialVersion).
func NewHost(initialStateroot, initialVersion string, opts ...Option) *Host {
	d := &deployment{stateroot: initialStateroot, checksum: Checksum(initialVersion), version: initialVersion}
	h := &Host{
		deps:     []*deployment{d},
		booted:   d,
		versions: map[string]string{d.checksum: initialVersion},
		present:  map[string]bool{d.checksum: true},
		refs:     map[string]string{},
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

// AddCommit tells the host the version of a commit a seed may bring, so
// that its deployment reports it (the real backend reads it from the
// commit's metadata).
func (h *Host) AddCommit(commit, version string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.versions[commit] = version
}

// FailNext makes the next call of op (an Op constant) return err without
// doing anything.
func (h *Host) FailNext(op string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failBefore == nil {
		h.failBefore = map[string]error{}
	}
	h.failBefore[op] = err
}

// FailAfter makes the next call of op do its work and then return err, as
// a crash right after the effect would look to the caller.
func (h *Host) FailAfter(op string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failAfter == nil {
		h.failAfter = map[string]error{}
	}
	h.failAfter[op] = err
}

// fault returns the injected error for op, consuming it. Callers hold mu.
func (h *Host) fault(failures map[string]error, op string) error {
	err, ok := failures[op]
	if !ok {
		return nil
	}
	delete(failures, op)
	return fmt.Errorf("%s (injected): %w", op, err)
}

// Boot restarts the host into its boot default (index 0), clears the
// reboot request and returns the booted deployment.
func (h *Host) Boot() host.Deployment {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.booted = h.deps[0]
	h.reboot = nil
	h.boots++
	return h.view(h.booted)
}

// BootInto restarts the host into the newest deployment of stateroot
// whatever the boot default is, as a host whose boot loader fell back to
// the old stateroot.
func (h *Host) BootInto(stateroot string) (host.Deployment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.first(stateroot)
	if d == nil {
		return host.Deployment{}, fmt.Errorf("boot into %s: %w", stateroot, host.ErrNotFound)
	}
	h.booted = d
	h.reboot = nil
	h.boots++
	return h.view(d), nil
}

var _ host.BootIdentity = (*Host)(nil)

// BootID implements host.BootIdentity: it changes at every Boot and
// BootInto.
func (h *Host) BootID(ctx context.Context) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("sim-boot-%d", h.boots), nil
}

// RebootRequested reports whether a reboot was asked for since the last
// Boot.
func (h *Host) RebootRequested() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reboot != nil
}

// PendingReboot returns the reboot asked for since the last Boot.
func (h *Host) PendingReboot() (RebootRequest, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reboot == nil {
		return RebootRequest{}, false
	}
	return *h.reboot, true
}

// Rebooter returns the host's host.Rebooter: Reboot records the request
// (with delay, the time a harness should wait before calling Boot) and
// returns host.ErrRebooting at once.
func (h *Host) Rebooter(delay time.Duration) host.Rebooter { return rebooter{h: h, delay: delay} }

type rebooter struct {
	h     *Host
	delay time.Duration
}

func (r rebooter) Reboot(ctx context.Context, reason string) error {
	h := r.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fault(h.failBefore, OpReboot); err != nil {
		return err
	}
	h.reboot = &RebootRequest{Reason: reason, Delay: r.delay, At: time.Now()}
	if err := h.fault(h.failAfter, OpReboot); err != nil {
		return err
	}
	return host.ErrRebooting
}

// Stateroots returns the host's host.Stateroots.
func (h *Host) Stateroots() host.Stateroots { return stateroots{h} }

type stateroots struct{ h *Host }

func (s stateroots) Deployments(ctx context.Context) ([]host.Deployment, error) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fault(h.failBefore, OpDeployments); err != nil {
		return nil, err
	}
	out := make([]host.Deployment, len(h.deps))
	for i, d := range h.deps {
		out[i] = h.view(d)
	}
	return out, h.fault(h.failAfter, OpDeployments)
}

func (s stateroots) Booted(ctx context.Context) (host.Deployment, error) {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fault(h.failBefore, OpBooted); err != nil {
		return host.Deployment{}, err
	}
	return h.view(h.booted), h.fault(h.failAfter, OpBooted)
}

func (s stateroots) Import(ctx context.Context, repoDir, commit, stateroot string) error {
	if err := validate(stateroot, commit); err != nil {
		return fmt.Errorf("import %s: %w", stateroot, err)
	}
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fault(h.failBefore, OpImport); err != nil {
		return err
	}
	h.present[commit] = true
	h.refs[stateroot] = commit
	return h.fault(h.failAfter, OpImport)
}

func (s stateroots) Deploy(ctx context.Context, stateroot, commit string, kargs []string) (host.Deployment, error) {
	if err := validate(stateroot, commit); err != nil {
		return host.Deployment{}, fmt.Errorf("deploy %s: %w", stateroot, err)
	}
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fault(h.failBefore, OpDeploy); err != nil {
		return host.Deployment{}, err
	}
	if d := h.first(stateroot); d != nil {
		if d.checksum == commit {
			return h.view(d), h.fault(h.failAfter, OpDeploy)
		}
		return host.Deployment{}, fmt.Errorf("deploy %s: stateroot already holds commit %s; remove it first", stateroot, d.checksum)
	}
	if !h.present[commit] {
		return host.Deployment{}, fmt.Errorf("deploy %s: commit %s is not in the repository: %w", stateroot, commit, host.ErrNotFound)
	}
	d := &deployment{stateroot: stateroot, checksum: commit, version: h.versions[commit]}
	h.deps = append(h.deps, d)
	return h.view(d), h.fault(h.failAfter, OpDeploy)
}

func (s stateroots) Paths(ctx context.Context, stateroot string) (root, varDir string, err error) {
	if err := validate(stateroot); err != nil {
		return "", "", fmt.Errorf("paths %s: %w", stateroot, err)
	}
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fault(h.failBefore, OpPaths); err != nil {
		return "", "", err
	}
	d := h.first(stateroot)
	if d == nil {
		return "", "", fmt.Errorf("paths %s: no deployment: %w", stateroot, host.ErrNotFound)
	}
	if h.dir == "" {
		return "", "", fmt.Errorf("paths %s: %w", stateroot, ErrNoDir)
	}
	sr := filepath.Join(h.dir, "ostree", "deploy", stateroot)
	root = filepath.Join(sr, "deploy", fmt.Sprintf("%s.%d", d.checksum, d.serial))
	varDir = filepath.Join(sr, "var")
	for _, dir := range []string{filepath.Join(root, "etc"), varDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", "", fmt.Errorf("paths %s: %w", stateroot, err)
		}
	}
	return root, varDir, h.fault(h.failAfter, OpPaths)
}

// SetDefault moves the stateroot's newest deployment to the front, as
// `ostree admin set-default` does; its /etc is untouched.
func (s stateroots) SetDefault(ctx context.Context, stateroot string) error {
	if err := validate(stateroot); err != nil {
		return fmt.Errorf("set default %s: %w", stateroot, err)
	}
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fault(h.failBefore, OpSetDefault); err != nil {
		return err
	}
	d := h.first(stateroot)
	if d == nil {
		return fmt.Errorf("set default %s: no deployment: %w", stateroot, host.ErrNotFound)
	}
	i := slices.Index(h.deps, d)
	h.deps = slices.Insert(slices.Delete(h.deps, i, i+1), 0, d)
	return h.fault(h.failAfter, OpSetDefault)
}

func (s stateroots) Remove(ctx context.Context, stateroot string) error {
	if err := validate(stateroot); err != nil {
		return fmt.Errorf("remove %s: %w", stateroot, err)
	}
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fault(h.failBefore, OpRemove); err != nil {
		return err
	}
	if h.booted.stateroot == stateroot {
		return fmt.Errorf("remove %s: %w", stateroot, host.ErrBooted)
	}
	h.deps = slices.DeleteFunc(h.deps, func(d *deployment) bool { return d.stateroot == stateroot })
	delete(h.refs, stateroot)
	h.prune()
	if h.dir != "" {
		if err := os.RemoveAll(filepath.Join(h.dir, "ostree", "deploy", stateroot)); err != nil {
			return fmt.Errorf("remove %s: %w", stateroot, err)
		}
	}
	return h.fault(h.failAfter, OpRemove)
}

// first returns the stateroot's first deployment in boot order, or nil.
// Callers hold mu.
func (h *Host) first(stateroot string) *deployment {
	for _, d := range h.deps {
		if d.stateroot == stateroot {
			return d
		}
	}
	return nil
}

// view returns d as a host.Deployment. Callers hold mu.
func (h *Host) view(d *deployment) host.Deployment {
	return host.Deployment{
		Stateroot: d.stateroot,
		Checksum:  d.checksum,
		Serial:    d.serial,
		Index:     slices.Index(h.deps, d),
		Booted:    d == h.booted,
		Version:   d.version,
	}
}

// prune forgets the commits no ref and no deployment needs, as
// `ostree prune --refs-only` deletes their objects. Callers hold mu.
func (h *Host) prune() {
	needed := make(map[string]bool, len(h.deps)+len(h.refs))
	for _, d := range h.deps {
		needed[d.checksum] = true
	}
	for _, c := range h.refs {
		needed[c] = true
	}
	for c := range h.present {
		if !needed[c] {
			delete(h.present, c)
		}
	}
}

var (
	staterootName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)
	checksum      = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// validate checks a stateroot name and any commit checksums the way the
// ostree backend does.
func validate(stateroot string, commits ...string) error {
	if !staterootName.MatchString(stateroot) {
		return fmt.Errorf("invalid stateroot name %q", stateroot)
	}
	for _, c := range commits {
		if !checksum.MatchString(c) {
			return fmt.Errorf("invalid commit checksum %q", c)
		}
	}
	return nil
}
