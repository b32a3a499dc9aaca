package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/buckets"
)

// Spoke-written buckets (SpokeWritten in the catalogue, shared/buckets) are
// those in which every spoke writes its own key. A spoke's credentials
// allow publishing to $KV.<bucket>.<cluster>; with rollups allowed, a "Nats-Rollup: all" header on that one message
// would wipe every cluster's key, so their streams refuse rollups (and
// stream purges): delete keys, never purge them.

// hardenBucket sets a bucket stream's limits that the KV API has no field
// for: the consumer limit; direct gets (so that a spoke's read of its own
// key goes to a subject that names the key, which credentials can limit,
// instead of STREAM.MSG.GET, which they cannot); and for buckets that
// spokes write, no rollups and no purges. A bucket update resets them, so
// they are set after every one.
func hardenBucket(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValueConfig, maxConsumers int) error {
	bucket := kv.Bucket
	stream := "KV_" + bucket
	spokeWritten := false
	for _, b := range buckets.All() {
		spokeWritten = spokeWritten || (b.Name == bucket && b.SpokeWritten)
	}
	return retryEnsure(ctx, func(ctx context.Context) error {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		cfg := st.CachedInfo().Config
		want := cfg
		// What the KV API would update, for buckets it cannot update
		// (below).
		want.Description, want.Replicas, want.MaxMsgsPerSubject = kv.Description, kv.Replicas, int64(kv.History)
		want.MaxConsumers = maxConsumers
		want.AllowDirect = true
		if spokeWritten {
			want.AllowRollup = false
			want.DenyPurge = true
		}
		if want.MaxConsumers == cfg.MaxConsumers && want.AllowDirect == cfg.AllowDirect &&
			want.AllowRollup == cfg.AllowRollup && want.DenyPurge == cfg.DenyPurge &&
			want.Description == cfg.Description && want.Replicas == cfg.Replicas && want.MaxMsgsPerSubject == cfg.MaxMsgsPerSubject {
			return nil
		}
		if _, err := js.UpdateStream(ctx, want); err != nil {
			return fmt.Errorf("harden %s (consumer limit %d, direct gets, rollups off for spoke-written buckets): %w", stream, maxConsumers, err)
		}
		return nil
	})
}

// keepsHardening reports whether bucket's stream exists and denies purges:
// the KV API's update would switch that off, which the server refuses, so
// such a bucket is updated through its stream by hardenBucket.
func keepsHardening(ctx context.Context, js jetstream.JetStream, bucket string) (bool, error) {
	st, err := js.Stream(ctx, "KV_"+bucket)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.CachedInfo().Config.DenyPurge, nil
}

// ReapDurables deletes durable consumers on the buckets' streams. Nothing
// of ibu's makes one there (watches are ephemeral), but a spoke's right to
// create its own watch also lets it create a durable consumer on its own
// key, which would live forever: the hub reaps them. It returns how many
// it deleted.
func ReapDurables(ctx context.Context, js jetstream.JetStream, log *slog.Logger) (int, error) {
	n := 0
	for _, kv := range KeyValueConfigs() {
		st, err := js.Stream(ctx, "KV_"+kv.Bucket)
		if err != nil {
			return n, fmt.Errorf("reap durables: %w", err)
		}
		lister := st.ListConsumers(ctx)
		var durables []string
		for ci := range lister.Info() {
			if ci.Config.Durable != "" {
				durables = append(durables, ci.Name)
			}
		}
		if err := lister.Err(); err != nil {
			return n, fmt.Errorf("reap durables: list consumers of KV_%s: %w", kv.Bucket, err)
		}
		for _, name := range durables {
			if err := st.DeleteConsumer(ctx, name); err != nil {
				return n, fmt.Errorf("reap durables: delete %s on KV_%s: %w", name, kv.Bucket, err)
			}
			if log != nil {
				log.Warn("deleted a durable consumer on a bucket (only a client could have made it; ibu makes none)", "bucket", kv.Bucket, "consumer", name)
			}
			n++
		}
	}
	return n, nil
}

// ReapDurablesEvery runs ReapDurables every interval until ctx ends.
func ReapDurablesEvery(ctx context.Context, js jetstream.JetStream, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := ReapDurables(ctx, js, log); err != nil && ctx.Err() == nil && log != nil {
			log.Warn("reap durable consumers on the buckets", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
