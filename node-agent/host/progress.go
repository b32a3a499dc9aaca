package host

import (
	"context"
	"errors"
)

// ProgressFunc receives the bytes of a pull as they arrive (a delta).
type ProgressFunc func(delta int64)

// ProgressPuller is an ImageStore that reports bytes during a pull, so the
// agent can show a rate and an ETA while large images download. Stores
// without it (the CRI image service has no progress) report an image's
// bytes when its pull ends.
type ProgressPuller interface {
	PullWithProgress(ctx context.Context, image string, progress ProgressFunc) (int64, error)
}

// Pull errors a retry cannot fix; a store wraps them so the agent fails the
// image at once with a reason instead of retrying.
var (
	ErrImageNotFound     = errors.New("image not found")
	ErrImageUnauthorized = errors.New("registry refused credentials")
)
