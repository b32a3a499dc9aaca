// Command precache runs one replica of ibu's precache service; see package
// precache. Run several: they share one durable consumer and the fleet's
// pull budget in JetStream.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/services/precache/precache"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/telemetry"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "precache:", err)
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
	name := flag.String("name", env("IBU_PRECACHE_NAME", ""), "replica name, unique per replica (default host-pid)")
	authFile := flag.String("authfile", env("IBU_REGISTRY_AUTHFILE", ""), "docker config.json with registry credentials (default: the docker/podman keychain)")
	nodeConc := flag.Int("node-concurrency", 10, "parallel pulls per node unless the request asks otherwise")
	fleetDefault := flag.Int("fleet-pull-limit", 0, "concurrent pulls from any one registry across the fleet (0: unlimited)")
	var limits limitFlags
	flag.Var(&limits, "registry-pull-limit", "REGISTRY=N: concurrent pulls from REGISTRY across the fleet (repeatable)")
	bps := flag.Int64("max-bytes-per-sec", 0, "download rate per node (0: unlimited)")
	replicas := flag.Int("stream-replicas", 1, "stream and bucket replicas when creating the topology")
	level := flag.String("log-level", env("IBU_LOG_LEVEL", "info"), "debug, info, warn or error")
	format := flag.String("log-format", env("IBU_LOG_FORMAT", "json"), "json or text")
	flag.Parse()
	log, err := telemetry.NewLogger(os.Stderr, *format, *level)
	if err != nil {
		return err
	}
	if *name == "" {
		host, _ := os.Hostname()
		*name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	cfg := precache.Config{Name: *name, Logger: log, NodeConcurrency: *nodeConc, DefaultFleetLimit: *fleetDefault,
		FleetLimits: limits, MaxBytesPerSec: *bps, Replicas: *replicas}
	if *authFile != "" {
		kc, err := seedimage.AuthFileKeychain(*authFile)
		if err != nil {
			return err
		}
		cfg.SeedOptions = []seedimage.Option{seedimage.WithAuthFile(*authFile)}
		cfg.Remote = []remote.Option{remote.WithAuthFromKeychain(kc)}
	} else {
		cfg.Remote = []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := []nats.Option{nats.Name("ibu-precache"), nats.MaxReconnects(-1)}
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
	return precache.New(js, cfg).Run(ctx)
}

// limitFlags collects -registry-pull-limit REGISTRY=N.
type limitFlags map[string]int

func (l *limitFlags) String() string { return fmt.Sprint(map[string]int(*l)) }

func (l *limitFlags) Set(v string) error {
	reg, n, ok := strings.Cut(v, "=")
	limit, err := strconv.Atoi(n)
	if !ok || reg == "" || err != nil || limit < 0 {
		return fmt.Errorf("want REGISTRY=N, got %q", v)
	}
	if *l == nil {
		*l = limitFlags{}
	}
	(*l)[reg] = limit
	return nil
}
