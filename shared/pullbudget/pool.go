// Package pullbudget is the fleet-wide image pull budget: a pool of pull
// slots per registry kept in a JetStream KV bucket, so that every node agent
// and every precache replica sees one limit on concurrent pulls from a
// registry. A slot is a key held by a lease that its holder renews; a
// holder that dies stops renewing and its slot is taken over after the
// lease's TTL, measured on the taker's own clock (no clock sync needed).
package pullbudget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/buckets"
)

// Bucket is the KV bucket of the pull budget (buckets.PullBudget). Keys:
// limit.<registry> (the number of slots, written by the precache service)
// and slot.<registry>.<n> (a held slot).
const Bucket = buckets.NamePullBudget

// DefaultTTL is how long a slot stays held without renewal.
const DefaultTTL = 30 * time.Second

// ErrNoBudget: the bucket does not exist (no precache service configured
// one), so pulls are not limited.
var ErrNoBudget = errors.New("no pull budget configured")

// Ensure creates (or updates) the budget bucket. The precache service calls
// it; agents only open it.
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) error {
	spec := buckets.PullBudget.Spec()
	_, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: spec.Name, Description: spec.Description,
		History: spec.History, TTL: spec.TTL, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return fmt.Errorf("ensure bucket %s: %w", Bucket, err)
	}
	return nil
}

// Pool hands out pull slots. It is safe for concurrent use.
type Pool struct {
	kv     jetstream.KeyValue
	holder string
	ttl    time.Duration
	log    *slog.Logger

	mu       sync.Mutex
	watchers map[string]*watch // registry token -> change notifier
	stops    []func()
}

// Close stops the pool's watchers. Leases already held stay valid until
// released.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, stop := range p.stops {
		stop()
	}
	p.stops, p.watchers = nil, map[string]*watch{}
}

// Option configures Open.
type Option func(*Pool)

// WithTTL sets the lease TTL (default DefaultTTL); holders renew at a third
// of it.
func WithTTL(d time.Duration) Option { return func(p *Pool) { p.ttl = d } }

// WithLogger logs lost leases and renewal failures.
func WithLogger(l *slog.Logger) Option { return func(p *Pool) { p.log = l } }

// Open opens the budget bucket for holder (a cluster id, or a replica
// name). It returns ErrNoBudget when the bucket does not exist.
func Open(ctx context.Context, js jetstream.JetStream, holder string, opts ...Option) (*Pool, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, ErrNoBudget
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", Bucket, err)
	}
	p := &Pool{kv: kv, holder: holder, ttl: DefaultTTL, log: slog.Default(), watchers: map[string]*watch{}}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// Token turns a registry host (host[:port]) into a KV key token.
func Token(registry string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(registry) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

func limitKey(registry string) string { return "limit." + Token(registry) }
func slotKey(registry string, n int) string {
	return "slot." + Token(registry) + "." + strconv.Itoa(n)
}

// SetLimit sets the number of concurrent pulls from registry across the
// fleet (0 or less removes the limit). It writes only on a change, so every
// precache replica may call it with the same configuration.
func (p *Pool) SetLimit(ctx context.Context, registry string, limit int) error {
	key := limitKey(registry)
	cur, err := p.kv.Get(ctx, key)
	switch {
	case err == nil && limit > 0 && string(cur.Value()) == strconv.Itoa(limit):
		return nil
	case err == nil && limit <= 0:
		return p.kv.Delete(ctx, key)
	case errors.Is(err, jetstream.ErrKeyNotFound) && limit <= 0:
		return nil
	case err != nil && !errors.Is(err, jetstream.ErrKeyNotFound):
		return fmt.Errorf("read %s: %w", key, err)
	}
	if _, err := p.kv.Put(ctx, key, []byte(strconv.Itoa(limit))); err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	return nil
}

// Limit returns the limit for registry; ok is false when there is none.
func (p *Pool) Limit(ctx context.Context, registry string) (limit int, ok bool, err error) {
	e, err := p.kv.Get(ctx, limitKey(registry))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read pull limit of %s: %w", registry, err)
	}
	n, err := strconv.Atoi(string(e.Value()))
	if err != nil || n <= 0 {
		return 0, false, fmt.Errorf("pull limit of %s: bad value %q", registry, e.Value())
	}
	return n, true, nil
}

// LeaseInfo is what a slot key holds.
type LeaseInfo struct {
	Holder   string    `json:"holder"`
	What     string    `json:"what,omitempty"` // the image being pulled
	Acquired time.Time `json:"acquired"`
}

// Lease is a held slot (or, without a limit, a no-op). Release it when the
// pull ends.
type Lease struct {
	p    *Pool
	key  string // empty: unlimited
	mu   sync.Mutex
	rev  uint64
	stop context.CancelFunc
	done chan struct{}
}

// Acquire blocks until a slot for registry is free and takes it for what
// (an image). Without a limit for registry it returns at once.
func (p *Pool) Acquire(ctx context.Context, registry, what string) (*Lease, error) {
	limit, ok, err := p.Limit(ctx, registry)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &Lease{p: p}, nil
	}
	val, err := json.Marshal(LeaseInfo{Holder: p.holder, What: what, Acquired: time.Now().UTC()})
	if err != nil {
		return nil, err
	}
	w, err := p.watch(ctx, registry)
	if err != nil {
		return nil, err
	}
	// seen remembers when this caller first saw each held slot at its
	// revision: a revision unchanged for a TTL is a dead holder's.
	type sighting struct {
		rev  uint64
		when time.Time
	}
	seen := map[string]sighting{}
	for {
		changed := w.changed()
		off := rand.IntN(limit)
		for i := range limit {
			key := slotKey(registry, (off+i)%limit)
			e, err := p.kv.Get(ctx, key)
			var rev uint64
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
				rev, err = p.kv.Create(ctx, key, val)
			case err != nil:
				return nil, fmt.Errorf("read %s: %w", key, err)
			default:
				s, ok := seen[key]
				if !ok || s.rev != e.Revision() {
					seen[key] = sighting{e.Revision(), time.Now()}
					continue
				}
				if time.Since(s.when) < p.ttl {
					continue
				}
				p.log.Warn("pull slot not renewed for a lease TTL: taking it over", "slot", key, "holder", string(e.Value()))
				rev, err = p.kv.Update(ctx, key, val, e.Revision())
			}
			if err == nil {
				return p.hold(key, rev, val), nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return nil, fmt.Errorf("take %s: %w", key, err)
			}
		}
		t := time.NewTimer(p.ttl/4 + time.Duration(rand.Int64N(int64(p.ttl/8)+1)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
}

// hold starts renewing the slot.
func (p *Pool) hold(key string, rev uint64, val []byte) *Lease {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Lease{p: p, key: key, rev: rev, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(p.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			l.mu.Lock()
			rev, err := p.kv.Update(ctx, key, val, l.rev)
			if err == nil {
				l.rev = rev
			}
			l.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				// Lost (taken over after a stall) or the hub is away: the pull
				// goes on; the budget may be exceeded by one until it ends.
				p.log.Warn("pull slot lease not renewed", "slot", key, "error", err)
				if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
					return
				}
			}
		}
	}()
	return l
}

// Release frees the slot (if this lease still holds it). It is idempotent.
func (l *Lease) Release(ctx context.Context) error {
	if l == nil || l.key == "" {
		return nil
	}
	l.stop()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 {
		return nil
	}
	err := l.p.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
	l.rev = 0
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("release %s: %w", l.key, err)
	}
	return nil
}

// Held lists the slots held for registry now.
func (p *Pool) Held(ctx context.Context, registry string) ([]LeaseInfo, error) {
	limit, ok, err := p.Limit(ctx, registry)
	if err != nil || !ok {
		return nil, err
	}
	var out []LeaseInfo
	for i := range limit {
		e, err := p.kv.Get(ctx, slotKey(registry, i))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var li LeaseInfo
		if err := json.Unmarshal(e.Value(), &li); err != nil {
			return nil, fmt.Errorf("slot %d of %s: %w", i, registry, err)
		}
		out = append(out, li)
	}
	return out, nil
}

// watch is one KV watcher per registry, shared by the pool's waiters:
// every change of a slot closes the current channel.
type watch struct {
	mu sync.Mutex
	ch chan struct{}
}

func (w *watch) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

func (w *watch) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
}

// watch returns the registry's notifier, starting its watcher on first use;
// it lives until Close.
func (p *Pool) watch(ctx context.Context, registry string) (*watch, error) {
	tok := Token(registry)
	p.mu.Lock()
	defer p.mu.Unlock()
	if w, ok := p.watchers[tok]; ok {
		return w, nil
	}
	kw, err := p.kv.Watch(context.WithoutCancel(ctx), "slot."+tok+".*", jetstream.UpdatesOnly(), jetstream.MetaOnly())
	if err != nil {
		return nil, fmt.Errorf("watch pull slots of %s: %w", registry, err)
	}
	w := &watch{ch: make(chan struct{})}
	p.watchers[tok] = w
	go func() {
		for range kw.Updates() {
			w.fire()
		}
	}()
	p.stops = append(p.stops, func() { _ = kw.Stop() })
	return w, nil
}
