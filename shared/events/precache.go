package events

// Precache: the node agent asks the precache service for a pull plan, the
// service answers with the plan on the cluster's event subject, and the
// agent reports progress.
const (
	TypePrecacheRequested = "dev.ibu.precache.requested.v1"
	TypePrecachePlanned   = "dev.ibu.precache.planned.v1"
	TypePrecacheProgress  = "dev.ibu.precache.progress.v1"
	TypePrecacheCompleted = "dev.ibu.precache.completed.v1"
	TypePrecacheFailed    = "dev.ibu.precache.failed.v1"
)

func init() {
	register(Spec{Type: TypePrecacheRequested, Name: "precache", Scope: ScopeTask, Service: ServicePrecache,
		Description: "the node agent (in Prep) asks the precache service to plan its image pulls",
		new:         func() any { return new(PrecacheRequested) }})
	register(Spec{Type: TypePrecachePlanned, Name: "precache.planned", Scope: ScopeCluster,
		Description: "the precache service's answer: the images the node agent must pull, in order",
		new:         func() any { return new(PrecachePlanned) }})
	register(Spec{Type: TypePrecacheProgress, Name: "precache.progress", Scope: ScopeCluster,
		Description: "the node agent reports images and bytes pulled, rate and ETA",
		new:         func() any { return new(PrecacheProgress) }})
	register(Spec{Type: TypePrecacheCompleted, Name: "precache.completed", Scope: ScopeCluster,
		Description: "every image of the precache plan is on the node (or failed, in best-effort mode)",
		new:         func() any { return new(PrecacheCompleted) }})
	register(Spec{Type: TypePrecacheFailed, Name: "precache.failed", Scope: ScopeCluster,
		Description: "precache failed; lists the images that could not be pulled",
		new:         func() any { return new(PrecacheFailed) }})
}

// PrecacheRequested asks the precache service to plan the pulls of a
// cluster's Prep. The agent sends the images it already has, so the service
// can plan only what is missing without a further round trip.
type PrecacheRequested struct {
	ClusterID        string            `json:"clusterId"`
	PlanID           string            `json:"planId,omitempty"`
	Generation       int64             `json:"generation"`
	SeedImage        string            `json:"seedImage"`
	PullSecretRef    *SecretRef        `json:"pullSecretRef,omitempty"` // to read the seed's image list
	RegistryMappings []RegistryMapping `json:"registryMappings,omitempty"`
	BestEffort       bool              `json:"bestEffort,omitempty"`    // images that fail do not fail Prep
	Concurrency      int               `json:"concurrency,omitempty"`   // parallel pulls on the node; 0: service default
	PresentImages    []string          `json:"presentImages,omitempty"` // name@sha256:... already on the node
}

// RegistryMapping rewrites image references that start with From (a registry
// or repository prefix) to start with To, for disconnected sites with a
// mirror.
type RegistryMapping struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// PrecachePlanned is the precache service's answer to a PrecacheRequested:
// the images the agent must pull, in order, already mirrored and pinned by
// digest, with the pull budget the service allotted to this cluster.
type PrecachePlanned struct {
	ClusterID      string      `json:"clusterId"`
	PlanID         string      `json:"planId,omitempty"`
	Generation     int64       `json:"generation"`
	Images         []PullImage `json:"images,omitempty"` // empty: nothing is missing
	Concurrency    int         `json:"concurrency,omitempty"`
	MaxBytesPerSec int64       `json:"maxBytesPerSec,omitempty"` // 0: unlimited
	BestEffort     bool        `json:"bestEffort,omitempty"`
	PullSecretRef  *SecretRef  `json:"pullSecretRef,omitempty"` // absent: the node's own pull secret
}

// PullImage is one image to pull. Layers, when known, let the agent report
// bytes and skip layers it shares with images it has.
type PullImage struct {
	Image     string  `json:"image"` // name@sha256:<64 hex>
	SizeBytes int64   `json:"sizeBytes,omitempty"`
	Layers    []Layer `json:"layers,omitempty"`
}

// Layer is an image layer.
type Layer struct {
	Digest    string `json:"digest"`
	SizeBytes int64  `json:"sizeBytes,omitempty"`
}

// PrecacheProgress reports a cluster's precache. Total counts the images of
// the plan; AlreadyPresent those the node had before.
type PrecacheProgress struct {
	ClusterID       string `json:"clusterId"`
	PlanID          string `json:"planId,omitempty"`
	Generation      int64  `json:"generation"`
	Total           int    `json:"total"`
	Pulled          int    `json:"pulled"`
	Failed          int    `json:"failed"`
	AlreadyPresent  int    `json:"alreadyPresent"`
	BytesDone       int64  `json:"bytesDone"`
	BytesTotal      int64  `json:"bytesTotal"`
	RateBytesPerSec int64  `json:"rateBytesPerSec"`
	ETASeconds      *int64 `json:"etaSeconds,omitempty"` // absent while unknown
}

// PrecacheCompleted ends a precache. In best-effort mode Failed may be
// non-zero and FailedImages says which.
type PrecacheCompleted struct {
	ClusterID      string         `json:"clusterId"`
	PlanID         string         `json:"planId,omitempty"`
	Generation     int64          `json:"generation"`
	Total          int            `json:"total"`
	Pulled         int            `json:"pulled"`
	Failed         int            `json:"failed"`
	AlreadyPresent int            `json:"alreadyPresent"`
	BytesTotal     int64          `json:"bytesTotal"`
	DurationMs     int64          `json:"durationMs"`
	FailedImages   []ImageFailure `json:"failedImages,omitempty"`
}

// PrecacheFailed ends a precache that failed.
type PrecacheFailed struct {
	ClusterID    string         `json:"clusterId"`
	PlanID       string         `json:"planId,omitempty"`
	Generation   int64          `json:"generation"`
	Reason       string         `json:"reason"` // CamelCase, e.g. ImagePullFailed, DiskFull
	Message      string         `json:"message"`
	FailedImages []ImageFailure `json:"failedImages,omitempty"`
}

// ImageFailure says why one image could not be pulled.
type ImageFailure struct {
	Image   string `json:"image"`
	Reason  string `json:"reason"` // CamelCase, e.g. NotFound, Unauthorized
	Message string `json:"message,omitempty"`
}

// EventType implements Data.
func (PrecacheRequested) EventType() string { return TypePrecacheRequested }

// EventType implements Data.
func (PrecachePlanned) EventType() string { return TypePrecachePlanned }

// EventType implements Data.
func (PrecacheProgress) EventType() string { return TypePrecacheProgress }

// EventType implements Data.
func (PrecacheCompleted) EventType() string { return TypePrecacheCompleted }

// EventType implements Data.
func (PrecacheFailed) EventType() string { return TypePrecacheFailed }
