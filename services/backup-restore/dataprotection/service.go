package dataprotection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/clusterkube"
	"ibu.dev/shared/events"
	"ibu.dev/shared/telemetry"
)

// Source is the CloudEvents source of the service's events.
const Source = "/services/backup-restore"

// Config configures the service.
type Config struct {
	// Clusters finds each cluster's API (a kubeconfig file per cluster in
	// dev, a Secret on a hub, in-cluster on a spoke).
	Clusters clusterkube.Registry
	// Cluster, when set, is the only cluster whose tasks this instance
	// consumes (the spoke placement, beside the agent).
	Cluster string
	// WaitTimeout bounds each wait for a Backup or Restore (default 30m).
	WaitTimeout time.Duration
	// Concurrency: tasks handled at once, each for one cluster (default 8).
	Concurrency int
	Now         func() time.Time
	// Telemetry: the logger, and the tracer of the consumer span of each
	// task (joined to the cluster's upgrade trace) and of the publish of its
	// answer, and the meter of the consumer's metrics.
	Telemetry telemetry.Telemetry
}

// Service consumes backup and restore tasks and answers each with a
// completed or failed event on the cluster's event subject.
type Service struct {
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger
}

// New returns a service on js; call Run.
func New(js jetstream.JetStream, cfg Config) *Service {
	cfg.Telemetry = cfg.Telemetry.Resolved()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	return &Service{js: js, cfg: cfg, log: cfg.Telemetry.Logger}
}

// Run consumes tasks until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.Clusters == nil {
		return errors.New("backup-restore: no cluster registry configured")
	}
	return bus.RunTasks(ctx, s.js, bus.TaskWorker{Service: events.ServiceBackupRestore, Cluster: s.cfg.Cluster, Source: Source,
		Handlers: []bus.TaskHandler{ // every outcome, an unreachable cluster included, is answered
			bus.HandleTask(func(ctx context.Context, req events.BackupRequested) (events.Data, error) {
				return s.backup(ctx, req), nil
			}),
			bus.HandleTask(func(ctx context.Context, req events.RestoreRequested) (events.Data, error) {
				return s.restore(ctx, req), nil
			})},
		Telemetry: s.cfg.Telemetry,
		Options: []bus.ConsumeOption{bus.ConsumeConcurrency(s.cfg.Concurrency), bus.ConsumeBatch(s.cfg.Concurrency),
			bus.ConsumeRejectedEvents(Source)}})
}

// clients builds the clients for a cluster's API.
type clients struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func (s *Service) clients(ctx context.Context, cluster string) (*clients, error) {
	cfg, err := s.cfg.Clusters.RESTConfig(ctx, cluster)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", cluster, err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client for %s: %w", cluster, err)
	}
	return &clients{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))}, nil
}

// reasonOf is the CamelCase reason of an error for a failed event.
func reasonOf(err error) (string, string) {
	var p *Problem
	if errors.As(err, &p) {
		return p.Reason, p.Message
	}
	if errors.Is(err, clusterkube.ErrUnknownCluster) {
		return "UnknownCluster", err.Error()
	}
	return ReasonClusterUnreachable, err.Error()
}

func (s *Service) backup(ctx context.Context, req events.BackupRequested) events.Data {
	start := s.cfg.Now()
	fail := func(err error, backup string) events.Data {
		reason, msg := reasonOf(err)
		s.log.Warn("backup failed", "cluster", req.ClusterID, "generation", req.Generation, "validateOnly", req.ValidateOnly, "reason", reason, "message", msg)
		return events.BackupFailed{ClusterID: req.ClusterID, PlanID: req.PlanID, Generation: req.Generation,
			Backup: backup, Reason: reason, Message: msg}
	}
	c, err := s.clients(ctx, req.ClusterID)
	if err != nil {
		return fail(err, "")
	}
	content, err := Validate(ctx, c.dyn, req.OADPContent, req.ExtraManifests)
	if err != nil {
		return fail(err, "")
	}
	var done []events.VeleroObject
	if !req.ValidateOnly && content != nil {
		r := &Runner{Client: c.dyn, ClusterID: req.ClusterID, Generation: req.Generation, WaitTimeout: s.cfg.WaitTimeout, Logger: s.log}
		done, err = r.Backup(ctx, content)
		if err != nil {
			return fail(err, failing(content.Backups, done))
		}
	}
	return events.BackupCompleted{ClusterID: req.ClusterID, PlanID: req.PlanID, Generation: req.Generation,
		Backups: done, DurationMs: s.cfg.Now().Sub(start).Milliseconds()}
}

func (s *Service) restore(ctx context.Context, req events.RestoreRequested) events.Data {
	start := s.cfg.Now()
	fail := func(err error, restore string) events.Data {
		reason, msg := reasonOf(err)
		s.log.Warn("restore failed", "cluster", req.ClusterID, "generation", req.Generation, "reason", reason, "message", msg)
		return events.RestoreFailed{ClusterID: req.ClusterID, PlanID: req.PlanID, Generation: req.Generation,
			Restore: restore, Reason: reason, Message: msg}
	}
	c, err := s.clients(ctx, req.ClusterID)
	if err != nil {
		return fail(err, "")
	}
	applied, err := ApplyExtraManifests(ctx, c.dyn, c.mapper, req.ExtraManifests)
	if err != nil {
		return fail(err, "")
	}
	var done []events.VeleroObject
	if len(req.OADPContent) > 0 {
		content, err := LoadContent(ctx, c.dyn, req.OADPContent)
		if err == nil {
			err = checkPairs(content)
		}
		if err != nil {
			return fail(err, "")
		}
		r := &Runner{Client: c.dyn, ClusterID: req.ClusterID, Generation: req.Generation, WaitTimeout: s.cfg.WaitTimeout, Logger: s.log}
		done, err = r.Restore(ctx, content)
		if err != nil {
			return fail(err, failing(content.Restores, done))
		}
	}
	return events.RestoreCompleted{ClusterID: req.ClusterID, PlanID: req.PlanID, Generation: req.Generation,
		Restores: done, ExtraManifestsApplied: applied, DurationMs: s.cfg.Now().Sub(start).Milliseconds()}
}

// failing names the object the run stopped at: the first in wave order
// that is not among done.
func failing[T metav1.Object](all []T, done []events.VeleroObject) string {
	ok := map[string]bool{}
	for _, d := range done {
		ok[d.Name] = true
	}
	waves, _ := Waves(all)
	for _, w := range waves {
		for _, o := range w {
			if !ok[o.GetName()] {
				return o.GetName()
			}
		}
	}
	return ""
}
