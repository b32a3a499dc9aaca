package events

// Seed build: a request to the seed-builder and the build's events, which are
// about the seed cluster (ibu.event.<seed cluster>.seed.build.*).
const (
	TypeSeedBuildRequested = "dev.ibu.seed.build.requested.v1"
	TypeSeedBuildProgress  = "dev.ibu.seed.build.progress.v1"
	TypeSeedBuildCompleted = "dev.ibu.seed.build.completed.v1"
	TypeSeedBuildFailed    = "dev.ibu.seed.build.failed.v1"
)

func init() {
	register(Spec{Type: TypeSeedBuildRequested, Name: "seed.build", Scope: ScopeRequest,
		Description: "a user asks the seed-builder to build a seed image from a seed cluster",
		new:         func() any { return new(SeedBuildRequested) }})
	register(Spec{Type: TypeSeedBuildProgress, Name: "seed.build.progress", Scope: ScopeCluster,
		Description: "the seed-builder reports a build's phase and bytes pushed",
		new:         func() any { return new(SeedBuildProgress) }})
	register(Spec{Type: TypeSeedBuildCompleted, Name: "seed.build.completed", Scope: ScopeCluster,
		Description: "a seed image was pushed and verified; carries its digest",
		new:         func() any { return new(SeedBuildCompleted) }})
	register(Spec{Type: TypeSeedBuildFailed, Name: "seed.build.failed", Scope: ScopeCluster,
		Description: "a seed build failed",
		new:         func() any { return new(SeedBuildFailed) }})
}

// SeedBuildRequested asks the seed-builder to capture ClusterID (the seed
// cluster) into an OCI image pushed to SeedImage. BuildID keys the build's
// events, so a redelivered request is recognised.
type SeedBuildRequested struct {
	BuildID       string    `json:"buildId"`
	ClusterID     string    `json:"clusterId"` // the seed cluster
	SeedImage     string    `json:"seedImage"` // where to push: repository and tag, no digest
	PushSecretRef SecretRef `json:"pushSecretRef"`
	Compression   string    `json:"compression,omitempty"` // of the content layers: gzip (default) or zstd
}

// SeedBuildProgress reports a build's phase; the byte counts concern the
// phase that moves data (capture or push) and are zero otherwise.
type SeedBuildProgress struct {
	ClusterID  string         `json:"clusterId"`
	BuildID    string         `json:"buildId"`
	Phase      SeedBuildPhase `json:"phase"`
	Message    string         `json:"message,omitempty"`
	BytesDone  int64          `json:"bytesDone"`
	BytesTotal int64          `json:"bytesTotal"`
	Layer      string         `json:"layer,omitempty"` // the layer's role while pushing
}

// SeedBuildCompleted says the seed was pushed and read back. Plans should
// name the seed by Digest, which cannot move, rather than by tag.
type SeedBuildCompleted struct {
	ClusterID    string   `json:"clusterId"`
	BuildID      string   `json:"buildId"`
	SeedImage    string   `json:"seedImage"`
	Digest       string   `json:"digest"` // sha256:<64 hex> of the manifest
	SeedVersion  string   `json:"seedVersion"`
	Layers       int      `json:"layers"`
	ReusedLayers int      `json:"reusedLayers"` // already in the registry from an earlier seed
	SizeBytes    int64    `json:"sizeBytes"`
	DurationMs   int64    `json:"durationMs"`
	Images       int      `json:"images"`                 // container images in the precache list
	LayerDigests []string `json:"layerDigests,omitempty"` // in manifest order
}

// SeedBuildFailed says a build failed, in which phase and why.
type SeedBuildFailed struct {
	ClusterID string         `json:"clusterId"`
	BuildID   string         `json:"buildId"`
	Phase     SeedBuildPhase `json:"phase,omitempty"`
	Reason    string         `json:"reason"` // CamelCase, e.g. SeedClusterUnhealthy
	Message   string         `json:"message"`
}

// EventType implements Data.
func (SeedBuildRequested) EventType() string { return TypeSeedBuildRequested }

// EventType implements Data.
func (SeedBuildProgress) EventType() string { return TypeSeedBuildProgress }

// EventType implements Data.
func (SeedBuildCompleted) EventType() string { return TypeSeedBuildCompleted }

// EventType implements Data.
func (SeedBuildFailed) EventType() string { return TypeSeedBuildFailed }
