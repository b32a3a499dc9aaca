package dashboard

import (
	"context"
	"net"

	"github.com/nats-io/nats.go/jetstream"
)

// Serve follows the hub and serves the page on ln until ctx ends or either
// fails: what ibuctl dashboard and the demo run.
func Serve(ctx context.Context, js jetstream.JetStream, ln net.Listener, o Options) error {
	srv := New(js, o)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- srv.Run(ctx) }()
	go func() { errs <- srv.Serve(ctx, ln) }()
	err := <-errs
	cancel()
	if err2 := <-errs; err == nil {
		err = err2
	}
	return err
}
