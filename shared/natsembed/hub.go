package natsembed

import (
	"context"
	"fmt"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/natsconn"
)

// StartHub starts a server as Start does and ensures ibu's streams and
// buckets on it (bus.EnsureTopology with opts): a hub in one process, for
// `ibuctl hub`, the demo and the fleet benchmarks.
func StartHub(ctx context.Context, cfg Config, opts ...bus.TopologyOption) (*Server, error) {
	srv, err := Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded NATS: %w", err)
	}
	nc, js, err := natsconn.Config{URL: srv.URL(), Name: "ibu-hub-topology"}.JetStream()
	if err == nil {
		err = bus.EnsureTopology(ctx, js, opts...)
		nc.Close()
	}
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("ensure topology: %w", err)
	}
	return srv, nil
}
