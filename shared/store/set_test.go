package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"ibu.dev/shared/buckets"
	"ibu.dev/shared/state"
	"ibu.dev/shared/store"
)

// A set syncs when all its caches have, reports the first lost watch
// while the others still run, and Wait returns once ctx has ended them.
func TestSetReportsTheFirstLostCache(t *testing.T) {
	js, ctx := hub(t)
	plans, err := store.Open(ctx, js, buckets.Plans)
	if err != nil {
		t.Fatal(err)
	}
	status, err := store.Open(ctx, js, buckets.Status)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := status.Put(ctx, "c1", state.Status{ClusterID: "c1"}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	set := store.NewSet()
	if _, err := store.Follow(cctx, set, plans, store.CacheOptions[state.Plan]{}); err != nil {
		t.Fatal(err)
	}
	sc, err := store.Follow(cctx, set, status, store.CacheOptions[state.Status]{})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := sc.Get("c1"); !ok {
		t.Fatal("synced set: c1 not in the status cache")
	}
	select {
	case err := <-set.Lost():
		t.Fatalf("lost before anything was lost: %v", err)
	default:
	}
	if err := js.DeleteKeyValue(ctx, buckets.NamePlans); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-set.Lost():
		if !errors.Is(err, store.ErrWatchLost) {
			t.Fatalf("Lost: %v, want ErrWatchLost", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the set did not report the lost plans watch")
	}
	cancel()
	waited := make(chan struct{})
	go func() { set.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(20 * time.Second):
		t.Fatal("Wait did not return after ctx ended the caches")
	}
}
