package rollout_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/services/scheduler/rollout"
	"ibu.dev/shared/buckets"
	"ibu.dev/shared/store"
	"ibu.dev/shared/telemetry"
	"ibu.dev/shared/testkit/natstest"
)

// A scheduler that cannot start (no topology on the hub) returns its
// error instead of hanging.
func TestRunReturnsWhenItCannotStart(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	done := make(chan error, 1)
	go func() { done <- rollout.New(js, rollout.Config{Name: "t"}).Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run succeeded without buckets")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20s")
	}
}

// A scheduler whose context ends stops cleanly.
func TestRunStopsOnCancel(t *testing.T) {
	_, js := natstest.StartHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rollout.New(js, rollout.Config{Name: "t"}).Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop within 20s")
	}
}

// A scheduler whose watch is lost (its bucket deleted, its connection
// closed) returns an error, as Run's doc says, instead of deciding on a
// stale cache.
func TestRunReturnsWhenAWatchIsLost(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(ctx context.Context, nc *nats.Conn, admin jetstream.JetStream) error
	}{
		{"bucket deleted", func(ctx context.Context, _ *nats.Conn, admin jetstream.JetStream) error {
			return admin.DeleteKeyValue(ctx, buckets.Plans.Name())
		}},
		{"connection closed", func(_ context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
			nc.Close()
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, admin := natstest.StartHub(t)
			nc, js := natstest.Connect(t, srv.URL())
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			done := make(chan error, 1)
			ready := &readyHandler{ch: make(chan struct{})}
			go func() {
				done <- rollout.New(js, rollout.Config{Name: "t", Telemetry: telemetry.Telemetry{Logger: slog.New(ready)}}).Run(ctx)
			}()
			// The scheduler is ready once its caches have synced and it
			// consumes requests.
			select {
			case <-ready.ch:
			case err := <-done:
				t.Fatalf("Run ended before it was ready: %v", err)
			case <-time.After(20 * time.Second):
				t.Fatal("the scheduler was not ready within 20s")
			}
			if err := tc.lose(ctx, nc, admin); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("Run returned nil after losing a watch")
				}
				if !errors.Is(err, store.ErrWatchLost) {
					t.Fatalf("Run: %v, want a lost watch", err)
				}
			case <-time.After(40 * time.Second):
				t.Fatal("Run went on with a lost watch for 40s")
			}
		})
	}
}

// readyHandler closes ch when the scheduler logs that it is ready.
type readyHandler struct {
	once sync.Once
	ch   chan struct{}
}

func (h *readyHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *readyHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "scheduler ready" {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}
func (h *readyHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *readyHandler) WithGroup(string) slog.Handler      { return h }
