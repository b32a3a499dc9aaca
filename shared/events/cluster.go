package events

import (
	"time"

	"ibu.dev/shared/fingerprint"
)

// Cluster events, published by a cluster's node agent (desired.set by the
// scheduler or ibuctl) on ibu.event.<cluster>.<name>.
const (
	TypeClusterRegistered = "dev.ibu.cluster.registered.v1"
	TypeClusterHeartbeat  = "dev.ibu.cluster.heartbeat.v1"
	TypeDesiredStageSet   = "dev.ibu.cluster.desired.set.v1"
	TypeStageChanged      = "dev.ibu.cluster.stage.changed.v1"
	TypeStepStarted       = "dev.ibu.cluster.step.started.v1"
	TypeStepFinished      = "dev.ibu.cluster.step.finished.v1"
)

func init() {
	register(Spec{Type: TypeClusterRegistered, Name: "registered", Scope: ScopeCluster,
		Description: "a node agent announces its cluster: labels, version, stateroots, fingerprint",
		new:         func() any { return new(ClusterRegistered) }})
	register(Spec{Type: TypeClusterHeartbeat, Name: "heartbeat", Scope: ScopeCluster,
		Description: "a node agent is alive (also during the reboot window, from the host)",
		new:         func() any { return new(ClusterHeartbeat) }})
	register(Spec{Type: TypeDesiredStageSet, Name: "desired.set", Scope: ScopeCluster,
		Description: "the scheduler (or ibuctl) set a cluster's desired stage",
		new:         func() any { return new(DesiredStageSet) }})
	register(Spec{Type: TypeStageChanged, Name: "stage.changed", Scope: ScopeCluster,
		Description: "a cluster's stage or state changed",
		new:         func() any { return new(StageChanged) }})
	register(Spec{Type: TypeStepStarted, Name: "step.started", Scope: ScopeCluster,
		Description: "the node agent started a step of a stage",
		new:         func() any { return new(StepStarted) }})
	register(Spec{Type: TypeStepFinished, Name: "step.finished", Scope: ScopeCluster,
		Description: "the node agent finished a step of a stage",
		new:         func() any { return new(StepFinished) }})
}

// ClusterRegistered is what a node agent knows about its cluster, sent when
// it starts and when any of it changes. The scheduler selects and checks
// compatibility from it, so it must be enough to refuse an incompatible seed
// before anything is pulled.
type ClusterRegistered struct {
	ClusterID       string            `json:"clusterId"`
	Labels          map[string]string `json:"labels,omitempty"`
	Version         string            `json:"version"`              // the running OpenShift version
	Stateroots      []Stateroot       `json:"stateroots,omitempty"` // at least the booted one
	BootedStateroot string            `json:"bootedStateroot"`
	AgentVersion    string            `json:"agentVersion"`
	Fingerprint     Fingerprint       `json:"fingerprint"`
}

// Stateroot is an ostree stateroot on the host.
type Stateroot struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"` // OpenShift version deployed in it, if known
}

// Fingerprint is what must match between a seed and a cluster for the seed
// to boot there (package fingerprint owns it; the seed image's info label
// carries the same type).
type Fingerprint = fingerprint.Fingerprint

// ClusterHeartbeat says a node agent is alive. Seq grows by one per
// heartbeat of an agent process, so a gap shows lost messages and a reset an
// agent restart.
type ClusterHeartbeat struct {
	ClusterID string     `json:"clusterId"`
	Seq       uint64     `json:"seq"`
	Time      time.Time  `json:"time"`
	Stage     Stage      `json:"stage"`
	State     StageState `json:"state"`
}

// DesiredStageSet records a new desired stage for a cluster (the KV entry in
// IBU_DESIRED is the state; this is its audit trail). Generation grows by one
// per change, so the agent acts on each generation once. Prep and Upgrade
// need the seed; PlanID is empty when ibuctl set the stage directly.
type DesiredStageSet struct {
	ClusterID      string      `json:"clusterId"`
	Stage          Stage       `json:"stage"`
	SeedImage      string      `json:"seedImage,omitempty"`
	SeedVersion    string      `json:"seedVersion,omitempty"`
	PlanID         string      `json:"planId,omitempty"`
	Generation     int64       `json:"generation"`
	PullSecretRef  *SecretRef  `json:"pullSecretRef,omitempty"`
	OADPContent    []ObjectRef `json:"oadpContent,omitempty"`
	ExtraManifests []ObjectRef `json:"extraManifests,omitempty"`
	// AutoRollbackOnFailure: nil means true, as in PlanCreateRequested.
	AutoRollbackOnFailure *bool `json:"autoRollbackOnFailure,omitempty"`
}

// StageChanged reports a cluster's new stage and state with everything a
// watcher needs to act without reading the KV: conditions, whether the host
// booted the new stateroot, and which stages may be requested next.
// Generation is the desired generation observed (0 before any).
type StageChanged struct {
	ClusterID       string      `json:"clusterId"`
	PlanID          string      `json:"planId,omitempty"`
	Generation      int64       `json:"generation"`
	Stage           Stage       `json:"stage"`
	State           StageState  `json:"state"`
	PreviousStage   Stage       `json:"previousStage,omitempty"`
	PreviousState   StageState  `json:"previousState,omitempty"`
	AfterPivot      bool        `json:"afterPivot"`
	Conditions      []Condition `json:"conditions,omitempty"`
	ValidNextStages []Stage     `json:"validNextStages,omitempty"` // empty: wait
}

// StepStarted reports that the agent started (or, with Attempt > 1, resumed
// from its journal) a step of a stage.
type StepStarted struct {
	ClusterID  string `json:"clusterId"`
	PlanID     string `json:"planId,omitempty"`
	Generation int64  `json:"generation"`
	Stage      Stage  `json:"stage"`
	Step       string `json:"step"` // CamelCase step name, e.g. DeployStateroot
	Attempt    int    `json:"attempt"`
}

// StepFinished reports the end of a step.
type StepFinished struct {
	ClusterID  string     `json:"clusterId"`
	PlanID     string     `json:"planId,omitempty"`
	Generation int64      `json:"generation"`
	Stage      Stage      `json:"stage"`
	Step       string     `json:"step"`
	Attempt    int        `json:"attempt"`
	Result     StepResult `json:"result"`
	Error      string     `json:"error,omitempty"` // why it failed, for humans
	DurationMs int64      `json:"durationMs"`
}

// EventType implements Data.
func (ClusterRegistered) EventType() string { return TypeClusterRegistered }

// EventType implements Data.
func (ClusterHeartbeat) EventType() string { return TypeClusterHeartbeat }

// EventType implements Data.
func (DesiredStageSet) EventType() string { return TypeDesiredStageSet }

// EventType implements Data.
func (StageChanged) EventType() string { return TypeStageChanged }

// EventType implements Data.
func (StepStarted) EventType() string { return TypeStepStarted }

// EventType implements Data.
func (StepFinished) EventType() string { return TypeStepFinished }
