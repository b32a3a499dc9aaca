// Package host is the node agent's narrow view of the machine it runs on:
// the ostree stateroots, the reboot, and the container image store. Each is
// an interface with a real backend (the ostree CLI, systemd, the CRI image
// service) and a simulated one cheap enough for thousands of agents in one
// process. The agent's logic sees only these interfaces.
package host

import (
	"context"
	"errors"
)

// Deployment is one ostree deployment of a stateroot.
type Deployment struct {
	Stateroot string `json:"stateroot"` // ostree "osname", e.g. rhcos_4.16.9
	Checksum  string `json:"checksum"`  // the deployed commit
	Serial    int    `json:"serial"`    // ostree's deployment serial (the ".0" in <checksum>.0)
	Index     int    `json:"index"`     // position in the boot order: 0 is what the next boot starts
	Booted    bool   `json:"booted"`    // the running system is this deployment
	Version   string `json:"version,omitempty"`
}

// Stateroots manages the host's ostree stateroots. Every method is
// idempotent: calling it again after a crash, with the same arguments, ends
// in the same state without doing the work twice or failing because the
// work is already done.
type Stateroots interface {
	// Deployments lists every deployment in boot order (index 0 first).
	Deployments(ctx context.Context) ([]Deployment, error)
	// Booted returns the deployment the host is running.
	Booted(ctx context.Context) (Deployment, error)
	// Import copies the commit (and the objects it needs) from the
	// archive-mode ostree repository at repoDir into the host's repository
	// and points the ref ibu/<stateroot> at it.
	Import(ctx context.Context, repoDir, commit, stateroot string) error
	// Deploy creates stateroot if it does not exist and deploys commit in
	// it with the given kernel arguments, NOT as the boot default: a host
	// that reboots during Prep must come back on the old stateroot. It
	// returns the deployment (the existing one when commit is already
	// deployed in stateroot). A stateroot holds one commit: deploying
	// another commit into a stateroot that has a deployment fails (Remove
	// it first). A commit not in the host's repository gives ErrNotFound.
	Deploy(ctx context.Context, stateroot, commit string, kargs []string) (Deployment, error)
	// Paths returns the root directory of the newest deployment of
	// stateroot (whose etc/ is that deployment's /etc) and the stateroot's
	// shared var directory (its /var). The newest deployment is the
	// stateroot's first in boot order, the one ostree merges /etc from. A
	// stateroot without deployments gives ErrNotFound.
	Paths(ctx context.Context, stateroot string) (root, varDir string, err error)
	// SetDefault makes the newest deployment of stateroot the one the next
	// boot starts: the pivot, and the rollback. /etc changes made in that
	// deployment are kept (its root directory may change: call Paths
	// again). A stateroot without deployments gives ErrNotFound.
	SetDefault(ctx context.Context, stateroot string) error
	// Remove undeploys every deployment of stateroot and deletes the
	// stateroot with its /var. It refuses the booted stateroot with
	// ErrBooted; a stateroot that does not exist is not an error.
	Remove(ctx context.Context, stateroot string) error
}

// Rebooter restarts the host.
type Rebooter interface {
	// Reboot asks the host to restart into its boot default. The real
	// backend does not return while the machine goes down (ctx ends); the
	// simulated one returns ErrRebooting at once so that the agent's Run
	// returns and a harness can "boot" the host and start the agent again.
	Reboot(ctx context.Context, reason string) error
}

// Errors shared by the backends.
var (
	// ErrRebooting: the reboot was requested; the caller must stop and
	// let the host (or the harness) restart it.
	ErrRebooting = errors.New("host is rebooting")
	// ErrBooted: the operation would remove or replace the running system.
	ErrBooted = errors.New("refused: stateroot is booted")
	// ErrNotFound: no such stateroot or deployment.
	ErrNotFound = errors.New("not found")
)

// ImageStore is the node's container image storage, for precache.
type ImageStore interface {
	// Inventory lists the images present, as name@sha256:<digest>.
	Inventory(ctx context.Context) ([]string, error)
	// Pull fetches an image (name@sha256:<digest>) unless it is present,
	// and returns the bytes transferred (0 when it was already there).
	Pull(ctx context.Context, image string) (int64, error)
	// Remove deletes an image; absent is not an error.
	Remove(ctx context.Context, image string) error
}

// BootIdentity tells one boot of the host from the next, so that a step
// that reboots can tell after a crash whether the reboot happened.
type BootIdentity interface {
	// BootID is a value that changes at every boot (the kernel's
	// /proc/sys/kernel/random/boot_id on a real host).
	BootID(ctx context.Context) (string, error)
}
