package seedbuild

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/buckets"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/store"
	"ibu.dev/shared/telemetry"
)

// Config is the seed-builder's configuration.
type Config struct {
	// Telemetry receives the seed-builder's logs, and the spans and
	// metrics of its request consumer and publisher (nil fields: see
	// telemetry.Telemetry).
	Telemetry telemetry.Telemetry
	Now       func() time.Time
	// SecretsDir is where Kubernetes Secret references are mounted, as the
	// chart mounts them: <dir>/<namespace>/<name>/.dockerconfigjson.
	SecretsDir string
	// Namespace is the default namespace of a Secret reference.
	Namespace string
	// RegistryOptions reach the registries (transport, insecure), besides
	// the request's credentials.
	RegistryOptions []seedimage.Option
	// InspectTimeout and CaptureTimeout bound the waits for the seed
	// cluster's agent (defaults 2m and 2h).
	InspectTimeout, CaptureTimeout time.Duration
	// HubAgentNamespaces are namespace prefixes, and HubAgentCRDs CRD
	// names, of hub-management agents a seed must not carry.
	HubAgentNamespaces, HubAgentCRDs []string
	// AckWait is how long a request handed to a replica that is busy with
	// another build waits before it goes to another replica (default 30s;
	// a running build's request is kept alive meanwhile).
	AckWait time.Duration
}

// Defaults of Config.
var (
	DefaultHubAgentNamespaces = []string{"open-cluster-management-agent", "open-cluster-management-agent-addon"}
	DefaultHubAgentCRDs       = []string{"klusterlets.operator.open-cluster-management.io", "klusterletaddonconfigs.agent.open-cluster-management.io"}
)

// Failure reasons, as they appear in failed events and build records.
const (
	ReasonInvalidImageReference = "InvalidImageReference"
	ReasonUnknownCluster        = "UnknownCluster"
	ReasonClusterNotIdle        = "ClusterNotIdle"
	ReasonBuildInProgress       = "BuildInProgress"
	ReasonCredentialsNotFound   = "CredentialsNotFound"
	ReasonUnauthorized          = "Unauthorized"
	ReasonRegistryUnreachable   = "RegistryUnreachable"
	ReasonSeedClusterNoAnswer   = "SeedClusterNoAnswer"
	ReasonHubAgentPresent       = "HubAgentPresent"
	ReasonPersistentVolumes     = "PersistentVolumesPresent"
	ReasonSeedClusterUnhealthy  = "SeedClusterUnhealthy"
	ReasonCaptureFailed         = "CaptureFailed"
	ReasonBuildFailed           = "BuildFailed"
	ReasonPushFailed            = "PushFailed"
	ReasonVerifyFailed          = "VerifyFailed"
	ReasonInternalError         = "InternalError"
)

// Service is one seed-builder replica.
type Service struct {
	js     jetstream.JetStream
	cfg    Config
	log    *slog.Logger
	pub    *bus.Publisher
	builds jetstream.KeyValue
}

// New returns a seed-builder on js.
func New(js jetstream.JetStream, cfg Config) *Service {
	cfg.Telemetry = cfg.Telemetry.Resolved()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.InspectTimeout <= 0 {
		cfg.InspectTimeout = 2 * time.Minute
	}
	if cfg.CaptureTimeout <= 0 {
		cfg.CaptureTimeout = 2 * time.Hour
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.HubAgentNamespaces == nil {
		cfg.HubAgentNamespaces = DefaultHubAgentNamespaces
	}
	if cfg.HubAgentCRDs == nil {
		cfg.HubAgentCRDs = DefaultHubAgentCRDs
	}
	return &Service{js: js, cfg: cfg, log: cfg.Telemetry.Logger, pub: bus.NewPublisher(js, bus.PublishTracerProvider(cfg.Telemetry.Tracer))}
}

// Run consumes seed build requests until ctx ends. Builds run one at a
// time per replica; run more replicas for more.
func (s *Service) Run(ctx context.Context) error {
	var err error
	if s.builds, err = s.js.KeyValue(ctx, buckets.SeedBuilds.Name()); err != nil {
		return fmt.Errorf("open %s: %w", bus.BucketSeedBuilds, err)
	}
	sub, err := bus.Consume(ctx, s.js, bus.StreamRequests, events.ServiceSeedBuilder, s.handle,
		bus.ConsumeService(events.ServiceSeedBuilder), bus.ConsumeFilterSubjects("ibu.request.seed.>"),
		bus.ConsumeLogger(s.log), bus.ConsumeTracerProvider(s.cfg.Telemetry.Tracer), bus.ConsumeMeterProvider(s.cfg.Telemetry.Meter),
		bus.ConsumeMaxDeliver(5), bus.ConsumeAckWait(s.cfg.AckWait),
		bus.ConsumeInProgress(s.cfg.AckWait/3), bus.ConsumeBatch(1), // builds are long: hold no queue
		bus.ConsumeRejectedEvents("/services/seed-builder"))
	if err != nil {
		return fmt.Errorf("consume seed build requests: %w", err)
	}
	s.log.Info("seed-builder running")
	<-ctx.Done()
	sub.Stop()
	return nil
}

// failure is a build that ends in a failed event.
type failure struct {
	phase  events.SeedBuildPhase
	reason string
	err    error
}

func (f *failure) Error() string { return f.reason + ": " + f.err.Error() }

func fail(phase events.SeedBuildPhase, reason string, format string, a ...any) *failure {
	return &failure{phase: phase, reason: reason, err: fmt.Errorf(format, a...)}
}

// build is one build in flight.
type build struct {
	s       *Service
	req     events.SeedBuildRequested
	start   time.Time
	mu      sync.Mutex
	last    time.Time
	locked  bool
	objects jetstream.ObjectStore
	phase   events.SeedBuildPhase
}

func (b *build) currentPhase() events.SeedBuildPhase {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.phase == "" {
		return events.SeedValidating
	}
	return b.phase
}

func (s *Service) handle(ctx context.Context, e cloudevents.Event) error {
	req, err := events.DataAs[events.SeedBuildRequested](e)
	if err != nil {
		return bus.Permanent(err)
	}
	b := &build{s: s, req: req, start: s.cfg.Now()}
	log := s.log.With("build", req.BuildID, "cluster", req.ClusterID)
	rec, fresh, err := b.claim(ctx)
	if err != nil {
		return err
	}
	if !fresh && rec.State != state.SeedBuildRunning {
		log.Info("build already ended; request dropped", "state", rec.State)
		return nil
	}
	res, err := b.run(ctx)
	if ctx.Err() != nil {
		b.cleanup()
		return ctx.Err() // shutting down: the request comes back and the build starts again
	}
	// The lock goes before the result is announced, so that whoever sees
	// the result can start the next build on the cluster at once.
	b.cleanup()
	var f *failure
	if err != nil && !errors.As(err, &f) {
		// Not a refusal: NATS or the registry failed under us. Reported
		// as a failure rather than retried, so that a build never hangs
		// in Running once its request's deliveries run out; ask again.
		f = &failure{phase: b.currentPhase(), reason: ReasonInternalError, err: err}
	}
	if f != nil {
		log.Warn("seed build failed", "phase", f.phase, "reason", f.reason, "error", f.err)
		return b.finishFailed(ctx, f)
	}
	log.Info("seed build completed", "digest", res.Digest, "reused", res.ReusedLayers, "bytes", res.SizeBytes)
	return b.finishCompleted(ctx, res)
}

// claim creates the build's record, or finds it from an earlier delivery.
func (b *build) claim(ctx context.Context) (state.SeedBuild, bool, error) {
	now := b.s.cfg.Now().UTC()
	fresh := false
	rec, _, err := bus.UpdateJSON(ctx, b.s.builds, b.req.BuildID, func(r *state.SeedBuild, exists bool) error {
		if exists {
			return nil
		}
		fresh = true
		*r = state.SeedBuild{BuildID: b.req.BuildID, ClusterID: b.req.ClusterID, SeedImage: b.req.SeedImage,
			State: state.SeedBuildRunning, Phase: events.SeedValidating, Started: now, Updated: now}
		return nil
	})
	if err != nil {
		return rec, false, fmt.Errorf("record build %s: %w", b.req.BuildID, err)
	}
	return rec, fresh, nil
}

func (b *build) run(ctx context.Context) (events.SeedBuildCompleted, error) {
	var res events.SeedBuildCompleted
	opts, err := b.validate(ctx)
	if err != nil {
		return res, err
	}
	arts, manifest, err := b.capture(ctx)
	if err != nil {
		return res, err
	}
	return b.buildAndPush(ctx, arts, manifest, opts)
}

// validate checks everything that can be checked before the seed cluster
// is touched, cheapest first, and returns the registry options.
func (b *build) validate(ctx context.Context) ([]seedimage.Option, error) {
	const ph = events.SeedValidating
	b.progress(ctx, ph, "", "checking the request, the seed cluster and the registry", 0, 0, true)
	ref, err := name.ParseReference(b.req.SeedImage)
	if err != nil {
		return nil, fail(ph, ReasonInvalidImageReference, "%s: %v", b.req.SeedImage, err)
	}
	if _, ok := ref.(name.Tag); !ok || strings.Contains(b.req.SeedImage, "@") {
		return nil, fail(ph, ReasonInvalidImageReference, "%s: name a tag, not a digest", b.req.SeedImage)
	}
	clusters, err := store.Open(ctx, b.s.js, buckets.Clusters)
	if err != nil {
		return nil, err
	}
	// Registered is what counts here, whatever the record says.
	if _, _, err := clusters.Get(ctx, b.req.ClusterID); errors.Is(err, store.ErrNotFound) {
		return nil, fail(ph, ReasonUnknownCluster, "cluster %s is not registered", b.req.ClusterID)
	} else if err != nil && !errors.Is(err, store.ErrDecode) {
		return nil, err
	}
	if err := b.checkIdle(ctx); err != nil {
		return nil, err
	}
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	opts, err := b.credentials()
	if err != nil {
		return nil, err
	}
	if err := seedimage.CheckPush(ctx, b.req.SeedImage, opts...); err != nil {
		if errors.Is(err, seedimage.ErrUnauthorized) {
			return nil, fail(ph, ReasonUnauthorized, "unauthorized: %v", err)
		}
		return nil, fail(ph, ReasonRegistryUnreachable, "%v", err)
	}
	inv, err := b.inspect(ctx)
	if err != nil {
		return nil, err
	}
	return opts, b.checkInventory(inv)
}

func (b *build) checkIdle(ctx context.Context) error {
	status, err := store.Open(ctx, b.s.js, buckets.Status)
	if err != nil {
		return err
	}
	st, _, err := status.Get(ctx, b.req.ClusterID)
	if errors.Is(err, store.ErrNotFound) {
		return fail(events.SeedValidating, ReasonClusterNotIdle, "cluster %s has reported no status", b.req.ClusterID)
	} else if errors.Is(err, store.ErrDecode) {
		return fmt.Errorf("status of %s: %w", b.req.ClusterID, err)
	} else if err != nil {
		return err
	}
	if st.Stage != stages.Idle || st.State == stages.InProgress {
		return fail(events.SeedValidating, ReasonClusterNotIdle, "cluster %s is at %s, not Idle", b.req.ClusterID, st.Position)
	}
	return nil
}

// lock makes this build the only one running on its seed cluster.
func (b *build) lock(ctx context.Context) error {
	key := state.SeedBuildLockKey(b.req.ClusterID)
	_, err := b.s.builds.Create(ctx, key, []byte(b.req.BuildID))
	if errors.Is(err, jetstream.ErrKeyExists) {
		e, gerr := b.s.builds.Get(ctx, key)
		if gerr != nil {
			return gerr
		}
		if other := string(e.Value()); other != b.req.BuildID {
			if b.running(ctx, other) {
				return fail(events.SeedValidating, ReasonBuildInProgress, "build %s is running on cluster %s", other, b.req.ClusterID)
			}
			// The holder ended without releasing the lock (a crash
			// between its result and its cleanup): take the lock over.
			if _, err := b.s.builds.Update(ctx, key, []byte(b.req.BuildID), e.Revision()); err != nil {
				return fmt.Errorf("take over the lock of cluster %s from %s: %w", b.req.ClusterID, other, err)
			}
		}
	} else if err != nil {
		return fmt.Errorf("lock cluster %s: %w", b.req.ClusterID, err)
	}
	b.locked = true
	return nil
}

// running: the build's record says Running (or cannot be read, which
// counts as running: refusing is the safe side).
func (b *build) running(ctx context.Context, id string) bool {
	r, _, err := store.Wrap(b.s.builds, buckets.SeedBuilds).Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		return true
	}
	return r.State == state.SeedBuildRunning
}

// credentials resolves the push secret reference to an auth file.
func (b *build) credentials() ([]seedimage.Option, error) {
	ref := b.req.PushSecretRef
	var path string
	switch ref.Kind {
	case events.SecretKindDockerConfigFile:
		path = ref.Path
	case events.SecretKindKubernetes:
		ns := ref.Namespace
		if ns == "" {
			ns = b.s.cfg.Namespace
		}
		if b.s.cfg.SecretsDir == "" || ns == "" {
			return nil, fail(events.SeedValidating, ReasonCredentialsNotFound, "secret %s/%s: this seed-builder has no secrets directory", ns, ref.Name)
		}
		path = filepath.Join(b.s.cfg.SecretsDir, ns, ref.Name, ".dockerconfigjson")
	default:
		return nil, fail(events.SeedValidating, ReasonCredentialsNotFound, "secret kind %q", ref.Kind)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fail(events.SeedValidating, ReasonCredentialsNotFound, "push secret %s: %v", ref.Name, err)
	}
	return append(append([]seedimage.Option(nil), b.s.cfg.RegistryOptions...), seedimage.WithAuthFile(path)), nil
}

func (b *build) checkInventory(inv events.SeedHostInventory) error {
	const ph = events.SeedValidating
	var hub []string
	for _, ns := range inv.Namespaces {
		for _, p := range b.s.cfg.HubAgentNamespaces {
			if strings.HasPrefix(ns, p) {
				hub = append(hub, "namespace "+ns)
				break
			}
		}
	}
	for _, crd := range inv.CRDs {
		for _, c := range b.s.cfg.HubAgentCRDs {
			if crd == c {
				hub = append(hub, "CRD "+crd)
			}
		}
	}
	if len(hub) > 0 {
		return fail(ph, ReasonHubAgentPresent, "the seed cluster runs hub-management agents (detach it first): %s", strings.Join(hub, ", "))
	}
	if len(inv.PersistentVolumes) > 0 {
		return fail(ph, ReasonPersistentVolumes, "the seed cluster holds persistent volumes a seed must not carry: %s", strings.Join(inv.PersistentVolumes, ", "))
	}
	if !inv.Healthy {
		return fail(ph, ReasonSeedClusterUnhealthy, "the seed cluster is not healthy: %s", inv.HealthMessage)
	}
	return nil
}

func (b *build) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if b.objects != nil {
		list, err := b.objects.List(ctx)
		if err == nil {
			for _, o := range list {
				if strings.HasPrefix(o.Name, b.req.BuildID+"/") {
					_ = b.objects.Delete(ctx, o.Name)
				}
			}
		}
	}
	if b.locked {
		key := state.SeedBuildLockKey(b.req.ClusterID)
		if e, err := b.s.builds.Get(ctx, key); err == nil && string(e.Value()) == b.req.BuildID {
			_ = b.s.builds.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
		}
	}
}
