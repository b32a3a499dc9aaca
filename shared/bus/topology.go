package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/buckets"
	"ibu.dev/shared/events"
)

// Stream names (the topology table in docs/architecture.md).
const (
	// StreamRequests is the work queue of users' requests on ibu.request.>.
	StreamRequests = "IBU_REQUESTS"
	// StreamTasks is the work queue of per-service tasks on ibu.task.>.
	StreamTasks = "IBU_TASKS"
	// StreamEvents is the audit log of facts on ibu.event.>.
	StreamEvents = "IBU_EVENTS"
	// StreamDLQ keeps the messages consumers rejected, on ibu.dlq.>.
	StreamDLQ = "IBU_DLQ"
)

// KV bucket names, from the catalogue in shared/buckets (which describes
// each bucket and gives typed descriptors; prefer those). The topology
// table in docs/architecture.md lists them.
const (
	BucketClusters = buckets.NameClusters
	BucketPlans    = buckets.NamePlans
	BucketDesired  = buckets.NameDesired
	BucketStatus   = buckets.NameStatus
)

// Topology defaults.
const (
	DefaultEventsMaxAge    = 7 * 24 * time.Hour
	DefaultDLQMaxAge       = 30 * 24 * time.Hour
	DefaultDuplicateWindow = 2 * time.Minute
	// DefaultStateHistory is the number of revisions IBU_DESIRED and
	// IBU_STATUS keep per key.
	DefaultStateHistory = buckets.DefaultStateHistory
)

// TopologyOption adjusts EnsureTopology.
type TopologyOption func(*topologyOptions)

type topologyOptions struct {
	replicas        int
	eventsMaxAge    time.Duration
	dlqMaxAge       time.Duration
	duplicateWindow time.Duration
	maxMsgSize      int32
	kvMaxConsumers  int
}

// DefaultKVMaxConsumers is the consumer limit set on the buckets' streams.
// Every node agent watches its own IBU_DESIRED key, which holds one
// consumer, and nats-server allows only 1,000 per stream unless the stream
// says otherwise: a fleet past 1,000 clusters would have its watches (the
// scheduler's among them) refused with "maximum consumers limit reached".
const DefaultKVMaxConsumers = 100_000

// KVMaxConsumers sets the consumer limit of the buckets' streams (at least
// a few more than the number of clusters). Default DefaultKVMaxConsumers.
func KVMaxConsumers(n int) TopologyOption {
	return func(o *topologyOptions) { o.kvMaxConsumers = n }
}

// Replicas sets the replica count of every stream and bucket: 1 on a single
// (embedded) server, 3 on a cluster. Default 1.
func Replicas(n int) TopologyOption { return func(o *topologyOptions) { o.replicas = n } }

// EventsMaxAge sets how long IBU_EVENTS keeps events. Default 7 days.
func EventsMaxAge(d time.Duration) TopologyOption {
	return func(o *topologyOptions) { o.eventsMaxAge = d }
}

// DLQMaxAge sets how long IBU_DLQ keeps rejected messages. Default 30 days.
func DLQMaxAge(d time.Duration) TopologyOption {
	return func(o *topologyOptions) { o.dlqMaxAge = d }
}

// DuplicateWindow sets the window in which a re-published event id
// (Nats-Msg-Id) is dropped. Default 2 minutes.
func DuplicateWindow(d time.Duration) TopologyOption {
	return func(o *topologyOptions) { o.duplicateWindow = d }
}

// MaxMsgSize bounds the messages the event streams accept (headers plus
// payload). Default 0 leaves it to the server's max_payload; IBU_DLQ is
// never limited so that a rejected oversize message can still be kept.
func MaxMsgSize(n int32) TopologyOption { return func(o *topologyOptions) { o.maxMsgSize = n } }

func topologyDefaults(opts []TopologyOption) topologyOptions {
	o := topologyOptions{
		replicas:        1,
		eventsMaxAge:    DefaultEventsMaxAge,
		dlqMaxAge:       DefaultDLQMaxAge,
		duplicateWindow: DefaultDuplicateWindow,
		kvMaxConsumers:  DefaultKVMaxConsumers,
	}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// StreamConfigs returns the configuration EnsureTopology applies to the four
// streams.
func StreamConfigs(opts ...TopologyOption) []jetstream.StreamConfig {
	o := topologyDefaults(opts)
	base := func(name, desc, subject string, ret jetstream.RetentionPolicy, maxAge time.Duration, maxSize int32) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subject},
			Retention:   ret,
			MaxAge:      maxAge,
			Storage:     jetstream.FileStorage,
			Replicas:    o.replicas,
			Duplicates:  o.duplicateWindow,
			MaxMsgSize:  maxSize,
			Discard:     jetstream.DiscardOld,
		}
	}
	return []jetstream.StreamConfig{
		base(StreamRequests, "ibu user requests (work queue)", events.SubjectRequests, jetstream.WorkQueuePolicy, 0, o.maxMsgSize),
		base(StreamTasks, "ibu per-service tasks (work queue)", events.SubjectTasks, jetstream.WorkQueuePolicy, 0, o.maxMsgSize),
		base(StreamEvents, "ibu event audit log", events.SubjectEvents, jetstream.LimitsPolicy, o.eventsMaxAge, o.maxMsgSize),
		base(StreamDLQ, "ibu dead letters", events.SubjectDLQ, jetstream.LimitsPolicy, o.dlqMaxAge, 0),
	}
}

// KeyValueConfigs returns the configuration EnsureTopology applies to the
// key-value buckets of the catalogue (shared/buckets) that the topology
// creates, in the catalogue's order.
func KeyValueConfigs(opts ...TopologyOption) []jetstream.KeyValueConfig {
	o := topologyDefaults(opts)
	var out []jetstream.KeyValueConfig
	for _, b := range buckets.All() {
		if b.Kind != buckets.KeyValue || b.CreatedBy != buckets.ByTopology {
			continue
		}
		out = append(out, jetstream.KeyValueConfig{
			Bucket:      b.Name,
			Description: b.Description,
			History:     b.History,
			TTL:         b.TTL,
			Storage:     jetstream.FileStorage,
			Replicas:    o.replicas,
		})
	}
	return out
}

// EnsureTopology creates every stream and KV bucket, or updates them to the
// current configuration. It is idempotent and safe to call from several
// services starting at the same time.
func EnsureTopology(ctx context.Context, js jetstream.JetStream, opts ...TopologyOption) error {
	for _, cfg := range StreamConfigs(opts...) {
		err := retryEnsure(ctx, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateStream(ctx, cfg)
			return err
		})
		if err != nil {
			return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range KeyValueConfigs(opts...) {
		err := retryEnsure(ctx, func(ctx context.Context) error {
			if hardened, err := keepsHardening(ctx, js, cfg.Bucket); err != nil || hardened {
				return err // its stream is updated by hardenBucket below
			}
			_, err := js.CreateOrUpdateKeyValue(ctx, cfg)
			if err != nil {
				// Another process may have hardened it in between; then the
				// KV update is refused and hardenBucket does it instead.
				if hardened, herr := keepsHardening(ctx, js, cfg.Bucket); herr == nil && hardened {
					return nil
				}
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("ensure bucket %s: %w", cfg.Bucket, err)
		}
		if err := hardenBucket(ctx, js, cfg, topologyDefaults(opts).kvMaxConsumers); err != nil {
			return err
		}
	}
	return ensureObjectStores(ctx, js, opts...)
}

// ensureAttemptTimeout bounds one create-or-update request, so that a
// request lost while a cluster elects its leaders is simply sent again.
const ensureAttemptTimeout = 10 * time.Second

// retryEnsure runs an idempotent create-or-update until it succeeds, ctx is
// done, or it fails for a reason a retry cannot fix. It retries when the
// call lost a create race to another process (create-or-update first finds
// nothing, then the create finds what another process made in between; the
// next attempt updates), on timeouts, "JetStream not available yet" and "no
// suitable peers" while a cluster forms.
func retryEnsure(ctx context.Context, f func(context.Context) error) error {
	pause := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, ensureAttemptTimeout)
		err := f(actx)
		cancel()
		if err == nil || ctx.Err() != nil || attempt >= 8 ||
			!(isCreateRace(err) || retryablePublishError(err) || isNoPeers(err)) {
			return err
		}
		if werr := sleepCtx(ctx, jitter(pause)); werr != nil {
			return errors.Join(err, werr)
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// isNoPeers: a cluster that is still forming (or has just lost a node)
// cannot place the replicas yet.
func isNoPeers(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeClusterNoPeers
}

// jsErrCodeClusterNoPeers is nats-server's "no suitable peers for
// placement" (JSClusterNoPeersErrF), which nats.go does not export.
const jsErrCodeClusterNoPeers jetstream.ErrorCode = 10005

func isCreateRace(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) ||
		errors.Is(err, jetstream.ErrBucketExists) ||
		errors.Is(err, jetstream.ErrConsumerExists) ||
		errors.Is(err, jetstream.ErrConsumerNameAlreadyInUse)
}

// ConsumerConfig describes a service's durable pull consumer. Zero values
// keep the server's defaults (AckWait 30s, unlimited MaxDeliver).
type ConsumerConfig struct {
	// Durable is the consumer's name, shared by all replicas of a service.
	Durable     string
	Description string
	// FilterSubjects restricts the consumer to these subjects; empty means
	// every subject of the stream.
	FilterSubjects []string
	AckWait        time.Duration
	// MaxDeliver bounds deliveries per message; 0 means unlimited.
	MaxDeliver int
	// BackOff sets the server's redelivery delays after an ack timeout.
	BackOff       []time.Duration
	MaxAckPending int
}

// EnsureConsumer creates or updates a durable pull consumer with explicit
// acks on stream.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg ConsumerConfig) (jetstream.Consumer, error) {
	if cfg.Durable == "" {
		return nil, fmt.Errorf("ensure consumer on %s: durable name is required", stream)
	}
	maxDeliver := cfg.MaxDeliver
	if maxDeliver == 0 {
		maxDeliver = -1
	}
	jc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   cfg.Description,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    maxDeliver,
		BackOff:       cfg.BackOff,
		MaxAckPending: cfg.MaxAckPending,
	}
	switch len(cfg.FilterSubjects) {
	case 0:
	case 1:
		jc.FilterSubject = cfg.FilterSubjects[0]
	default:
		jc.FilterSubjects = cfg.FilterSubjects
	}
	var cons jetstream.Consumer
	err := retryEnsure(ctx, func(ctx context.Context) error {
		var err error
		cons, err = js.CreateOrUpdateConsumer(ctx, stream, jc)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s on %s: %w", cfg.Durable, stream, err)
	}
	return cons, nil
}
