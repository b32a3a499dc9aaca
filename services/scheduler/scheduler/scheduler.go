package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
	"ibu.dev/shared/telemetry"
)

// Config tunes a scheduler replica.
type Config struct {
	// Name identifies this replica as a plan's owner (default: hostname
	// and pid). Two replicas must have different names.
	Name string
	// LeaseTTL is how long a replica owns a plan without renewing it; a
	// replica that dies is replaced this long after its last write
	// (default 15s).
	LeaseTTL time.Duration
	// Tick re-evaluates plans even when nothing happens, for timeouts and
	// maintenance windows (default 1s).
	Tick time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// Telemetry receives the scheduler's logs, spans and metrics (nil
	// fields: see telemetry.Telemetry).
	Telemetry telemetry.Telemetry
}

func (c *Config) defaults() {
	if c.Name == "" {
		h, _ := os.Hostname()
		c.Name = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 15 * time.Second
	}
	if c.Tick <= 0 {
		c.Tick = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Telemetry = c.Telemetry.Resolved()
}

// Scheduler is one replica of the scheduler service.
type Scheduler struct {
	cfg    Config
	js     jetstream.JetStream
	pub    *bus.Publisher
	log    *slog.Logger
	tracer trace.Tracer

	plans, clusters, desired, status jetstream.KeyValue

	mu          sync.Mutex
	planCache   map[string]planEntry
	clusterSeen map[string]state.Cluster
	statusSeen  map[string]state.Status
	desiredGen  map[string]int64
	lastReport  map[string]events.PlanStatusChanged
	wake        chan struct{}
}

type planEntry struct {
	plan state.Plan
	rev  uint64
}

// New returns a replica ready to Run.
func New(js jetstream.JetStream, cfg Config) *Scheduler {
	cfg.defaults()
	return &Scheduler{
		cfg: cfg, js: js, pub: bus.NewPublisher(js, bus.PublishTracerProvider(cfg.Telemetry.Tracer)), log: cfg.Telemetry.Logger.With("replica", cfg.Name),
		tracer:    cfg.Telemetry.Tracer.Tracer("ibu.dev/services/scheduler"),
		planCache: map[string]planEntry{}, clusterSeen: map[string]state.Cluster{},
		statusSeen: map[string]state.Status{}, desiredGen: map[string]int64{},
		lastReport: map[string]events.PlanStatusChanged{}, wake: make(chan struct{}, 1),
	}
}

const source = "/services/scheduler"

// Run serves requests and drives plans until ctx ends (then it returns
// nil); it returns an error when it cannot start or loses its watches.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func (s *Scheduler) run(ctx context.Context) error {
	var err error
	for _, b := range []struct {
		name string
		kv   *jetstream.KeyValue
	}{{bus.BucketPlans, &s.plans}, {bus.BucketClusters, &s.clusters}, {bus.BucketDesired, &s.desired}, {bus.BucketStatus, &s.status}} {
		if *b.kv, err = s.js.KeyValue(ctx, b.name); err != nil {
			return fmt.Errorf("open %s: %w", b.name, err)
		}
	}
	unregister, err := s.registerMetrics(s.cfg.Telemetry.Meter)
	if err != nil {
		return fmt.Errorf("scheduler metrics: %w", err)
	}
	defer func() { _ = unregister() }()
	ctx, cancel := context.WithCancel(ctx)
	synced := make(chan error, 4)
	var wg sync.WaitGroup
	// Cancel before waiting: the watchers end on ctx, so an early return
	// (a watch refused at start) must stop them rather than wait for them.
	defer func() { cancel(); wg.Wait() }()
	for _, w := range []struct {
		kv    jetstream.KeyValue
		apply func(jetstream.KeyValueEntry)
	}{{s.plans, s.applyPlan}, {s.clusters, s.applyCluster}, {s.desired, s.applyDesired}, {s.status, s.applyStatus}} {
		watcher, err := w.kv.WatchAll(ctx)
		if err != nil {
			return fmt.Errorf("watch %s: %w", w.kv.Bucket(), err)
		}
		wg.Go(func() { s.follow(ctx, watcher, w.apply, synced) })
	}
	// Decide nothing before every cache holds the current state: a desired
	// generation missed here would be written again, lower, and ignored.
	for range 4 {
		select {
		case err := <-synced:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
	sub, err := bus.Consume(ctx, s.js, bus.StreamRequests, "scheduler", s.handleRequest,
		bus.ConsumeService(events.ServiceScheduler), bus.ConsumeFilterSubjects("ibu.request.plan.>"),
		bus.ConsumeLogger(s.log), bus.ConsumeTracerProvider(s.cfg.Telemetry.Tracer), bus.ConsumeMeterProvider(s.cfg.Telemetry.Meter))
	if err != nil {
		return fmt.Errorf("consume plan requests: %w", err)
	}
	defer sub.Stop()
	s.log.Info("scheduler ready")
	tick := time.NewTicker(s.cfg.Tick)
	defer tick.Stop()
	for {
		s.reconcileAll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-tick.C:
		}
	}
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// follow applies a KV watch to the caches; it reports once when the
// initial values are in.
func (s *Scheduler) follow(ctx context.Context, w jetstream.KeyWatcher, apply func(jetstream.KeyValueEntry), synced chan<- error) {
	defer w.Stop()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				if initial {
					synced <- errors.New("watch closed before its initial values")
				}
				return
			}
			if e == nil {
				if initial {
					initial = false
					synced <- nil
				}
				continue
			}
			apply(e)
			if !initial {
				s.poke()
			}
		}
	}
}

func (s *Scheduler) applyPlan(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(s.planCache, e.Key())
		return
	}
	var p state.Plan
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		s.log.Error("unreadable plan record", "plan", e.Key(), "error", err)
		return
	}
	if cur, ok := s.planCache[e.Key()]; ok && cur.rev > e.Revision() {
		return
	}
	s.planCache[e.Key()] = planEntry{plan: p, rev: e.Revision()}
}

func (s *Scheduler) applyCluster(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(s.clusterSeen, e.Key())
		return
	}
	var c state.Cluster
	if json.Unmarshal(e.Value(), &c) == nil {
		s.clusterSeen[e.Key()] = c
	}
}

func (s *Scheduler) applyDesired(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		return // a deleted key keeps its last generation: never go back
	}
	var d struct {
		Generation int64 `json:"generation"`
	}
	if json.Unmarshal(e.Value(), &d) == nil && d.Generation > s.desiredGen[e.Key()] {
		s.desiredGen[e.Key()] = d.Generation
	}
}

func (s *Scheduler) applyStatus(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(s.statusSeen, e.Key())
		return
	}
	var st state.Status
	if json.Unmarshal(e.Value(), &st) == nil {
		s.statusSeen[e.Key()] = st
	}
}
