// Command health runs one replica of ibu's health service; see package
// health. Replicas share the task consumer.
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

	"ibu.dev/services/health/health"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/clusterkube"
	"ibu.dev/shared/telemetry"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "health:", err)
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
	var reg clusterkube.Spec
	flag.StringVar(&reg.Dir, "kubeconfig-dir", env("IBU_KUBECONFIG_DIR", ""), "directory of <cluster>.kubeconfig files (dev)")
	flag.BoolVar(&reg.Secrets, "kubeconfig-secrets", false, "read each cluster's kubeconfig from a Secret in the hub's API")
	flag.StringVar(&reg.HubKubeconfig, "hub-kubeconfig", env("KUBECONFIG", ""), "the hub's kubeconfig for -kubeconfig-secrets (default in-cluster)")
	flag.StringVar(&reg.SecretNamespace, "secret-namespace", "", "namespace of the kubeconfig Secrets (default: the cluster id)")
	flag.StringVar(&reg.SecretNameFormat, "secret-name", "%s-admin-kubeconfig", "kubeconfig Secret name, %s is the cluster id")
	flag.StringVar(&reg.LocalCluster, "local-cluster", env("IBU_CLUSTER_ID", ""), "serve only this cluster, with in-cluster credentials (spoke placement)")
	window := flag.Duration("window", health.DefaultWindow, "stabilisation window when a request sets none")
	timeout := flag.Duration("timeout", health.DefaultTimeout, "gate deadline when a request sets none")
	interval := flag.Duration("interval", health.DefaultInterval, "time between check rounds")
	replicas := flag.Int("stream-replicas", 1, "stream and bucket replicas when creating the topology")
	level := flag.String("log-level", env("IBU_LOG_LEVEL", "info"), "debug, info, warn or error")
	format := flag.String("log-format", env("IBU_LOG_FORMAT", "json"), "json or text")
	flag.Parse()
	log, err := telemetry.NewLogger(os.Stderr, *format, *level)
	if err != nil {
		return err
	}
	clusters, err := clusterkube.Open(reg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := []nats.Option{nats.Name("ibu-health"), nats.MaxReconnects(-1)}
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
	return health.New(js, health.Config{Clusters: clusters, Cluster: reg.LocalCluster, Window: *window, Timeout: *timeout,
		Interval: *interval, Logger: log}).Run(ctx)
}
