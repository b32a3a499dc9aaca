package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/client-go/dynamic"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/clusterkube"
	"ibu.dev/shared/events"
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
	Logger      *slog.Logger
	// Tracer receives the service's spans: the consumer span of each
	// task, joined to the cluster's upgrade trace, and the publish of its
	// answer (default: the global otel provider). Meter receives the
	// consumer's metrics (default: the global one).
	Tracer trace.TracerProvider
	Meter  metric.MeterProvider
}

// Service consumes health tasks and answers each with health.passed or
// health.failed on the cluster's event subject.
type Service struct {
	js  jetstream.JetStream
	pub *bus.Publisher
	cfg Config
	log *slog.Logger
}

// New returns a service on js; call Run.
func New(js jetstream.JetStream, cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
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
	return &Service{js: js, pub: bus.NewPublisher(js, bus.PublishLogger(cfg.Logger), bus.PublishTracerProvider(cfg.Tracer)), cfg: cfg, log: cfg.Logger}
}

// Run consumes tasks until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.Clusters == nil {
		return errors.New("health: no cluster registry configured")
	}
	subject, durable, err := bus.TaskPlacement(events.ServiceHealth, s.cfg.Cluster)
	if err != nil {
		return err
	}
	sub, err := bus.Consume(ctx, s.js, bus.StreamTasks, durable, s.Handle,
		bus.ConsumeService(events.ServiceHealth), bus.ConsumeFilterSubjects(subject),
		bus.ConsumeConcurrency(s.cfg.Concurrency), bus.ConsumeBatch(s.cfg.Concurrency),
		bus.ConsumeRejectedEvents(Source), bus.ConsumeLogger(s.log),
		bus.ConsumeTracerProvider(s.cfg.Tracer), bus.ConsumeMeterProvider(s.cfg.Meter))
	if err != nil {
		return fmt.Errorf("consume health tasks: %w", err)
	}
	defer sub.Stop()
	s.log.Info("health ready")
	<-ctx.Done()
	return nil
}

// Handle runs one gate and publishes its outcome. Every outcome, an
// unreachable cluster included, is answered; only a failure to publish is
// retried.
func (s *Service) Handle(ctx context.Context, e cloudevents.Event) error {
	req, err := events.DataAs[events.HealthCheckRequested](e)
	if err != nil {
		return bus.Permanent(err)
	}
	answer := s.check(ctx, req)
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: redeliver to the next replica
	}
	return s.pub.Answer(ctx, Source, e, answer)
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
