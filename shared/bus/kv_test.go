package bus_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
)

func statusKV(t *testing.T) jetstream.KeyValue {
	t.Helper()
	_, _, js := setup(t)
	kv, err := js.KeyValue(context.Background(), bus.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestUpdateConcurrentIncrements(t *testing.T) {
	kv := statusKV(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := bus.Update(ctx, kv, "counter", func(cur []byte, _ uint64, exists bool) ([]byte, error) {
				n := 0
				if exists {
					var err error
					if n, err = strconv.Atoi(string(cur)); err != nil {
						return nil, err
					}
				}
				return []byte(strconv.Itoa(n + 1)), nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	e, err := kv.Get(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Value()) != "20" {
		t.Fatalf("counter = %s, want 20", e.Value())
	}
}

func TestUpdateNoChangeSkipsWrite(t *testing.T) {
	kv := statusKV(t)
	ctx := context.Background()
	rev, err := kv.Put(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := bus.Update(ctx, kv, "k", func([]byte, uint64, bool) ([]byte, error) { return nil, bus.ErrNoChange })
	if err != nil || got != rev {
		t.Fatalf("rev %d (want %d), err %v", got, rev, err)
	}
	e, _ := kv.Get(ctx, "k")
	if e.Revision() != rev {
		t.Fatal("ErrNoChange wrote")
	}
	// fn errors are returned, wrapped, and nothing is written.
	boom := errors.New("boom")
	if _, err := bus.Update(ctx, kv, "k", func([]byte, uint64, bool) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
}

func TestUpdateRecreatesDeletedKey(t *testing.T) {
	kv := statusKV(t)
	ctx := context.Background()
	if _, err := kv.Put(ctx, "k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	_, err := bus.Update(ctx, kv, "k", func(cur []byte, _ uint64, exists bool) ([]byte, error) {
		if exists {
			t.Errorf("deleted key reported as existing: %q", cur)
		}
		return []byte("new"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "k")
	if err != nil || string(e.Value()) != "new" {
		t.Fatalf("%v", err)
	}
}

func TestUpdateJSON(t *testing.T) {
	kv := statusKV(t)
	ctx := context.Background()
	type status struct {
		Stage      string `json:"stage"`
		Generation int    `json:"generation"`
	}
	v, rev1, err := bus.UpdateJSON(ctx, kv, "sno1", func(s *status, exists bool) error {
		if exists {
			t.Error("new key reported as existing")
		}
		s.Stage, s.Generation = "Prep", 1
		return nil
	})
	if err != nil || v != (status{"Prep", 1}) {
		t.Fatalf("%+v %v", v, err)
	}
	v, rev2, err := bus.UpdateJSON(ctx, kv, "sno1", func(s *status, exists bool) error {
		if !exists || s.Stage != "Prep" {
			t.Errorf("current %+v exists %v", s, exists)
		}
		s.Generation++
		return nil
	})
	if err != nil || v.Generation != 2 || rev2 <= rev1 {
		t.Fatalf("%+v rev %d->%d %v", v, rev1, rev2, err)
	}
	v, rev3, err := bus.UpdateJSON(ctx, kv, "sno1", func(s *status, _ bool) error {
		s.Stage = "scribbled"
		return bus.ErrNoChange
	})
	if err != nil || rev3 != rev2 || v != (status{"Prep", 2}) {
		t.Fatalf("no change: %+v rev %d %v", v, rev3, err)
	}
}
