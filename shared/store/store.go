// Package store gives typed access to ibu's key-value buckets: a Bucket[T]
// handle opened from a descriptor of the catalogue (shared/buckets) reads
// and writes values of T, and a Cache[T] follows a bucket the way an
// informer does, reporting a lost watch instead of going stale.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/buckets"
	"ibu.dev/shared/bus"
)

// ErrNotFound: the key does not exist or was deleted.
var ErrNotFound = errors.New("store: key not found")

// ErrDecode: a stored value does not decode as its bucket's type.
var ErrDecode = errors.New("store: value does not decode")

// ErrWatchLost: a watch ended while its caller still wanted it (the
// connection closed, the bucket went away); what it fed is stale.
var ErrWatchLost = errors.New("store: watch lost")

// Bucket is a typed handle on a key-value bucket whose values are T.
type Bucket[T any] struct {
	kv    jetstream.KeyValue
	codec buckets.Codec[T]
}

// Open opens the bucket that d describes.
func Open[T any](ctx context.Context, js jetstream.JetStream, d buckets.Bucket[T]) (*Bucket[T], error) {
	kv, err := js.KeyValue(ctx, d.Name())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", d.Name(), err)
	}
	return Wrap(kv, d), nil
}

// Wrap makes a typed handle of a bucket already open (kv must be d's).
func Wrap[T any](kv jetstream.KeyValue, d buckets.Bucket[T]) *Bucket[T] {
	return &Bucket[T]{kv: kv, codec: d.Codec()}
}

// Name is the bucket's name.
func (b *Bucket[T]) Name() string { return b.kv.Bucket() }

// KV is the untyped bucket, for what the handle does not offer.
func (b *Bucket[T]) KV() jetstream.KeyValue { return b.kv }

// Get returns key's value and revision; ErrNotFound when it does not
// exist.
func (b *Bucket[T]) Get(ctx context.Context, key string) (T, uint64, error) {
	var zero T
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return zero, 0, fmt.Errorf("%s/%s: %w", b.Name(), key, ErrNotFound)
	}
	if err != nil {
		return zero, 0, fmt.Errorf("read %s/%s: %w", b.Name(), key, err)
	}
	v, err := b.codec.Decode(e.Value())
	if err != nil {
		return zero, e.Revision(), fmt.Errorf("decode %s/%s: %w: %w", b.Name(), key, ErrDecode, err)
	}
	return v, e.Revision(), nil
}

// Put writes key's value unconditionally and returns its revision.
func (b *Bucket[T]) Put(ctx context.Context, key string, v T) (uint64, error) {
	data, err := b.codec.Encode(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s/%s: %w", b.Name(), key, err)
	}
	rev, err := b.kv.Put(ctx, key, data)
	if err != nil {
		return 0, fmt.Errorf("write %s/%s: %w", b.Name(), key, err)
	}
	return rev, nil
}

// Create writes key's value only if the key does not exist (or was
// deleted); otherwise the error wraps jetstream.ErrKeyExists.
func (b *Bucket[T]) Create(ctx context.Context, key string, v T) (uint64, error) {
	data, err := b.codec.Encode(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s/%s: %w", b.Name(), key, err)
	}
	rev, err := b.kv.Create(ctx, key, data)
	if err != nil {
		return 0, fmt.Errorf("create %s/%s: %w", b.Name(), key, err)
	}
	return rev, nil
}

// Delete deletes key (opts: jetstream.LastRevision for compare-and-set).
func (b *Bucket[T]) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	if err := b.kv.Delete(ctx, key, opts...); err != nil {
		return fmt.Errorf("delete %s/%s: %w", b.Name(), key, err)
	}
	return nil
}

// Update changes key with compare-and-set (bus.UpdateValue): fn gets the
// current value (the zero T when the key does not exist, exists false) and
// changes it in place; it may be called several times and must have no
// side effects; returning bus.ErrNoChange skips the write. Update returns
// the value as stored and its revision.
func (b *Bucket[T]) Update(ctx context.Context, key string, fn func(v *T, exists bool) error) (T, uint64, error) {
	return bus.UpdateValue(ctx, b.kv, key, b.codec, fn)
}

// Keys lists the bucket's keys (none: an empty list, no error).
func (b *Bucket[T]) Keys(ctx context.Context) ([]string, error) {
	lister, err := b.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list keys of %s: %w", b.Name(), err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// Op is what an Event reports.
type Op int

// Event kinds.
const (
	// Put: the key has a new value.
	Put Op = iota + 1
	// Delete: the key was deleted or purged.
	Delete
	// Synced: every value that existed when the watch began has been
	// delivered (no key; sent once, also when there were none).
	Synced
)

// Event is one change a watch delivers.
type Event[T any] struct {
	Op       Op
	Key      string
	Value    T // Put only, when Err is nil
	Revision uint64
	Created  time.Time
	// Raw is the value as stored (Put), for a caller that reads past a
	// decode error.
	Raw []byte
	// Err is the value's decode error (Put); Value is then the zero T.
	Err error
	// Initial: the event is one of the values that existed when the watch
	// began (before Synced).
	Initial bool
}

// Watcher delivers a watch's events.
type Watcher[T any] struct {
	kw       jetstream.KeyWatcher
	codec    buckets.Codec[T]
	o        watchOptions
	ch       chan Event[T]
	stop     chan struct{}
	stopOnce sync.Once
}

// WatchOption adjusts Watch.
type WatchOption func(*watchOptions)

type watchOptions struct {
	updatesOnly, ignoreDeletes, metaOnly bool
}

// UpdatesOnly: no current values (and no Synced event), only changes.
func UpdatesOnly() WatchOption { return func(o *watchOptions) { o.updatesOnly = true } }

// IgnoreDeletes: no Delete events.
func IgnoreDeletes() WatchOption { return func(o *watchOptions) { o.ignoreDeletes = true } }

// MetaOnly: events without values (nothing is decoded), for a caller that
// only wants to know that something changed.
func MetaOnly() WatchOption { return func(o *watchOptions) { o.metaOnly = true } }

// Watch watches keys (none: every key; patterns as in jetstream's Watch):
// first the current values, then a Synced event, then every change. The
// channel of Updates closes when ctx ends, Stop is called or the watch is
// lost.
func (b *Bucket[T]) Watch(ctx context.Context, keys []string, opts ...WatchOption) (*Watcher[T], error) {
	var o watchOptions
	for _, f := range opts {
		f(&o)
	}
	var jopts []jetstream.WatchOpt
	if o.updatesOnly {
		jopts = append(jopts, jetstream.UpdatesOnly())
	}
	if o.ignoreDeletes {
		jopts = append(jopts, jetstream.IgnoreDeletes())
	}
	if o.metaOnly {
		jopts = append(jopts, jetstream.MetaOnly())
	}
	var kw jetstream.KeyWatcher
	var err error
	if len(keys) == 0 {
		kw, err = b.kv.WatchAll(ctx, jopts...)
	} else {
		kw, err = b.kv.WatchFiltered(ctx, append([]string(nil), keys...), jopts...)
	}
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", b.Name(), err)
	}
	w := &Watcher[T]{kw: kw, codec: b.codec, o: o, ch: make(chan Event[T]), stop: make(chan struct{})}
	go w.relay(ctx)
	return w, nil
}

// Updates is the watch's events; it closes when the watch ends.
func (w *Watcher[T]) Updates() <-chan Event[T] { return w.ch }

// Stop ends the watch; Updates closes soon after.
func (w *Watcher[T]) Stop() {
	w.stopOnce.Do(func() { close(w.stop) })
	_ = w.kw.Stop()
}

func (w *Watcher[T]) relay(ctx context.Context) {
	defer close(w.ch)
	defer func() { _ = w.kw.Stop() }()
	initial := !w.o.updatesOnly
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return
		case <-w.stop:
			return
		case ent, ok := <-w.kw.Updates():
			if !ok {
				return
			}
			e = ent
		}
		var ev Event[T]
		switch {
		case e == nil:
			initial = false
			ev = Event[T]{Op: Synced}
		case e.Operation() == jetstream.KeyValuePut:
			ev = Event[T]{Op: Put, Key: e.Key(), Revision: e.Revision(), Created: e.Created(), Raw: e.Value(), Initial: initial}
			if w.o.metaOnly {
				break
			}
			if v, err := w.codec.Decode(e.Value()); err != nil {
				ev.Err = fmt.Errorf("decode %s/%s: %w: %w", e.Bucket(), e.Key(), ErrDecode, err)
			} else {
				ev.Value = v
			}
		default:
			ev = Event[T]{Op: Delete, Key: e.Key(), Revision: e.Revision(), Created: e.Created(), Initial: initial}
		}
		select {
		case <-ctx.Done():
			return
		case <-w.stop:
			return
		case w.ch <- ev:
		}
	}
}
