package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/natsembed"
)

// StartHub starts an embedded nats-server with JetStream storing in store
// (port 0: a free one) and ensures ibu's streams and buckets on it.
func StartHub(ctx context.Context, store string, port int) (*natsembed.Server, error) {
	srv, err := natsembed.Start(ctx, natsembed.Config{StoreDir: store, Port: port})
	if err != nil {
		return nil, fmt.Errorf("start embedded NATS: %w", err)
	}
	nc, js, err := Connect(srv.URL(), "ibu-fleet-topology")
	if err == nil {
		err = bus.EnsureTopology(ctx, js)
		nc.Close()
	}
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("ensure topology: %w", err)
	}
	return srv, nil
}

// Connect opens a NATS connection named name to url that reconnects
// forever, and its JetStream.
func Connect(url, name string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	opts = append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.Timeout(10 * time.Second)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream at %s: %w", url, err)
	}
	return nc, js, nil
}
