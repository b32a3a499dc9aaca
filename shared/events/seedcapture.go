package events

// Seed capture: the seed-builder asks the seed cluster's node agent to
// inspect its host or to capture it, and the agent answers with what it
// found or with the artifacts it put in the JetStream object store.
const (
	TypeSeedCaptureRequested = "dev.ibu.seed.capture.requested.v1"
	TypeSeedCaptureCompleted = "dev.ibu.seed.capture.completed.v1"
	TypeSeedCaptureFailed    = "dev.ibu.seed.capture.failed.v1"
)

// ServiceSeedCapture is the task subject token of capture work:
// ibu.task.seed-capture.<cluster>, consumed by that cluster's node agent.
const ServiceSeedCapture = "seed-capture"

func init() {
	register(Spec{Type: TypeSeedCaptureRequested, Name: "seed.capture", Scope: ScopeTask, Service: ServiceSeedCapture,
		Description: "the seed-builder asks the seed cluster's node agent to inspect its host or capture it",
		new:         func() any { return new(SeedCaptureRequested) }})
	register(Spec{Type: TypeSeedCaptureCompleted, Name: "seed.capture.completed", Scope: ScopeCluster,
		Description: "the node agent inspected or captured its host; a capture lists its artifacts in the object store",
		new:         func() any { return new(SeedCaptureCompleted) }})
	register(Spec{Type: TypeSeedCaptureFailed, Name: "seed.capture.failed", Scope: ScopeCluster,
		Description: "the node agent could not inspect or capture its host; says whether the workloads run again",
		new:         func() any { return new(SeedCaptureFailed) }})
}

// SeedCaptureMode says what a capture task asks for.
type SeedCaptureMode string

// Capture modes.
const (
	// CaptureInspect reports the host's inventory and changes nothing.
	CaptureInspect SeedCaptureMode = "Inspect"
	// CaptureFull quiesces the workloads, exports the seed's content into
	// the object store and restarts the workloads.
	CaptureFull SeedCaptureMode = "Capture"
)

// SeedCaptureRequested is a capture task for the seed cluster's node agent.
type SeedCaptureRequested struct {
	ClusterID string          `json:"clusterId"`
	BuildID   string          `json:"buildId"`
	Mode      SeedCaptureMode `json:"mode"`
	// Bucket is the JetStream object store bucket the artifacts go to,
	// under the object names "<buildId>/<role>".
	Bucket string `json:"bucket,omitempty"`
	// Compression of the content layers: "gzip" (default) or "zstd".
	Compression string `json:"compression,omitempty"`
}

// SeedHostInventory is what the agent reports of the seed host.
type SeedHostInventory struct {
	Version           string   `json:"version"`
	Stateroot         string   `json:"stateroot"`
	OstreeCommit      string   `json:"ostreeCommit"`
	Namespaces        []string `json:"namespaces,omitempty"`
	CRDs              []string `json:"crds,omitempty"`
	PersistentVolumes []string `json:"persistentVolumes,omitempty"`
	Healthy           bool     `json:"healthy"`
	HealthMessage     string   `json:"healthMessage,omitempty"`
	Images            int      `json:"images"`
}

// SeedArtifact is one captured layer in the object store: its object name
// and the digests the seed-builder's image layer will carry.
type SeedArtifact struct {
	Role             string `json:"role"`
	Object           string `json:"object"`
	MediaType        string `json:"mediaType"`
	Digest           string `json:"digest"` // of the compressed bytes, the layer digest
	SizeBytes        int64  `json:"sizeBytes"`
	DiffID           string `json:"diffId"` // of the uncompressed tar
	UncompressedSize int64  `json:"uncompressedSize"`
}

// SeedCaptureCompleted answers a capture task. For a capture, Artifacts
// lists the layers and InfoObject the JSON object holding the seed info,
// the image list and the /etc deletions.
type SeedCaptureCompleted struct {
	ClusterID  string            `json:"clusterId"`
	BuildID    string            `json:"buildId"`
	Mode       SeedCaptureMode   `json:"mode"`
	Inventory  SeedHostInventory `json:"inventory"`
	Artifacts  []SeedArtifact    `json:"artifacts,omitempty"`
	InfoObject string            `json:"infoObject,omitempty"`
	QuiescedMs int64             `json:"quiescedMs"`
	DurationMs int64             `json:"durationMs"`
}

// SeedCaptureFailed answers a capture task that failed. WorkloadsRunning is
// false only when restarting the workloads failed too: an operator must
// look at the seed cluster.
type SeedCaptureFailed struct {
	ClusterID        string          `json:"clusterId"`
	BuildID          string          `json:"buildId"`
	Mode             SeedCaptureMode `json:"mode"`
	Reason           string          `json:"reason"`
	Message          string          `json:"message"`
	WorkloadsRunning bool            `json:"workloadsRunning"`
}

// EventType implements Data.
func (SeedCaptureRequested) EventType() string { return TypeSeedCaptureRequested }

// EventType implements Data.
func (SeedCaptureCompleted) EventType() string { return TypeSeedCaptureCompleted }

// EventType implements Data.
func (SeedCaptureFailed) EventType() string { return TypeSeedCaptureFailed }
