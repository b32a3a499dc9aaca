// Command seed-builder runs one replica of ibu's seed-builder; see package
// builder.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/services/seed-builder/builder"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/telemetry"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "seed-builder:", err)
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
	secrets := flag.String("secrets-dir", env("IBU_SECRETS_DIR", ""), "where push Secrets are mounted as <namespace>/<name>/.dockerconfigjson ($IBU_SECRETS_DIR)")
	namespace := flag.String("namespace", env("POD_NAMESPACE", "ibu-system"), "default namespace of Secret references ($POD_NAMESPACE)")
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
	opts := []nats.Option{nats.Name("ibu-seed-builder"), nats.MaxReconnects(-1)}
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
	return builder.New(js, builder.Config{Logger: log, SecretsDir: *secrets, Namespace: *namespace}).Run(ctx)
}
