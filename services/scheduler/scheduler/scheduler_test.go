package scheduler_test

import (
	"context"
	"testing"
	"time"

	"ibu.dev/services/scheduler/scheduler"
	"ibu.dev/shared/natstest"
)

// A scheduler that cannot start (no topology on the hub) returns its
// error instead of hanging.
func TestRunReturnsWhenItCannotStart(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	done := make(chan error, 1)
	go func() { done <- scheduler.New(js, scheduler.Config{Name: "t"}).Run(context.Background()) }()
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
	go func() { done <- scheduler.New(js, scheduler.Config{Name: "t"}).Run(ctx) }()
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
