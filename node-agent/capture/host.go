package capture

import (
	"context"

	"ibu.dev/shared/seedimage"
)

// Host is the seed host as a capture sees it. A real backend runs on the
// seed node (the ostree CLI, systemd); a simulated one works on directories.
type Host interface {
	// Describe reports the booted system and what runs on it, changing
	// nothing.
	Describe(ctx context.Context) (Source, error)
	// Quiesce stops the workloads so that /var and /etc stop changing.
	Quiesce(ctx context.Context) error
	// Resume starts the workloads again. It is called after every Quiesce
	// that was attempted, also when the capture failed.
	Resume(ctx context.Context) error
	// ExportCommit makes an archive-mode ostree repository holding commit
	// (with ref ref) under workDir and returns its path.
	ExportCommit(ctx context.Context, commit, ref, workDir string) (string, error)
}

// Source is what Describe reports: the seed's description and where its
// content is.
type Source struct {
	// Info describes the seed (BuildTime is set by the capture).
	Info seedimage.SeedInfo
	// Images are the container images on the node, name@sha256:<hex>.
	Images []string
	// Namespaces, CRDs and PersistentVolumes of the seed cluster, which
	// the seed-builder checks before a capture.
	Namespaces, CRDs, PersistentVolumes []string
	Healthy                             bool
	HealthMessage                       string
	// Root is the booted deployment's root: Root/etc is the live /etc and
	// Root/usr/etc the commit's default /etc that the changes are taken
	// against.
	Root string
	// VarDir is the booted stateroot's /var.
	VarDir string
}
