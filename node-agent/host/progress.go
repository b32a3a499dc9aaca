package host

import "context"

// ProgressFunc receives the bytes of a pull as they arrive (a delta).
type ProgressFunc func(delta int64)

// ProgressPuller is an ImageStore that reports bytes during a pull, so the
// agent can show a rate and an ETA while large images download. Stores
// without it (the CRI image service has no progress) report an image's
// bytes when its pull ends.
type ProgressPuller interface {
	PullWithProgress(ctx context.Context, image string, progress ProgressFunc) (int64, error)
}
