package events

import "ibu.dev/shared/stages"

// Plan requests and plan events.
const (
	TypePlanCreateRequested = "dev.ibu.plan.create.requested.v1"
	TypePlanPauseRequested  = "dev.ibu.plan.pause.requested.v1"
	TypePlanResumeRequested = "dev.ibu.plan.resume.requested.v1"
	TypePlanAbortRequested  = "dev.ibu.plan.abort.requested.v1"
	TypePlanStatusChanged   = "dev.ibu.plan.status.changed.v1"
)

func init() {
	register(Spec{Type: TypePlanCreateRequested, Name: "plan.create", Scope: ScopeRequest,
		Description: "a user asks the scheduler to roll a seed out to a set of clusters",
		new:         func() any { return new(PlanCreateRequested) }})
	register(Spec{Type: TypePlanPauseRequested, Name: "plan.pause", Scope: ScopeRequest,
		Description: "a user asks the scheduler to start no new cluster work for a plan",
		new:         func() any { return new(PlanPauseRequested) }})
	register(Spec{Type: TypePlanResumeRequested, Name: "plan.resume", Scope: ScopeRequest,
		Description: "a user asks the scheduler to continue a paused plan",
		new:         func() any { return new(PlanResumeRequested) }})
	register(Spec{Type: TypePlanAbortRequested, Name: "plan.abort", Scope: ScopeRequest,
		Description: "a user asks the scheduler to abort a plan and return its clusters to Idle",
		new:         func() any { return new(PlanAbortRequested) }})
	register(Spec{Type: TypePlanStatusChanged, Name: "status.changed", Scope: ScopePlan,
		Description: "the scheduler reports a plan's phase, per-state cluster counts and ETA",
		new:         func() any { return new(PlanStatusChanged) }})
}

// PlanCreateRequested asks the scheduler to upgrade a set of clusters to a
// seed, step by step. The plan is immutable once accepted: a different plan
// is a new planId.
type PlanCreateRequested struct {
	PlanID         string           `json:"planId"`
	SeedImage      string           `json:"seedImage"`   // pull spec, tag or digest
	SeedVersion    string           `json:"seedVersion"` // the OpenShift version the seed carries
	PullSecretRef  *SecretRef       `json:"pullSecretRef,omitempty"`
	OADPContent    []ObjectRef      `json:"oadpContent,omitempty"`    // ConfigMaps with Velero Backups and Restores
	ExtraManifests []ObjectRef      `json:"extraManifests,omitempty"` // ConfigMaps applied after the pivot
	Clusters       ClusterSelection `json:"clusters"`
	Steps          []PlanStep       `json:"steps,omitempty"` // at least one
	// Canaries run first, one at a time; a canary failure stops the plan
	// whatever the failure policy.
	Canaries           []string            `json:"canaries,omitempty"`
	FailurePolicy      *FailurePolicy      `json:"failurePolicy,omitempty"`
	MaintenanceWindows []MaintenanceWindow `json:"maintenanceWindows,omitempty"` // none means any time
	// AutoRollbackOnFailure lets the agent roll back by itself after a failed
	// pivot. Nil means true: turning the safety net off must be explicit.
	AutoRollbackOnFailure *bool `json:"autoRollbackOnFailure,omitempty"`
	DryRun                bool  `json:"dryRun,omitempty"` // select and check, change nothing
}

// ClusterSelection chooses a plan's clusters: those matching Selector plus
// those listed in ClusterIDs. At least one must be given; an empty selector
// does not mean "the whole fleet".
type ClusterSelection struct {
	Selector   *LabelSelector `json:"selector,omitempty"`
	ClusterIDs []string       `json:"clusterIds,omitempty"`
}

// LabelSelector matches cluster labels as a Kubernetes label selector does:
// every label and every expression must match.
type LabelSelector struct {
	MatchLabels      map[string]string          `json:"matchLabels,omitempty"`
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is one expression of a LabelSelector. Values is
// required for In and NotIn and must be empty for Exists and DoesNotExist.
type LabelSelectorRequirement struct {
	Key      string           `json:"key"`
	Operator SelectorOperator `json:"operator"`
	Values   []string         `json:"values,omitempty"`
}

// PlanStep is one step of a plan: the actions each cluster goes through, and
// how many clusters may be in the step at once.
type PlanStep struct {
	Actions         []stages.Action `json:"actions,omitempty"` // at least one
	RolloutStrategy RolloutStrategy `json:"rolloutStrategy"`
}

// RolloutStrategy bounds a step. The scheduler keeps MaxConcurrency clusters
// busy (a sliding window, not static batches); Timeout bounds one cluster's
// time in the step, zero meaning the scheduler's default.
type RolloutStrategy struct {
	MaxConcurrency int      `json:"maxConcurrency"`
	Timeout        Duration `json:"timeout,omitempty"`
}

// FailurePolicy stops a bad rollout early: once more than MaxFailures
// clusters failed (a count such as "3" or a share of the selected clusters
// such as "10%"), the scheduler does OnBreach.
type FailurePolicy struct {
	MaxFailures string       `json:"maxFailures"`
	OnBreach    BreachAction `json:"onBreach"`
}

// MaintenanceWindow is when the scheduler may start disruptive work. Start and
// End are "HH:MM" wall-clock times in TimeZone (an IANA name such as
// "Europe/Paris"); End before Start means the window crosses midnight.
type MaintenanceWindow struct {
	Days     []Weekday `json:"days,omitempty"` // at least one
	Start    string    `json:"start"`
	End      string    `json:"end"`
	TimeZone string    `json:"timeZone"`
}

// PlanPauseRequested asks the scheduler to start no new cluster work for a
// plan; clusters already in a stage finish it.
type PlanPauseRequested struct {
	PlanID string `json:"planId"`
	Reason string `json:"reason,omitempty"` // free text, for the audit log
}

// PlanResumeRequested asks the scheduler to continue a paused plan.
type PlanResumeRequested struct {
	PlanID string `json:"planId"`
	Reason string `json:"reason,omitempty"`
}

// PlanAbortRequested asks the scheduler to abort a plan: no new work, and
// its clusters that can still abort go back to Idle.
type PlanAbortRequested struct {
	PlanID string `json:"planId"`
	Reason string `json:"reason,omitempty"`
}

// PlanStatusChanged reports a plan's progress. It is emitted on every phase
// change and whenever the counts change, so a watcher never polls.
type PlanStatusChanged struct {
	PlanID      string     `json:"planId"`
	Phase       PlanPhase  `json:"phase"`
	Reason      string     `json:"reason,omitempty"` // CamelCase, e.g. FailureThresholdReached
	Message     string     `json:"message,omitempty"`
	Counts      PlanCounts `json:"counts"`
	CurrentStep int        `json:"currentStep"` // index into the plan's steps
	// ETASeconds is the estimated time to completion; absent while unknown.
	ETASeconds *int64 `json:"etaSeconds,omitempty"`
}

// PlanCounts counts a plan's clusters by state. Total is the sum of the
// others.
type PlanCounts struct {
	Total      int `json:"total"`
	Pending    int `json:"pending"`
	InProgress int `json:"inProgress"`
	Succeeded  int `json:"succeeded"`
	Failed     int `json:"failed"`
	Skipped    int `json:"skipped"` // e.g. incompatible with the seed, or aborted before starting
}

// EventType implements Data.
func (PlanCreateRequested) EventType() string { return TypePlanCreateRequested }

// EventType implements Data.
func (PlanPauseRequested) EventType() string { return TypePlanPauseRequested }

// EventType implements Data.
func (PlanResumeRequested) EventType() string { return TypePlanResumeRequested }

// EventType implements Data.
func (PlanAbortRequested) EventType() string { return TypePlanAbortRequested }

// EventType implements Data.
func (PlanStatusChanged) EventType() string { return TypePlanStatusChanged }
