package natsembed_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/natsconn"
	"ibu.dev/shared/natsembed"
)

func TestStartRestartKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := natsembed.Start(ctx, natsembed.Config{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	url := s.URL()
	if s.Config().Port == 0 {
		t.Fatal("port not recorded")
	}

	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s.1", []byte("hello")); err != nil {
		t.Fatal(err)
	}

	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.URL() != url {
		t.Fatalf("URL changed over restart: %s -> %s", url, s.URL())
	}
	st, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if string(m.Data) != "hello" {
		t.Fatalf("after restart: data %q", m.Data)
	}

	// Shutdown and a fresh Start on the same config work too.
	s.Shutdown()
	s.Shutdown() // idempotent
	s2, err := natsembed.Start(ctx, s.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Shutdown()
	if s2.URL() != url {
		t.Fatalf("URL changed: %s -> %s", url, s2.URL())
	}
}

func TestStartRequiresStoreDir(t *testing.T) {
	if _, err := natsembed.Start(context.Background(), natsembed.Config{}); err == nil {
		t.Fatal("no error without StoreDir")
	}
}

func TestClusterStopRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := natsembed.StartCluster(ctx, t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	if c.Len() != 3 || len(c.URLs()) != 3 {
		t.Fatalf("nodes %d urls %v", c.Len(), c.URLs())
	}
	for i := range 3 {
		if c.Index(c.Node(i).Name()) != i {
			t.Fatalf("Index(%s) != %d", c.Node(i).Name(), i)
		}
	}
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	c.Stop(2)
	if c.Node(2).Running() {
		t.Fatal("node 2 still running")
	}
	if err := c.WaitMetaLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitMetaLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "r3.x", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

// StartHub leaves a server with every stream and bucket of the topology.
func TestStartHubEnsuresTheTopology(t *testing.T) {
	srv, err := natsembed.StartHub(t.Context(), natsembed.Config{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, js, err := natsconn.Config{URL: srv.URL()}.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, s := range bus.StreamConfigs() {
		if _, err := js.Stream(t.Context(), s.Name); err != nil {
			t.Errorf("stream %s: %v", s.Name, err)
		}
	}
	for _, kv := range bus.KeyValueConfigs() {
		if _, err := js.KeyValue(t.Context(), kv.Bucket); err != nil {
			t.Errorf("bucket %s: %v", kv.Bucket, err)
		}
	}
}
