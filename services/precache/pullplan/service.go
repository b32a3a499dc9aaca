package pullplan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/pullbudget"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/telemetry"
)

// Source is the CloudEvents source of everything the service publishes.
const Source = "/services/precache"

// Config is how the service plans.
type Config struct {
	Name string // replica name (logs)
	// SeedOptions reach the seed images' registry.
	SeedOptions []seedimage.Option
	// Remote reaches the registries of the seed's image list (auth,
	// transport) to read their manifests.
	Remote []remote.Option
	// NodeConcurrency is the parallel pulls per node when the request does
	// not ask for a number (default 10).
	NodeConcurrency int
	// FleetLimits caps concurrent pulls from a registry (host[:port])
	// across the whole fleet; DefaultFleetLimit applies to registries not
	// listed (0: unlimited).
	FleetLimits       map[string]int
	DefaultFleetLimit int
	// MaxBytesPerSec is passed to every node's plan (0: unlimited).
	MaxBytesPerSec int64
	// Replicas of the budget bucket when creating it (default 1).
	Replicas int
	// ManifestParallelism bounds concurrent manifest reads per request
	// (default 8).
	ManifestParallelism int
	// Telemetry: the logger, the tracer of the consumer span of each
	// request (joined to the cluster's upgrade trace) and of the publish of
	// its answer, and the meter of the consumer's metrics.
	Telemetry telemetry.Telemetry
}

// Service answers precache requests with pull plans. Replicas share the
// durable consumer and the budget bucket; they hold no other state.
type Service struct {
	js   jetstream.JetStream
	cfg  Config
	log  *slog.Logger
	mfs  *manifests
	pool *pullbudget.Pool
}

// New returns a service; Run starts it.
func New(js jetstream.JetStream, cfg Config) *Service {
	cfg.Telemetry = cfg.Telemetry.Resolved()
	if cfg.NodeConcurrency <= 0 {
		cfg.NodeConcurrency = 10
	}
	if cfg.ManifestParallelism <= 0 {
		cfg.ManifestParallelism = 8
	}
	return &Service{js: js, cfg: cfg, log: cfg.Telemetry.Logger.With("service", events.ServicePrecache, "replica", cfg.Name),
		mfs: newManifests(cfg.Remote, 10_000)}
}

// Start creates the budget bucket and starts consuming; Stop the returned
// subscription to end.
func (s *Service) Start(ctx context.Context) (*bus.Subscription, error) {
	if err := pullbudget.Ensure(ctx, s.js, max(s.cfg.Replicas, 1)); err != nil {
		return nil, err
	}
	pool, err := pullbudget.Open(ctx, s.js, "precache-"+s.cfg.Name, pullbudget.WithLogger(s.log))
	if err != nil {
		return nil, err
	}
	s.pool = pool
	for reg, n := range s.cfg.FleetLimits {
		if err := pool.SetLimit(ctx, reg, n); err != nil {
			return nil, err
		}
	}
	return bus.ServeTasks(ctx, s.js, bus.TaskWorker{Service: events.ServicePrecache, Source: Source,
		Handlers:  []bus.TaskHandler{bus.HandleTask(s.handle)},
		Telemetry: telemetry.Telemetry{Logger: s.log, Tracer: s.cfg.Telemetry.Tracer, Meter: s.cfg.Telemetry.Meter},
		Options:   []bus.ConsumeOption{bus.ConsumeConcurrency(4), bus.ConsumeRejectedEvents(Source)}})
}

// Run serves until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	sub, err := s.Start(ctx)
	if err != nil {
		return err
	}
	s.log.Info("precache service running")
	<-ctx.Done()
	sub.Stop()
	s.pool.Close()
	return nil
}

// handle plans one request. A seed that cannot be read (absent, refused
// credentials, not a seed) is answered with a failure the agent waits
// for; a transient registry error is retried by redelivery.
func (s *Service) handle(ctx context.Context, req events.PrecacheRequested) (events.Data, error) {
	log := s.log.With("cluster", req.ClusterID, "generation", req.Generation)
	start := time.Now()
	seed, err := seedimage.Inspect(ctx, req.SeedImage, s.cfg.SeedOptions...)
	if err != nil {
		if transient(err) {
			return nil, fmt.Errorf("inspect seed: %w", err)
		}
		log.Warn("precache refused: seed unreadable", "seed", req.SeedImage, "error", err)
		return events.PrecacheFailed{ClusterID: req.ClusterID, PlanID: req.PlanID,
			Generation: req.Generation, Reason: "SeedUnreadable", Message: events.ClipMarked(err.Error(), 1000)}, nil
	}
	plan, err := s.Plan(ctx, req, seed.Images, seed.Info.Architecture)
	if err != nil {
		return nil, err // the budget bucket is unreachable: retry by redelivery
	}
	var bytes int64
	for _, img := range plan.Images {
		bytes += img.SizeBytes
	}
	log.Info("pull plan made", "seedImages", len(seed.Images), "toPull", len(plan.Images),
		"bytes", bytes, "took", time.Since(start).Round(time.Millisecond))
	return plan, nil
}

// Plan computes a request's pull plan for a seed's image list: the images
// the node lacks, mirrored, ordered shared layers first, with sizes; and it
// makes sure the fleet limit of every registry in it is in the budget.
func (s *Service) Plan(ctx context.Context, req events.PrecacheRequested, seedImages []string, arch string) (events.PrecachePlanned, error) {
	plan := events.PrecachePlanned{ClusterID: req.ClusterID, PlanID: req.PlanID, Generation: req.Generation,
		Concurrency: req.Concurrency, MaxBytesPerSec: s.cfg.MaxBytesPerSec, BestEffort: req.BestEffort,
		PullSecretRef: req.PullSecretRef}
	if plan.Concurrency <= 0 {
		plan.Concurrency = s.cfg.NodeConcurrency
	}
	missing, _ := Missing(seedImages, req.PresentImages, req.RegistryMappings)
	infos, errs := s.mfs.infos(ctx, missing, arch, s.cfg.ManifestParallelism)
	for ref, err := range errs { // one line for all: they usually share a cause
		s.log.Warn("manifests unreadable from the hub; planned without layer sizes", "cluster", req.ClusterID,
			"images", len(errs), "example", ref, "error", err)
		break
	}
	registries := map[string]bool{}
	for _, info := range Order(infos) {
		plan.Images = append(plan.Images, events.PullImage{Image: info.Ref, SizeBytes: info.Size, Layers: info.Layers})
		if r, err := name.ParseReference(info.Ref); err == nil {
			registries[r.Context().RegistryStr()] = true
		}
	}
	for reg := range registries {
		if err := s.pool.SetLimit(ctx, reg, s.limitFor(reg)); err != nil {
			return plan, fmt.Errorf("pull budget of %s: %w", reg, err)
		}
	}
	return plan, nil
}

func (s *Service) limitFor(registry string) int {
	if n, ok := s.cfg.FleetLimits[registry]; ok {
		return n
	}
	return s.cfg.DefaultFleetLimit
}

// transient: worth a redelivery (not a refusal or an absent or bad seed).
func transient(err error) bool {
	for _, perm := range []error{seedimage.ErrNotFound, seedimage.ErrUnauthorized, seedimage.ErrBadImageRef,
		seedimage.ErrNotImage, seedimage.ErrFormatVersion, seedimage.ErrMissingLabel, seedimage.ErrBadInfo, seedimage.ErrBadMetadata} {
		if errors.Is(err, perm) {
			return false
		}
	}
	return true
}
