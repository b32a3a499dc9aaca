package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Entry is a key's value as a Cache holds it.
type Entry[T any] struct {
	Key      string
	Value    T
	Revision uint64
}

// CacheOptions adjust NewCache.
type CacheOptions[T any] struct {
	// Keys restricts the cache to these keys (patterns as in jetstream's
	// Watch); none: every key.
	Keys []string
	// OnEvent, when set, is called with every event of the watch (the
	// initial values, Synced, then every change, a value that does not
	// decode included, with its Err), in order, after the cache has
	// applied it, from the cache's goroutine: it must return promptly.
	OnEvent func(Event[T])
}

// Cache follows a bucket (or some of its keys) through one watch, in the
// manner of client-go's informers: it holds every key's latest value,
// says when it holds the values that existed when it started (HasSynced,
// WaitForSync), signals changes, and ends, with an error, when its watch
// is lost: it never goes stale silently. A value that does not decode
// leaves the key's previous value in place (OnEvent sees the error).
type Cache[T any] struct {
	name    string
	mu      sync.RWMutex
	items   map[string]Entry[T]
	synced  chan struct{}
	changes chan struct{}
	done    chan struct{}
	err     error // set before done closes
}

// NewCache starts a cache on b; it runs until ctx ends or its watch is
// lost (see Done, Err). It fails when the watch cannot start.
func NewCache[T any](ctx context.Context, b *Bucket[T], o CacheOptions[T]) (*Cache[T], error) {
	w, err := b.Watch(ctx, o.Keys)
	if err != nil {
		return nil, err
	}
	c := &Cache[T]{
		name: b.Name(), items: map[string]Entry[T]{},
		synced: make(chan struct{}), changes: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if len(o.Keys) > 0 {
		c.name += " (" + strings.Join(o.Keys, ", ") + ")"
	}
	go c.run(ctx, w, o.OnEvent)
	return c, nil
}

func (c *Cache[T]) run(ctx context.Context, w *Watcher[T], onEvent func(Event[T])) {
	defer close(c.done)
	defer w.Stop()
	for ev := range w.Updates() {
		c.apply(ev)
		if onEvent != nil {
			onEvent(ev)
		}
		if ev.Op != Synced && c.HasSynced() {
			select {
			case c.changes <- struct{}{}:
			default:
			}
		}
	}
	// The watch ended: because ctx did, or it was lost.
	if err := ctx.Err(); err != nil {
		c.err = err
		return
	}
	if c.HasSynced() {
		c.err = fmt.Errorf("watch of %s ended: %w", c.name, ErrWatchLost)
	} else {
		c.err = fmt.Errorf("watch of %s ended before its initial values: %w", c.name, ErrWatchLost)
	}
}

func (c *Cache[T]) apply(ev Event[T]) {
	switch ev.Op {
	case Synced:
		close(c.synced)
	case Put:
		if ev.Err != nil {
			return
		}
		c.mu.Lock()
		c.items[ev.Key] = Entry[T]{Key: ev.Key, Value: ev.Value, Revision: ev.Revision}
		c.mu.Unlock()
	case Delete:
		c.mu.Lock()
		delete(c.items, ev.Key)
		c.mu.Unlock()
	}
}

// HasSynced reports whether the cache holds the values that existed when
// it started.
func (c *Cache[T]) HasSynced() bool {
	select {
	case <-c.synced:
		return true
	default:
		return false
	}
}

// WaitForSync waits until HasSynced; it returns the cache's error when the
// cache ends first, ctx's when ctx does.
func (c *Cache[T]) WaitForSync(ctx context.Context) error {
	select {
	case <-c.synced:
		return nil
	case <-c.done:
		select {
		case <-c.synced: // synced, then ended at once
			return nil
		default:
		}
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Get returns key's latest value.
func (c *Cache[T]) Get(key string) (Entry[T], bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.items[key]
	return e, ok
}

// List returns every key's latest value, sorted by key.
func (c *Cache[T]) List() []Entry[T] {
	c.mu.RLock()
	out := make([]Entry[T], 0, len(c.items))
	for _, e := range c.items {
		out = append(out, e)
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b Entry[T]) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Changes receives a signal after changes once the cache has synced
// (several changes may make one signal; read the cache for what they
// were).
func (c *Cache[T]) Changes() <-chan struct{} { return c.changes }

// Done closes when the cache has ended: its context ended or its watch was
// lost. Err then says which.
func (c *Cache[T]) Done() <-chan struct{} { return c.done }

// Err is nil while the cache runs; after Done it is the context's error
// when the cache was cancelled, or an error wrapping ErrWatchLost when its
// watch ended on its own: the cache is then stale, and its caller must not
// go on as if it were not.
func (c *Cache[T]) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}
