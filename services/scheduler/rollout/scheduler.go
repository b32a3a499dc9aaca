package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"ibu.dev/shared/buckets"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
	"ibu.dev/shared/store"
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
	plans, err := store.Open(ctx, s.js, buckets.Plans)
	if err != nil {
		return err
	}
	clusters, err := store.Open(ctx, s.js, buckets.Clusters)
	if err != nil {
		return err
	}
	desired, err := store.Open(ctx, s.js, buckets.Desired)
	if err != nil {
		return err
	}
	status, err := store.Open(ctx, s.js, buckets.Status)
	if err != nil {
		return err
	}
	s.plans, s.clusters, s.desired, s.status = plans.KV(), clusters.KV(), desired.KV(), status.KV()
	unregister, err := s.registerMetrics(s.cfg.Telemetry.Meter)
	if err != nil {
		return fmt.Errorf("scheduler metrics: %w", err)
	}
	defer func() { _ = unregister() }()
	ctx, cancel := context.WithCancel(ctx)
	// Cancel before waiting: the caches end on ctx, so an early return (a
	// watch refused at start) must stop them rather than wait for them.
	// The set's Lost reports the first cache that ends while ctx is live:
	// its watch is lost, and deciding on a stale cache is not allowed.
	caches := store.NewSet()
	defer func() {
		cancel()
		caches.Wait()
	}()
	if _, err := store.Follow(ctx, caches, plans, store.CacheOptions[state.Plan]{OnEvent: follow(s, s.applyPlan)}); err != nil {
		return err
	}
	if _, err := store.Follow(ctx, caches, clusters, store.CacheOptions[state.Cluster]{OnEvent: follow(s, s.applyCluster)}); err != nil {
		return err
	}
	if _, err := store.Follow(ctx, caches, desired, store.CacheOptions[state.Desired]{OnEvent: follow(s, s.applyDesired)}); err != nil {
		return err
	}
	if _, err := store.Follow(ctx, caches, status, store.CacheOptions[state.Status]{OnEvent: follow(s, s.applyStatus)}); err != nil {
		return err
	}
	// Decide nothing before every cache holds the current state: a desired
	// generation missed here would be written again, lower, and ignored.
	if err := caches.WaitForSync(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
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
		case err := <-caches.Lost():
			if ctx.Err() != nil {
				return nil
			}
			return err
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

// follow turns a cache's events into apply calls; once the cache holds the
// initial values, every change wakes the reconciler.
func follow[T any](s *Scheduler, apply func(store.Event[T])) func(store.Event[T]) {
	return func(e store.Event[T]) {
		if e.Op == store.Synced {
			return
		}
		apply(e)
		if !e.Initial {
			s.poke()
		}
	}
}

func (s *Scheduler) applyPlan(e store.Event[state.Plan]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Op != store.Put {
		delete(s.planCache, e.Key)
		return
	}
	if e.Err != nil {
		s.log.Error("unreadable plan record", "plan", e.Key, "error", e.Err)
		return
	}
	if cur, ok := s.planCache[e.Key]; ok && cur.rev > e.Revision {
		return
	}
	s.planCache[e.Key] = planEntry{plan: e.Value, rev: e.Revision}
}

func (s *Scheduler) applyCluster(e store.Event[state.Cluster]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Op != store.Put {
		delete(s.clusterSeen, e.Key)
		return
	}
	if e.Err == nil {
		s.clusterSeen[e.Key] = e.Value
	}
}

func (s *Scheduler) applyDesired(e store.Event[state.Desired]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Op != store.Put {
		return // a deleted key keeps its last generation: never go back
	}
	// Only the generation matters here, also of a value the contract
	// refuses (e.Err): read it from the raw value as stored.
	var d struct {
		Generation int64 `json:"generation"`
	}
	if json.Unmarshal(e.Raw, &d) == nil && d.Generation > s.desiredGen[e.Key] {
		s.desiredGen[e.Key] = d.Generation
	}
}

func (s *Scheduler) applyStatus(e store.Event[state.Status]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Op != store.Put {
		delete(s.statusSeen, e.Key)
		return
	}
	if e.Err == nil {
		s.statusSeen[e.Key] = e.Value
	}
}
