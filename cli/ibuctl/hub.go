package ibuctl

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/natsconn"
	"ibu.dev/shared/natsembed"
)

// runHub runs an embedded nats-server with JetStream and ibu's topology
// until interrupted: a development hub for ibuctl and the nats CLI.
func runHub(ctx context.Context, io IO, args []string) error {
	fs := newFlags("hub", io)
	store := fs.String("store", "", "JetStream store directory (default: a new temporary directory)")
	port := fs.Int("port", 4222, "client port on 127.0.0.1 (0 picks a free one)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *store == "" {
		dir, err := os.MkdirTemp("", "ibu-hub-")
		if err != nil {
			return fmt.Errorf("create store directory: %w", err)
		}
		*store = dir
	}
	srv, err := natsembed.StartHub(ctx, natsembed.Config{StoreDir: *store, Port: *port})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	fmt.Fprintf(io.Out, "hub ready: NATS_URL=%s (JetStream store %s); Ctrl-C stops it\n", srv.URL(), *store)
	<-ctx.Done()
	return nil
}

// connect dials c once, named ibuctl unless c names the connection.
func connect(c natsconn.Config) (*nats.Conn, jetstream.JetStream, error) {
	if c.Name == "" {
		c.Name = "ibuctl"
	}
	return c.JetStream(nats.Timeout(5 * time.Second))
}

// runPublish publishes structured CloudEvent files on their contract
// subjects, after the same strict validation that consumers apply.
func runPublish(ctx context.Context, io IO, args []string) error {
	fs := newFlags("publish", io)
	nf := addNATSFlags(fs, io)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: publish FILE... (- for standard input)", ErrUsage)
	}
	nc, js, err := nf.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	pub := bus.NewPublisher(js)
	for _, name := range fs.Args() {
		b, err := readInput(io, name)
		if err != nil {
			return err
		}
		e, err := events.DecodeStructured(b)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", name, events.Reason(err), err)
		}
		subject, err := events.SubjectFor(e.Type(), e.Subject())
		if err != nil {
			return fmt.Errorf("%s: subject for %s about %q: %w", name, e.Type(), e.Subject(), err)
		}
		ack, err := pub.Publish(ctx, subject, e)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		dup := ""
		if ack.Duplicate {
			dup = " (duplicate id: dropped by JetStream)"
		}
		fmt.Fprintf(io.Out, "%s: published %s id=%s on %s -> %s seq %d%s\n", name, e.Type(), e.ID(), subject, ack.Stream, ack.Sequence, dup)
	}
	return nil
}
