// Package buckets is the catalogue of ibu's JetStream buckets: for each one
// its name, what it holds (the Go type of its values), a description and the
// limits it is created with. Nothing else spells a bucket's name: the
// topology (shared/bus) creates the buckets from this catalogue, and typed
// handles (shared/store) are opened from its descriptors.
package buckets

import (
	"encoding/json"
	"time"

	"ibu.dev/shared/state"
)

// Kind tells a key-value bucket from an object store.
type Kind string

// Bucket kinds.
const (
	KeyValue    Kind = "kv"
	ObjectStore Kind = "object store"
)

// Creator says who creates a bucket.
type Creator string

// Creators.
const (
	// ByTopology: bus.EnsureTopology creates and updates the bucket, with
	// every stream, wherever a hub component starts.
	ByTopology Creator = "topology"
	// ByPullBudget: only the precache service creates it
	// (pullbudget.Ensure); its absence means pulls are not limited.
	ByPullBudget Creator = "pull budget"
)

// DefaultStateHistory is the number of revisions IBU_DESIRED and IBU_STATUS
// keep per key.
const DefaultStateHistory = 10

// Spec describes one bucket.
type Spec struct {
	// Name is the bucket's name (its stream is KV_<Name> or OBJ_<Name>).
	Name string
	Kind Kind
	// Description is set on the bucket and shown in the docs.
	Description string
	// Keys describes the keys, for the docs.
	Keys string
	// Value names the Go type of the values, for the docs.
	Value string
	// History is the number of revisions kept per key (key-value buckets).
	History uint8
	// TTL is how long an entry lives; zero: forever.
	TTL time.Duration
	// SpokeWritten: every spoke writes its own key, so the bucket's
	// stream refuses rollups and purges (see bus.EnsureTopology).
	SpokeWritten bool
	// CreatedBy says who creates the bucket.
	CreatedBy Creator
}

// Codec turns values of a bucket into bytes and back.
type Codec[T any] struct {
	Encode func(T) ([]byte, error)
	Decode func([]byte) (T, error)
}

// JSON is the codec of plain JSON values.
func JSON[T any]() Codec[T] {
	return Codec[T]{
		Encode: func(v T) ([]byte, error) { return json.Marshal(v) },
		Decode: func(b []byte) (T, error) {
			var v T
			err := json.Unmarshal(b, &v)
			return v, err
		},
	}
}

// Bucket is the descriptor of a key-value bucket whose values are T.
type Bucket[T any] struct {
	spec  Spec
	codec Codec[T]
}

// Name is the bucket's name.
func (b Bucket[T]) Name() string { return b.spec.Name }

// Spec is the bucket's description.
func (b Bucket[T]) Spec() Spec { return b.spec }

// Codec is how the bucket's values are encoded.
func (b Bucket[T]) Codec() Codec[T] { return b.codec }

// Names of the buckets, for code that needs a constant (an auth
// permission, a stream name); prefer the descriptors below.
const (
	NameClusters      = "IBU_CLUSTERS"
	NamePlans         = "IBU_PLANS"
	NameDesired       = "IBU_DESIRED"
	NameStatus        = "IBU_STATUS"
	NameSeedBuilds    = "IBU_SEED_BUILDS"
	NamePullBudget    = "IBU_PULL_BUDGET"
	NameSeedArtifacts = "IBU_SEED_ARTIFACTS"
)

// SeedArtifactsMaxAge is how long IBU_SEED_ARTIFACTS keeps what a crashed
// build left behind.
const SeedArtifactsMaxAge = 24 * time.Hour

// The buckets.
var (
	// Clusters is the fleet inventory: one key per cluster, written by its
	// node agent (registration and heartbeats).
	Clusters = Bucket[state.Cluster]{Spec{
		Name: NameClusters, Kind: KeyValue, CreatedBy: ByTopology, SpokeWritten: true,
		Description: "ibu cluster inventory, written by node-agents",
		Keys:        "<cluster>", Value: "state.Cluster", History: 1,
	}, JSON[state.Cluster]()}
	// Plans holds the upgrade plans, written by the scheduler.
	Plans = Bucket[state.Plan]{Spec{
		Name: NamePlans, Kind: KeyValue, CreatedBy: ByTopology,
		Description: "ibu upgrade plans and their fleet status",
		Keys:        "<plan>", Value: "state.Plan", History: 5,
	}, JSON[state.Plan]()}
	// Desired holds what is desired of each cluster, written by the
	// scheduler, watched by the cluster's node agent. Its values are
	// validated against the event contract both ways.
	Desired = Bucket[state.Desired]{Spec{
		Name: NameDesired, Kind: KeyValue, CreatedBy: ByTopology,
		Description: "ibu desired state per cluster",
		Keys:        "<cluster>", Value: "state.Desired", History: DefaultStateHistory,
	}, Codec[state.Desired]{Encode: state.EncodeDesired, Decode: state.DecodeDesired}}
	// Status holds what each cluster reports of itself, written only by
	// its node agent with compare-and-set.
	Status = Bucket[state.Status]{Spec{
		Name: NameStatus, Kind: KeyValue, CreatedBy: ByTopology, SpokeWritten: true,
		Description: "ibu observed state per cluster",
		Keys:        "<cluster>", Value: "state.Status", History: DefaultStateHistory,
	}, JSON[state.Status]()}
	// SeedBuilds holds the seed builds, keyed by build id, and one lock
	// per seed cluster (state.SeedBuildLockKey) whose value is a build id.
	SeedBuilds = Bucket[state.SeedBuild]{Spec{
		Name: NameSeedBuilds, Kind: KeyValue, CreatedBy: ByTopology,
		Description: "ibu seed builds and their results",
		Keys:        "<build>, lock.<cluster>", Value: "state.SeedBuild", History: 5,
	}, JSON[state.SeedBuild]()}
	// PullBudget is the fleet-wide image pull budget. Its values are of two
	// kinds (a limit's number, a slot's lease), so they are kept raw here
	// and decoded by package pullbudget.
	PullBudget = Bucket[json.RawMessage]{Spec{
		Name: NamePullBudget, Kind: KeyValue, CreatedBy: ByPullBudget,
		Description: "ibu fleet-wide image pull budget: slots per registry, held by leases",
		Keys:        "limit.<registry>, slot.<registry>.<n>", Value: "number (limit), pullbudget.LeaseInfo (slot)", History: 1,
	}, Codec[json.RawMessage]{
		Encode: func(v json.RawMessage) ([]byte, error) { return v, nil },
		Decode: func(b []byte) (json.RawMessage, error) { return json.RawMessage(b), nil },
	}}
)

// SeedArtifacts is the object store of captured layers in flight between a
// seed cluster's agent and the seed-builder ("<build>/<role>"); the
// seed-builder deletes a build's objects when the build ends, and the TTL
// removes what a crash left behind.
var SeedArtifacts = Spec{
	Name: NameSeedArtifacts, Kind: ObjectStore, CreatedBy: ByTopology,
	Description: "ibu seed capture artifacts in flight from a seed cluster to the seed-builder",
	Keys:        "<build>/<role>", Value: "a layer archive", TTL: SeedArtifactsMaxAge,
}

// All lists every bucket, key-value buckets first, in a fixed order.
func All() []Spec {
	return []Spec{
		Clusters.Spec(), Plans.Spec(), Desired.Spec(), Status.Spec(), SeedBuilds.Spec(),
		PullBudget.Spec(), SeedArtifacts,
	}
}
