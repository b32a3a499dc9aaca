// Package natstest gives tests a real JetStream: an embedded server or
// cluster whose data lives in t.TempDir() and that is shut down by
// t.Cleanup, a client connection, and WaitFor to wait for a condition with a
// deadline instead of sleeping.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/natsembed"
)

// Start runs an embedded JetStream server for the test.
func Start(t testing.TB, opts ...func(*natsembed.Config)) *natsembed.Server {
	t.Helper()
	cfg := natsembed.Config{StoreDir: t.TempDir()}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := natsembed.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start embedded nats: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// StartCluster runs an n-node embedded JetStream cluster for the test.
func StartCluster(t testing.TB, n int, opts ...natsembed.ClusterOption) *natsembed.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := natsembed.StartCluster(ctx, t.TempDir(), n, opts...)
	if err != nil {
		t.Fatalf("start embedded nats cluster: %v", err)
	}
	t.Cleanup(c.Shutdown)
	return c
}

// Connect connects to url (several URLs may be given comma-separated) and
// returns the connection and a JetStream context; the connection is closed
// by t.Cleanup. The client reconnects forever, so a test can restart the
// server underneath it.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	all := append([]nats.Option{
		nats.Name(t.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// WaitFor polls cond every few milliseconds until it returns true and fails
// the test with msg if that does not happen within timeout.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// StartHub starts a server, connects, and ensures ibu's streams and buckets
// on it: the hub most tests need. It returns the server and JetStream.
func StartHub(t testing.TB) (*natsembed.Server, jetstream.JetStream) {
	t.Helper()
	srv := Start(t)
	_, js := Connect(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := bus.EnsureTopology(ctx, js); err != nil {
		t.Fatalf("ensure topology: %v", err)
	}
	return srv, js
}
