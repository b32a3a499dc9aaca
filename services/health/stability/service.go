package stability

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/client-go/dynamic"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/clusterkube"
	"ibu.dev/shared/events"
	"ibu.dev/shared/telemetry"
)

// Source is the CloudEvents source of the service's events.
const Source = "/services/health"

// Config configures the service.
type Config struct {
	// Clusters finds each cluster's API (a kubeconfig file per cluster in
	// dev, a Secret on a hub, in-cluster on a spoke).
	Clusters clusterkube.Registry
	// Cluster, when set, is the only cluster whose tasks this instance
	// consumes (the spoke placement, beside the agent).
	Cluster string
	// Window is used when a request asks for no stabilisation window
	// (default DefaultWindow).
	Window time.Duration
	// Timeout is used when a request sets none (default DefaultTimeout).
	Timeout time.Duration
	// Interval between check rounds (default DefaultInterval).
	Interval time.Duration
	// Concurrency: gates run at once, each for one cluster (default 16).
	Concurrency int
	// Telemetry: the logger, and the tracer of the consumer span of each
	// task (joined to the cluster's upgrade trace) and of the publish of its
	// answer, and the meter of the consumer's metrics.
	Telemetry telemetry.Telemetry
}

// Service consumes health tasks and answers each with health.passed or
// health.failed on the cluster's event subject.
type Service struct {
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger
}

// New returns a service on js; call Run.
func New(js jetstream.JetStream, cfg Config) *Service {
	cfg.Telemetry = cfg.Telemetry.Resolved()
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	return &Service{js: js, cfg: cfg, log: cfg.Telemetry.Logger}
}

// Run consumes tasks until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.Clusters == nil {
		return errors.New("health: no cluster registry configured")
	}
	return bus.RunTasks(ctx, s.js, bus.TaskWorker{Service: events.ServiceHealth, Cluster: s.cfg.Cluster, Source: Source,
		Handlers: []bus.TaskHandler{bus.HandleTask(func(ctx context.Context, req events.HealthCheckRequested) (events.Data, error) {
			return s.check(ctx, req), nil // every outcome, an unreachable cluster included, is answered
		})},
		Telemetry: s.cfg.Telemetry,
		Options: []bus.ConsumeOption{bus.ConsumeConcurrency(s.cfg.Concurrency), bus.ConsumeBatch(s.cfg.Concurrency),
			bus.ConsumeRejectedEvents(Source)}})
}

func (s *Service) check(ctx context.Context, req events.HealthCheckRequested) events.Data {
	fail := func(reason, msg string, o Outcome) events.Data {
		s.log.Warn("health failed", "cluster", req.ClusterID, "step", req.Step, "reason", reason, "message", msg)
		return events.HealthFailed{ClusterID: req.ClusterID, PlanID: req.PlanID, Generation: req.Generation, Step: req.Step,
			Reason: reason, Message: msg, Checks: o.Checks, DurationMs: o.Duration.Milliseconds()}
	}
	cfg, err := s.cfg.Clusters.RESTConfig(ctx, req.ClusterID)
	if err != nil {
		reason := ReasonUnreachable
		if errors.Is(err, clusterkube.ErrUnknownCluster) {
			reason = "UnknownCluster"
		}
		return fail(reason, err.Error(), Outcome{})
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fail(ReasonUnreachable, err.Error(), Outcome{})
	}
	window := time.Duration(req.StableForSeconds) * time.Second
	if req.StableForSeconds <= 0 {
		window = s.cfg.Window
	}
	timeout := time.Duration(req.Timeout)
	if timeout <= 0 {
		timeout = s.cfg.Timeout
	}
	g := &Gate{Client: dc, Selection: Selection{Checks: req.Checks, Tiers: req.Tiers},
		Window: window, Timeout: timeout, Interval: s.cfg.Interval}
	o, err := g.Wait(ctx)
	if err != nil {
		return fail(ReasonUnreachable, err.Error(), o)
	}
	if !o.Passed {
		return fail(o.Reason, o.Message, o)
	}
	return events.HealthPassed{ClusterID: req.ClusterID, PlanID: req.PlanID, Generation: req.Generation, Step: req.Step,
		Checks: o.Checks, DurationMs: o.Duration.Milliseconds()}
}
