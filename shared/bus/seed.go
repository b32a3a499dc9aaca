package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/buckets"
)

// Seed-builder state: the builds' records and the artifacts a seed
// cluster's node agent hands to the seed-builder (see shared/buckets).
const (
	// BucketSeedBuilds is the KV bucket of seed builds, keyed by build id,
	// written by the seed-builder, read by ibuctl seed status.
	BucketSeedBuilds = buckets.NameSeedBuilds
	// ObjectStoreSeedArtifacts holds captured layers in flight between the
	// seed cluster's agent and the seed-builder ("<build>/<role>"); the
	// seed-builder deletes a build's objects when the build ends, and
	// SeedArtifactsMaxAge removes what a crash left behind.
	ObjectStoreSeedArtifacts = buckets.NameSeedArtifacts
	SeedArtifactsMaxAge      = buckets.SeedArtifactsMaxAge
)

// ObjectStoreConfigs returns the configuration EnsureTopology applies to the
// object stores of the catalogue (shared/buckets).
func ObjectStoreConfigs(opts ...TopologyOption) []jetstream.ObjectStoreConfig {
	o := topologyDefaults(opts)
	var out []jetstream.ObjectStoreConfig
	for _, b := range buckets.All() {
		if b.Kind != buckets.ObjectStore || b.CreatedBy != buckets.ByTopology {
			continue
		}
		out = append(out, jetstream.ObjectStoreConfig{
			Bucket:      b.Name,
			Description: b.Description,
			TTL:         b.TTL,
			Storage:     jetstream.FileStorage,
			Replicas:    o.replicas,
			Compression: false, // the layers are compressed already
		})
	}
	return out
}

func ensureObjectStores(ctx context.Context, js jetstream.JetStream, opts ...TopologyOption) error {
	for _, cfg := range ObjectStoreConfigs(opts...) {
		err := retryEnsure(ctx, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateObjectStore(ctx, cfg)
			return err
		})
		if err != nil {
			return fmt.Errorf("ensure object store %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}
