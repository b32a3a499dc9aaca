package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/buckets"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/state"
	"ibu.dev/shared/store"
	"ibu.dev/shared/testkit/natstest"
)

func hub(t *testing.T) (jetstream.JetStream, context.Context) {
	t.Helper()
	_, js := natstest.StartHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return js, ctx
}

func TestBucketReadWrite(t *testing.T) {
	js, ctx := hub(t)
	plans, err := store.Open(ctx, js, buckets.Plans)
	if err != nil {
		t.Fatal(err)
	}
	if plans.Name() != "IBU_PLANS" {
		t.Fatalf("name %q", plans.Name())
	}
	if _, _, err := plans.Get(ctx, "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get of a missing key: %v, want ErrNotFound", err)
	}
	keys, err := plans.Keys(ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("keys of an empty bucket: %v, %v", keys, err)
	}
	rev, err := plans.Create(ctx, "p1", state.Plan{Message: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plans.Create(ctx, "p1", state.Plan{Message: "p1"}); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("second create: %v, want ErrKeyExists", err)
	}
	got, grev, err := plans.Get(ctx, "p1")
	if err != nil || got.Message != "p1" || grev != rev {
		t.Fatalf("get: %+v rev %d (want %d), %v", got.Message, grev, rev, err)
	}
	v, urev, err := plans.Update(ctx, "p1", func(p *state.Plan, exists bool) error {
		if !exists {
			t.Error("update: exists false")
		}
		p.CurrentStep = 7
		return nil
	})
	if err != nil || v.CurrentStep != 7 || urev <= rev {
		t.Fatalf("update: %+v rev %d, %v", v.CurrentStep, urev, err)
	}
	v, nrev, err := plans.Update(ctx, "p1", func(p *state.Plan, _ bool) error {
		p.CurrentStep = 99
		return bus.ErrNoChange
	})
	if err != nil || v.CurrentStep != 7 || nrev != urev {
		t.Fatalf("update without change: %+v rev %d, %v (want the stored value)", v.CurrentStep, nrev, err)
	}
	if _, err := plans.Put(ctx, "p2", state.Plan{Message: "p2"}); err != nil {
		t.Fatal(err)
	}
	keys, err = plans.Keys(ctx)
	slices.Sort(keys)
	if err != nil || !slices.Equal(keys, []string{"p1", "p2"}) {
		t.Fatalf("keys: %v, %v", keys, err)
	}
	if err := plans.Delete(ctx, "p1", jetstream.LastRevision(rev)); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("delete at a stale revision: %v, want ErrKeyExists", err)
	}
	if err := plans.Delete(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := plans.Get(ctx, "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get of a deleted key: %v, want ErrNotFound", err)
	}
}

func TestBucketDesiredIsValidated(t *testing.T) {
	js, ctx := hub(t)
	desired, err := store.Open(ctx, js, buckets.Desired)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := desired.Put(ctx, "c1", state.Desired{}); err == nil {
		t.Fatal("an invalid desired state was written")
	}
	if _, err := desired.KV().Put(ctx, "c1", []byte(`{"generation":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := desired.Get(ctx, "c1"); !errors.Is(err, store.ErrDecode) {
		t.Fatalf("get of an invalid value: %v, want a decode error", err)
	}
}

// next reads one event or fails.
func next[T any](t *testing.T, ch <-chan store.Event[T]) store.Event[T] {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("events closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	panic("unreachable")
}

func TestWatch(t *testing.T) {
	js, ctx := hub(t)
	status, err := store.Open(ctx, js, buckets.Status)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := status.Put(ctx, "c1", state.Status{ClusterID: "c1", Message: "one"}); err != nil {
		t.Fatal(err)
	}
	w, err := status.Watch(ctx, []string{"c1"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev := next(t, w.Updates()); ev.Op != store.Put || !ev.Initial || ev.Value.Message != "one" {
		t.Fatalf("first event %+v, want the initial put", ev)
	}
	if ev := next(t, w.Updates()); ev.Op != store.Synced {
		t.Fatalf("second event %+v, want Synced", ev)
	}
	if _, err := status.Put(ctx, "c2", state.Status{Message: "other key"}); err != nil {
		t.Fatal(err)
	}
	if _, err := status.KV().Put(ctx, "c1", []byte("{")); err != nil {
		t.Fatal(err)
	}
	if _, err := status.Put(ctx, "c1", state.Status{Message: "two"}); err != nil {
		t.Fatal(err)
	}
	if err := status.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, w.Updates()); ev.Op != store.Put || !errors.Is(ev.Err, store.ErrDecode) || string(ev.Raw) != "{" || ev.Initial {
		t.Fatalf("event %+v, want a put with a decode error", ev)
	}
	if ev := next(t, w.Updates()); ev.Op != store.Put || ev.Value.Message != "two" {
		t.Fatalf("event %+v, want put two", ev)
	}
	if ev := next(t, w.Updates()); ev.Op != store.Delete || ev.Key != "c1" {
		t.Fatalf("event %+v, want delete c1", ev)
	}
	w.Stop()
	for range w.Updates() {
	}
}

func TestCache(t *testing.T) {
	js, ctx := hub(t)
	status, err := store.Open(ctx, js, buckets.Status)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "c2"} {
		if _, err := status.Put(ctx, id, state.Status{ClusterID: id, Message: "initial"}); err != nil {
			t.Fatal(err)
		}
	}
	events := make(chan store.Event[state.Status], 100)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c, err := store.NewCache(cctx, status, store.CacheOptions[state.Status]{OnEvent: func(ev store.Event[state.Status]) { events <- ev }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	if !c.HasSynced() {
		t.Fatal("HasSynced false after WaitForSync")
	}
	if l := c.List(); len(l) != 2 || l[0].Key != "c1" || l[1].Key != "c2" || l[0].Value.Message != "initial" {
		t.Fatalf("list after sync: %+v", l)
	}
	for range 3 { // c1, c2, Synced
		if ev := next(t, events); ev.Op == store.Put && !ev.Initial {
			t.Fatalf("initial event %+v not marked Initial", ev)
		}
	}
	select {
	case <-c.Changes():
		t.Fatal("a change signalled for the initial values")
	default:
	}
	for _, msg := range []string{"a", "b", "c"} {
		if _, err := status.Put(ctx, "c1", state.Status{Message: msg}); err != nil {
			t.Fatal(err)
		}
	}
	if err := status.Delete(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a", "b", "c"} {
		if ev := next(t, events); ev.Op != store.Put || ev.Key != "c1" || ev.Value.Message != want || ev.Initial {
			t.Fatalf("event %+v, want put c1 %q", ev, want)
		}
	}
	if ev := next(t, events); ev.Op != store.Delete || ev.Key != "c2" {
		t.Fatalf("event %+v, want delete c2", ev)
	}
	select {
	case <-c.Changes():
	case <-time.After(10 * time.Second):
		t.Fatal("no change signalled")
	}
	if e, ok := c.Get("c1"); !ok || e.Value.Message != "c" {
		t.Fatalf("c1 in the cache: %+v %v, want c", e, ok)
	}
	if _, ok := c.Get("c2"); ok {
		t.Fatal("deleted c2 still in the cache")
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Err of a running cache: %v", err)
	}
	cancel()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("cache did not end on cancel")
	}
	if err := c.Err(); !errors.Is(err, context.Canceled) || errors.Is(err, store.ErrWatchLost) {
		t.Fatalf("Err after cancel: %v, want context.Canceled", err)
	}
}

func TestCacheKeys(t *testing.T) {
	js, ctx := hub(t)
	status, err := store.Open(ctx, js, buckets.Status)
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.NewCache(ctx, status, store.CacheOptions[state.Status]{Keys: []string{"c1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := status.Put(ctx, "c2", state.Status{}); err != nil {
		t.Fatal(err)
	}
	if _, err := status.Put(ctx, "c1", state.Status{Message: "mine"}); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 10*time.Second, "c1 in the cache", func() bool { _, ok := c.Get("c1"); return ok })
	if l := c.List(); len(l) != 1 {
		t.Fatalf("a cache of c1 holds %+v", l)
	}
}

func TestCacheReportsLostWatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(t *testing.T, ctx context.Context, nc interface{ Close() }, js jetstream.JetStream)
	}{
		{"connection closed", func(t *testing.T, _ context.Context, nc interface{ Close() }, _ jetstream.JetStream) { nc.Close() }},
		{"bucket deleted", func(t *testing.T, ctx context.Context, _ interface{ Close() }, js jetstream.JetStream) {
			if err := js.DeleteKeyValue(ctx, buckets.NamePlans); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := natstest.StartHub(t)
			nc, js := natstest.Connect(t, srv.URL())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			plans, err := store.Open(ctx, js, buckets.Plans)
			if err != nil {
				t.Fatal(err)
			}
			c, err := store.NewCache(ctx, plans, store.CacheOptions[state.Plan]{})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.WaitForSync(ctx); err != nil {
				t.Fatal(err)
			}
			tc.lose(t, ctx, nc, js)
			select {
			case <-c.Done():
			case <-time.After(20 * time.Second):
				t.Fatal("the cache did not report its lost watch")
			}
			if err := c.Err(); !errors.Is(err, store.ErrWatchLost) {
				t.Fatalf("Err: %v, want ErrWatchLost", err)
			}
		})
	}
}
