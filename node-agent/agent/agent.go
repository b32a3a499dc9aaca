package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"ibu.dev/node-agent/host"
	"ibu.dev/shared/buckets"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/store"
)

// Agent runs one cluster's image-based upgrade on its host.
type Agent struct {
	cfg    Config
	d      Deps
	log    *slog.Logger
	tracer trace.Tracer
	meters agentMetrics
	pub    *bus.Publisher
	source string

	clusters, desired, status jetstream.KeyValue

	mu  sync.Mutex // guards seq
	seq uint64
}

// New checks the configuration and returns an agent ready to Run.
func New(cfg Config, d Deps) (*Agent, error) {
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	if err := d.defaults(); err != nil {
		return nil, fmt.Errorf("agent dependencies: %w", err)
	}
	meters, err := newAgentMetrics(d.Telemetry.Meter)
	if err != nil {
		return nil, fmt.Errorf("agent metrics: %w", err)
	}
	return &Agent{
		meters: meters,
		cfg:    cfg,
		d:      d,
		log:    d.Telemetry.Logger.With("cluster", cfg.ClusterID),
		tracer: d.Telemetry.Tracer.Tracer("ibu.dev/node-agent"),
		pub:    bus.NewPublisher(d.JS, bus.PublishTracerProvider(d.Telemetry.Tracer)),
		source: "/clusters/" + cfg.ClusterID + "/node-agent",
	}, nil
}

// errCrash marks a stop requested by Deps.StepHook.
var errCrash = errors.New("stopped at a step boundary")

// Run registers the cluster, heartbeats, and acts on every change of the
// cluster's desired state until ctx ends. It resumes an interrupted run from
// the journal first. With a simulated host it returns host.ErrRebooting when
// a step reboots: the harness boots the host and calls Run again.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.open(ctx); err != nil {
		return err
	}
	if err := a.register(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); a.heartbeat(ctx) }()
	defer func() { cancel(); <-hbDone }()

	w, err := store.Wrap(a.desired, buckets.Desired).Watch(ctx, []string{a.cfg.ClusterID})
	if err != nil {
		return fmt.Errorf("watch desired state: %w", err)
	}
	defer w.Stop()

	l := &loop{a: a, done: make(chan runResult, 1)}
	if err := l.resume(ctx); err != nil {
		return err
	}
	for {
		var timer <-chan time.Time
		wd := l.watchdog()
		if wd != nil {
			timer = wd.C
		}
		err := l.step(ctx, w, timer)
		if wd != nil {
			wd.Stop()
		}
		if err != nil {
			if errors.Is(err, errStopped) || (ctx.Err() != nil && !errors.Is(err, host.ErrRebooting)) {
				l.stop()
				return nil // shutting down: the journal resumes whatever was cut short
			}
			return err
		}
	}
}

// errStopped: ctx ended and the loop stopped cleanly.
var errStopped = errors.New("stopped")

// step waits for one thing to happen and handles it.
func (l *loop) step(ctx context.Context, w *store.Watcher[state.Desired], timer <-chan time.Time) error {
	{
		select {
		case <-ctx.Done():
			return l.stop()
		case entry, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return l.stop()
				}
				return errors.New("desired state watch closed")
			}
			if entry.Op == store.Synced { // initial values delivered
				return nil
			}
			return l.desiredChanged(ctx, entry)
		case res := <-l.done:
			return l.finished(ctx, res)
		case <-timer:
			return l.watchdogFired(ctx)
		}
	}
}

func (a *Agent) open(ctx context.Context) error {
	var err error
	if a.clusters, err = a.openBucket(ctx, bus.BucketClusters); err != nil {
		return err
	}
	if a.desired, err = a.openBucket(ctx, bus.BucketDesired); err != nil {
		return err
	}
	if a.status, err = a.openBucket(ctx, bus.BucketStatus); err != nil {
		return err
	}
	return nil
}

// openBucket opens a bucket, riding out a JetStream leader election or a
// hub server restart (bus.RideOut).
func (a *Agent) openBucket(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := bus.RideOut(ctx, func() (err error) {
		if kv, err = a.d.JS.KeyValue(ctx, bucket); err != nil && bus.Transient(err) {
			a.log.Warn("cannot open bucket yet; retrying", "bucket", bucket, "error", err)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", bucket, err)
	}
	return kv, nil
}

// register writes the cluster's inventory record and announces it; the
// status starts at Idle the first time.
func (a *Agent) register(ctx context.Context) error {
	booted, err := a.d.Stateroots.Booted(ctx)
	if err != nil {
		return fmt.Errorf("read booted stateroot: %w", err)
	}
	deps, err := a.d.Stateroots.Deployments(ctx)
	if err != nil {
		return fmt.Errorf("list deployments: %w", err)
	}
	reg := events.ClusterRegistered{
		ClusterID: a.cfg.ClusterID, Labels: a.cfg.Labels, Version: a.version(booted),
		BootedStateroot: booted.Stateroot, AgentVersion: a.cfg.AgentVersion, Fingerprint: a.cfg.Fingerprint,
	}
	seen := map[string]bool{}
	for _, d := range deps {
		if !seen[d.Stateroot] {
			seen[d.Stateroot] = true
			reg.Stateroots = append(reg.Stateroots, events.Stateroot{Name: d.Stateroot, Version: d.Version})
		}
	}
	now := a.d.Now().UTC()
	if _, _, err := bus.UpdateJSON(ctx, a.clusters, a.cfg.ClusterID, func(c *state.Cluster, exists bool) error {
		if !exists {
			c.RegisteredAt = now
		}
		c.ClusterRegistered, c.LastSeen = reg, now
		return nil
	}); err != nil {
		return fmt.Errorf("register in %s: %w", bus.BucketClusters, err)
	}
	if _, err := a.updateStatus(ctx, func(s *state.Status, exists bool) {
		if !exists {
			s.Position = stages.IdlePosition
			s.Conditions = stages.ConditionsFor(nil, s.Position, "cluster registered", now)
		}
		s.BootedStateroot = booted.Stateroot
	}); err != nil {
		return err
	}
	return a.emit(ctx, reg)
}

// version is the release a deployment runs: its commit's version when
// known, else the configured version for the stateroot booted at start.
func (a *Agent) version(d host.Deployment) string {
	if d.Version != "" {
		return d.Version
	}
	return a.cfg.Version
}

func (a *Agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		a.seq++
		seq := a.seq
		a.mu.Unlock()
		st, err := a.readStatus(ctx)
		if err != nil {
			a.log.Warn("heartbeat: read status", "error", err)
			continue
		}
		now := a.d.Now().UTC()
		if err := a.emit(ctx, events.ClusterHeartbeat{ClusterID: a.cfg.ClusterID, Seq: seq, Time: now, Stage: st.Stage, State: st.State}); err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat", "error", err)
		}
		_, _, err = bus.UpdateJSON(ctx, a.clusters, a.cfg.ClusterID, func(c *state.Cluster, _ bool) error {
			c.LastSeen, c.Stage, c.State = now, st.Stage, st.State
			return nil
		})
		if err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat: inventory", "error", err)
		}
	}
}

// emit publishes one event about this cluster on its contract subject
// (with a fixed event id among opts, e.g. for a re-sent event JetStream's
// dedup must drop).
func (a *Agent) emit(ctx context.Context, data events.Data, opts ...bus.EmitOption) error {
	return a.pub.Emit(ctx, a.source, a.cfg.ClusterID, data, opts...)
}
