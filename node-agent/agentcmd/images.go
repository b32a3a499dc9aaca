package agentcmd

import (
	"context"
	"errors"
	"fmt"

	"ibu.dev/node-agent/host"
)

// ErrNoImageStore is what every precache step fails with under
// --image-store none.
var ErrNoImageStore = errors.New("no image store configured (--image-store none)")

// NoImageStore is the host.ImageStore of --image-store none: it holds
// nothing and pulls nothing, so precache fails with ErrNoImageStore rather
// than pretending.
type NoImageStore struct{}

var _ host.ImageStore = NoImageStore{}

// Inventory fails: without a store the agent cannot tell what the node has.
func (NoImageStore) Inventory(context.Context) ([]string, error) {
	return nil, ErrNoImageStore
}

// Pull fails.
func (NoImageStore) Pull(_ context.Context, image string) (int64, error) {
	return 0, fmt.Errorf("pull %s: %w", image, ErrNoImageStore)
}

// Remove succeeds: an image that was never stored is absent.
func (NoImageStore) Remove(context.Context, string) error { return nil }
