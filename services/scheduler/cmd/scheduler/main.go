// Command scheduler runs one replica of ibu's fleet scheduler; see package
// scheduler. Run several: plans are owned by one replica at a time.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/services/scheduler/scheduler"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/telemetry"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scheduler:", err)
		os.Exit(1)
	}
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func run() error {
	url := flag.String("nats-url", env("NATS_URL", nats.DefaultURL), "NATS server URL(s) ($NATS_URL)")
	creds := flag.String("nats-creds", env("IBU_NATS_CREDS", ""), "NATS credentials file ($IBU_NATS_CREDS)")
	name := flag.String("name", env("IBU_SCHEDULER_NAME", ""), "replica name, unique per replica (default host-pid)")
	lease := flag.Duration("lease-ttl", 15*time.Second, "how long a replica owns a plan without renewing it")
	replicas := flag.Int("stream-replicas", 1, "stream and bucket replicas when creating the topology")
	level := flag.String("log-level", env("IBU_LOG_LEVEL", "info"), "debug, info, warn or error")
	format := flag.String("log-format", env("IBU_LOG_FORMAT", "json"), "json or text")
	flag.Parse()
	log, err := telemetry.NewLogger(os.Stderr, *format, *level)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := []nats.Option{nats.Name("ibu-scheduler"), nats.MaxReconnects(-1)}
	if *creds != "" {
		opts = append(opts, nats.UserCredentials(*creds))
	}
	nc, err := nats.Connect(*url, opts...)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", *url, err)
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := bus.EnsureTopology(ctx, js, bus.Replicas(*replicas)); err != nil {
		return fmt.Errorf("ensure topology: %w", err)
	}
	// Spans go where the standard OTEL_* environment says (none by default).
	tp, err := telemetry.NewProvider(ctx, telemetry.Config{ServiceName: "ibu-scheduler"})
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("flush traces", "error", err)
		}
	}()
	return scheduler.New(js, scheduler.Config{Name: *name, LeaseTTL: *lease, Logger: log, Tracer: tp}).Run(ctx)
}
