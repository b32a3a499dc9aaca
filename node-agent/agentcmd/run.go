package agentcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/client-go/tools/clientcmd"

	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/agent/simspoke"
	"ibu.dev/node-agent/capture"
	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/host/ostree"
	"ibu.dev/node-agent/host/sim"
	"ibu.dev/node-agent/host/systemd"
	"ibu.dev/node-agent/journal"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/natsconn"
	"ibu.dev/shared/runner"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/telemetry"
)

// Run is the ibu-agent command: it parses args (without the program name)
// and the environment read through getenv, then runs the agent until ctx
// ends, which is a clean stop (nil). --help prints to stdout; logs go to
// stderr. A bad flag gives an error matching ErrUsage.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg, err := Parse(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		Usage(stdout)
		return nil
	}
	if err != nil {
		return err
	}
	log, err := telemetry.NewLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return usagef("%v", err)
	}
	tp, err := telemetry.NewProvider(ctx, telemetry.Config{
		ServiceName: "ibu-agent", ServiceVersion: agentVersion(), Getenv: getenv, Writer: stdout,
	})
	if err != nil {
		if errors.Is(err, telemetry.ErrUnknownExporter) {
			return usagef("tracing from the OTEL_* environment: %v", err)
		}
		return fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("flush traces", "error", err)
		}
	}()
	return run(ctx, cfg, log, tp)
}

func run(ctx context.Context, cfg Config, log *slog.Logger, tp trace.TracerProvider) error {
	log = log.With("cluster", cfg.ClusterID)
	log.Info("ibu-agent starting", "backend", cfg.Backend, "nats", natsconn.Redact(cfg.NATS.URL),
		"imageStore", cfg.ImageStore, "agentVersion", agentVersion())

	mp, stopMetrics, err := serveMetrics(ctx, cfg.MetricsListen, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	b, err := newBackend(ctx, cfg, log, tp, mp)
	if err != nil {
		return err
	}
	defer b.close()

	health := &runner.Health{}
	if cfg.HealthAddr != "" {
		stopHealth, _, err := health.Serve(cfg.HealthAddr, nil, log)
		if err != nil {
			return usagef("--health-addr: %v", err)
		}
		defer stopHealth()
	}

	nc, err := connect(ctx, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped before NATS was reachable")
			return nil
		}
		return err
	}
	defer nc.Close()
	if unregister, err := bus.InstrumentConn(nc, mp); err == nil {
		defer func() { _ = unregister() }()
	}
	health.SetConn(nc)
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("JetStream at %s: %w", natsconn.Redact(cfg.NATS.URL), err)
	}
	if err := ensureTopology(ctx, js, cfg.StreamReplicas, log); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	health.SetReady(true)
	log.Info("agent running", "journal", b.journalDir, "workDir", b.workDir)
	err = b.run(ctx, js)
	switch {
	case err == nil:
	case ctx.Err() != nil && errors.Is(err, host.ErrRebooting):
		log.Info("stopped: the host is rebooting")
		err = nil
	case ctx.Err() != nil:
		log.Warn("stopped with an error while shutting down", "error", err)
		err = nil
	default:
		return fmt.Errorf("agent: %w", err)
	}
	log.Info("ibu-agent stopped")
	return err
}

// backend is one host backend, ready to run the agent once connected.
type backend struct {
	run                 func(ctx context.Context, js jetstream.JetStream) error
	close               func()
	journalDir, workDir string
}

func newBackend(ctx context.Context, cfg Config, log *slog.Logger, tp trace.TracerProvider, mp metric.MeterProvider) (*backend, error) {
	acfg := agent.Config{
		ClusterID:           cfg.ClusterID,
		Labels:              cfg.Labels,
		Version:             cfg.Version,
		Fingerprint:         cfg.Fingerprint,
		AgentVersion:        agentVersion(),
		WorkDir:             cfg.WorkDir,
		Services:            cfg.Services,
		HeartbeatInterval:   cfg.Heartbeat,
		InitMonitorTimeout:  cfg.InitMonitorTimeout,
		PrecacheConcurrency: cfg.PullConcurrency,
		PrecacheBestEffort:  cfg.PrecacheBestEffort,
		RegistryMappings:    cfg.RegistryMappings,
	}
	if cfg.SeedAuthFile != "" {
		acfg.SeedOptions = append(acfg.SeedOptions, seedimage.WithAuthFile(cfg.SeedAuthFile))
	}
	if cfg.Backend == BackendSim {
		return simBackend(cfg, acfg, log, tp, mp)
	}
	return ostreeBackend(ctx, cfg, acfg, log, tp, mp)
}

// ostreeBackend is the real host: the ostree CLI, systemctl reboot and the
// kernel's boot id, run through chroot when the host's / is mounted in a
// container.
func ostreeBackend(ctx context.Context, cfg Config, acfg agent.Config, log *slog.Logger, tp trace.TracerProvider, mp metric.MeterProvider) (*backend, error) {
	oopts := []ostree.Option{ostree.WithLogger(log)}
	ropts := []systemd.Option{systemd.WithLogger(log)}
	if cfg.HostRoot != "" {
		oopts = append(oopts, ostree.WithCommand("chroot", cfg.HostRoot, "ostree"), ostree.WithHostRoot(cfg.HostRoot))
		ropts = append(ropts, systemd.WithCommand("chroot", cfg.HostRoot, "systemctl", "reboot"))
	}
	st := ostree.New(cfg.Sysroot, oopts...)
	booted, err := st.Booted(ctx)
	if err != nil {
		return nil, fmt.Errorf("ostree backend: the booted deployment of sysroot %s: %w", cfg.Sysroot, err)
	}
	if booted.Version == "" && cfg.Version == "" {
		return nil, fmt.Errorf("ostree backend: the booted deployment (%s, commit %.12s) carries no version: set --version (or $IBU_VERSION)", booted.Stateroot, booted.Checksum)
	}
	if booted.Version != "" && cfg.Version != "" && booted.Version != cfg.Version {
		log.Warn("the booted commit's version wins over --version", "commitVersion", booted.Version, "flag", cfg.Version)
	}
	var images host.ImageStore = NoImageStore{}
	switch cfg.ImageStore {
	case ImageStoreSim:
		images = sim.NewImages(0, 0)
	case ImageStoreCRI:
		if images, err = criStore(cfg); err != nil {
			return nil, err
		}
	}
	rebooter := systemd.New(ropts...)
	var capt *capture.Worker
	if cfg.SeedCapture {
		if capt, err = captureWorker(cfg, st, images, log); err != nil {
			return nil, err
		}
	}
	return &backend{
		journalDir: cfg.JournalDir,
		workDir:    cfg.WorkDir,
		close:      func() {},
		run: func(ctx context.Context, js jetstream.JetStream) error {
			j, err := journal.Open(cfg.JournalDir)
			if err != nil {
				return fmt.Errorf("open journal %s: %w", cfg.JournalDir, err)
			}
			a, err := agent.New(acfg, agent.Deps{
				JS: js, Stateroots: st, Rebooter: rebooter, Boot: systemd.BootID{},
				Images: images, Journal: j, Telemetry: telemetry.Telemetry{Logger: log, Tracer: tp, Meter: mp},
			})
			if err != nil {
				return err
			}
			if capt == nil {
				return a.Run(ctx)
			}
			// A seed cluster's agent also serves capture tasks; either
			// ending stops the other.
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			capt.JS = js
			done := make(chan error, 1)
			go func() { done <- capt.Run(ctx) }()
			err = a.Run(ctx)
			cancel()
			if cerr := <-done; err == nil && cerr != nil {
				err = fmt.Errorf("seed capture: %w", cerr)
			}
			return err
		},
	}, nil
}

// captureWorker serves the seed-builder's capture tasks on a seed cluster:
// the ostree host (through --host-root like the backend), its image store,
// and its inventory from the cluster's own API.
func captureWorker(cfg Config, st host.Stateroots, images host.ImageStore, log *slog.Logger) (*capture.Worker, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("seed capture: kubeconfig %s: %w", cfg.Kubeconfig, err)
	}
	rep, err := capture.NewKubeReporter(rc)
	if err != nil {
		return nil, err
	}
	h := &capture.OstreeHost{Sysroot: cfg.Sysroot, Stateroots: st, Images: images, Cluster: rep,
		Base: seedimage.SeedInfo{ReleaseImage: cfg.ReleaseImage, Fingerprint: cfg.Fingerprint}}
	if cfg.HostRoot != "" {
		h.Command, h.HostRoot = []string{"chroot", cfg.HostRoot, "ostree"}, cfg.HostRoot
		for _, c := range capture.DefaultStop {
			h.Stop = append(h.Stop, append([]string{"chroot", cfg.HostRoot}, c...))
		}
		for _, c := range capture.DefaultStart {
			h.Start = append(h.Start, append([]string{"chroot", cfg.HostRoot}, c...))
		}
	}
	return &capture.Worker{ClusterID: cfg.ClusterID, Host: h, WorkDir: filepath.Join(cfg.WorkDir, "capture"),
		Telemetry: telemetry.Telemetry{Logger: log}}, nil
}

// simBackend runs the agent on a simulated host that "reboots" in this
// process.
func simBackend(cfg Config, acfg agent.Config, log *slog.Logger, tp trace.TracerProvider, mp metric.MeterProvider) (*backend, error) {
	dir, cleanup := cfg.SimDir, func() {}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "ibu-agent-sim-")
		if err != nil {
			return nil, fmt.Errorf("sim backend: create its directory: %w", err)
		}
		dir = tmp
		cleanup = func() {
			if err := os.RemoveAll(tmp); err != nil {
				log.Warn("remove the sim directory", "dir", tmp, "error", err)
			}
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sim backend: %w", err)
	}
	sp := simspoke.New(acfg, dir, cfg.SimStateroot)
	if cfg.JournalDir != "" {
		sp.JournalDir = cfg.JournalDir
	}
	sp.RebootDelay = cfg.SimRebootDelay
	sp.Logger, sp.Tracer, sp.Meter = log, tp, mp
	return &backend{
		journalDir: sp.JournalDir,
		workDir:    sp.Config.WorkDir,
		close:      cleanup,
		run:        sp.Run,
	}, nil
}

// connect dials the hub through the common service runner: reconnecting
// forever with backoff, buffering publishes while disconnected, logging
// permission denials (which NATS reports only asynchronously), and waiting
// for the first connection (or ctx).
func connect(ctx context.Context, cfg Config, log *slog.Logger) (*nats.Conn, error) {
	conn := cfg.NATS
	conn.Name = "ibu-agent/" + cfg.ClusterID
	return runner.Connect(ctx, runner.Config{
		NATS: conn, ConnectBackoffMin: 500 * time.Millisecond, ConnectBackoffMax: 10 * time.Second,
	}, log)
}

// ensureTopology creates the hub's streams and buckets when any is
// missing, so that an agent may start before the hub's services. It leaves
// an existing topology alone: an agent must not rewrite (say, scale down
// the replicas of) what the hub configured, nor need the rights to.
func ensureTopology(ctx context.Context, js jetstream.JetStream, replicas int, log *slog.Logger) error {
	// Only the agent's own buckets are looked at: a cluster's credentials
	// allow no other stream's info (a denied request shows as a timeout).
	missing := ""
	for _, bucket := range []string{bus.BucketDesired, bus.BucketStatus, bus.BucketClusters} {
		_, err := js.KeyValue(ctx, bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			missing = bucket
			break
		}
		if err != nil {
			return fmt.Errorf("look up bucket %s: %w (a timeout here is often a permission denial: see the log)", bucket, err)
		}
	}
	if missing == "" {
		return nil
	}
	log.Info("creating the hub's streams and buckets", "missing", missing, "replicas", replicas)
	if err := bus.EnsureTopology(ctx, js, bus.Replicas(replicas)); err != nil {
		return fmt.Errorf("create the hub's streams and buckets (%s is missing): %w", missing, err)
	}
	return nil
}

var agentVersionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$`)

// agentVersion is the module version the binary was built from, or "dev".
func agentVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && agentVersionRE.MatchString(bi.Main.Version) {
		return bi.Main.Version
	}
	return "dev"
}
