package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/buckets"
)

// ErrNoChange, returned by an update function, skips the write.
var ErrNoChange = errors.New("bus: no change")

// ErrConflict is returned when an update kept losing to concurrent writers.
var ErrConflict = errors.New("bus: too many concurrent updates")

// maxUpdateAttempts bounds the compare-and-set retries of Update.
const maxUpdateAttempts = 50

// Update changes key with compare-and-set: it reads the current value and
// revision, calls fn, and writes fn's result only if nobody wrote the key in
// between (kv.Update with the revision, or kv.Create when the key is
// absent or deleted), re-reading and calling fn again on a conflict. fn may
// be called several times and must have no side effects; returning
// ErrNoChange skips the write. Update returns the key's new revision (or the
// current one after ErrNoChange).
func Update(ctx context.Context, kv jetstream.KeyValue, key string, fn func(cur []byte, rev uint64, exists bool) ([]byte, error)) (uint64, error) {
	pause := 5 * time.Millisecond
	var outage time.Time // when transient failures began; zero: none
	for attempt := 1; ; attempt++ {
		var (
			cur    []byte
			rev    uint64
			exists bool
		)
		entry, err := kv.Get(ctx, key)
		switch {
		case err == nil:
			cur, rev, exists = entry.Value(), entry.Revision(), true
		case errors.Is(err, jetstream.ErrKeyNotFound):
			// absent or deleted; Create handles both
		case transient(ctx, err, &outage):
			if err := sleepCtx(ctx, jitter(outagePause)); err != nil {
				return 0, fmt.Errorf("update %s/%s: get: %w", kv.Bucket(), key, err)
			}
			continue
		default:
			return 0, fmt.Errorf("update %s/%s: get: %w", kv.Bucket(), key, err)
		}
		next, err := fn(cur, rev, exists)
		if errors.Is(err, ErrNoChange) {
			return rev, nil
		}
		if err != nil {
			return 0, fmt.Errorf("update %s/%s: %w", kv.Bucket(), key, err)
		}
		var newRev uint64
		if exists {
			newRev, err = kv.Update(ctx, key, next, rev)
		} else {
			newRev, err = kv.Create(ctx, key, next)
		}
		if err == nil {
			return newRev, nil
		}
		if transient(ctx, err, &outage) {
			// The write may or may not have landed: read again and let the
			// revision check decide.
			if err := sleepCtx(ctx, jitter(outagePause)); err != nil {
				return 0, fmt.Errorf("update %s/%s: write: %w", kv.Bucket(), key, err)
			}
			continue
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, fmt.Errorf("update %s/%s: write: %w", kv.Bucket(), key, err)
		}
		if attempt >= maxUpdateAttempts {
			return 0, fmt.Errorf("update %s/%s after %d attempts: %w", kv.Bucket(), key, attempt, ErrConflict)
		}
		if err := sleepCtx(ctx, jitter(pause)); err != nil {
			return 0, fmt.Errorf("update %s/%s: %w", kv.Bucket(), key, err)
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// UpdateJSON is Update for a JSON-encoded value of type T: fn gets a
// pointer to the decoded current value (the zero T when the key does not
// exist, exists false) and changes it in place. It returns the value as
// stored and its revision.
func UpdateJSON[T any](ctx context.Context, kv jetstream.KeyValue, key string, fn func(v *T, exists bool) error) (T, uint64, error) {
	return UpdateValue(ctx, kv, key, buckets.JSON[T](), fn)
}

// UpdateValue is Update for a value of type T stored with codec: fn gets a
// pointer to the decoded current value (the zero T when the key does not
// exist, exists false) and changes it in place; returning ErrNoChange
// skips the write. It returns the value as stored and its revision.
func UpdateValue[T any](ctx context.Context, kv jetstream.KeyValue, key string, codec buckets.Codec[T], fn func(v *T, exists bool) error) (T, uint64, error) {
	var result T
	rev, err := Update(ctx, kv, key, func(cur []byte, _ uint64, exists bool) ([]byte, error) {
		var v T
		if exists {
			d, err := codec.Decode(cur)
			if err != nil {
				return nil, fmt.Errorf("decode current value: %w", err)
			}
			v = d
		}
		if err := fn(&v, exists); err != nil {
			if errors.Is(err, ErrNoChange) {
				// fn may have touched v; report what is stored.
				var stored T
				if exists {
					stored, _ = codec.Decode(cur)
				}
				result = stored
			}
			return nil, err
		}
		result = v
		return codec.Encode(v)
	})
	if err != nil {
		var zero T
		return zero, 0, err
	}
	return result, rev, nil
}

// A JetStream cluster that loses a server elects new stream leaders within
// seconds; requests meanwhile time out or find no responders. Update
// rides such an outage out for up to maxOutage instead of failing its
// caller (a node agent whose status write fails would stop).
const (
	maxOutage   = 60 * time.Second
	outagePause = 250 * time.Millisecond
)

// transient reports whether err is a passing failure of the hub (timeout,
// no responders, no quorum) while ctx is still live and the outage, which
// started at *since, has not lasted maxOutage.
func transient(ctx context.Context, err error, since *time.Time) bool {
	if ctx.Err() != nil || !retryablePublishError(err) {
		return false
	}
	if since.IsZero() {
		*since = time.Now()
	}
	return time.Since(*since) < maxOutage
}

// RideOut calls fn until it succeeds, fails for a reason other than a
// passing outage of the hub (see Transient), ctx ends, or the outage has
// lasted maxOutage, pausing between attempts (250 ms doubling to 5 s). It
// returns fn's last error. For calls whose failure would stop a caller
// that must not stop (the node agent opening its buckets, publishing the
// stage change of a status already written).
func RideOut(ctx context.Context, fn func() error) error {
	var since time.Time
	pause := outagePause
	for {
		err := fn()
		if err == nil || !transient(ctx, err, &since) {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause = min(2*pause, 5*time.Second)
	}
}
