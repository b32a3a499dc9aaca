package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Seed-builder state: the builds' records and the artifacts a seed
// cluster's node agent hands to the seed-builder.
const (
	// BucketSeedBuilds is the KV bucket of seed builds, keyed by build id,
	// written by the seed-builder, read by ibuctl seed status.
	BucketSeedBuilds = "IBU_SEED_BUILDS"
	// ObjectStoreSeedArtifacts holds captured layers in flight between the
	// seed cluster's agent and the seed-builder ("<build>/<role>"); the
	// seed-builder deletes a build's objects when the build ends, and
	// SeedArtifactsMaxAge removes what a crash left behind.
	ObjectStoreSeedArtifacts = "IBU_SEED_ARTIFACTS"
	SeedArtifactsMaxAge      = 24 * time.Hour
)

// ObjectStoreConfigs returns the configuration EnsureTopology applies to the
// object store buckets.
func ObjectStoreConfigs(opts ...TopologyOption) []jetstream.ObjectStoreConfig {
	o := topologyDefaults(opts)
	return []jetstream.ObjectStoreConfig{{
		Bucket:      ObjectStoreSeedArtifacts,
		Description: "ibu seed capture artifacts in flight from a seed cluster to the seed-builder",
		TTL:         SeedArtifactsMaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    o.replicas,
		Compression: false, // the layers are compressed already
	}}
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
