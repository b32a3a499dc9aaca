package state

import (
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
)

// Plan is the value of IBU_PLANS/<plan>: the plan as it was accepted and
// the scheduler's record of its progress. Only the scheduler replica that
// owns the plan (Owner, until LeaseUntil) writes it, with compare-and-set;
// the decisions themselves are package planner's.
type Plan struct {
	// Spec is the request as accepted; it never changes.
	Spec    events.PlanCreateRequested `json:"spec"`
	Phase   events.PlanPhase           `json:"phase"`
	Reason  string                     `json:"reason,omitempty"` // CamelCase, e.g. FailureThresholdReached
	Message string                     `json:"message,omitempty"`
	// AbortMode is how an Aborting plan unwinds: Abort (back to Idle) or
	// Rollback (upgraded clusters roll back first). Empty until it aborts.
	AbortMode events.BreachAction `json:"abortMode,omitempty"`
	// Clusters is the plan's clusters in their frozen order: canaries first
	// in the order given, then the others sorted by id.
	Clusters    []PlanCluster     `json:"clusters"`
	CurrentStep int               `json:"currentStep"` // index into Spec.Steps
	Counts      events.PlanCounts `json:"counts"`
	CreatedAt   time.Time         `json:"createdAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
	StartedAt   time.Time         `json:"startedAt,omitzero"`
	FinishedAt  time.Time         `json:"finishedAt,omitzero"`
	// ETASeconds is the estimated time to completion; nil when unknown
	// (paused, aborting, finished).
	ETASeconds *int64 `json:"etaSeconds,omitempty"`
	// Owner is the scheduler replica driving the plan until LeaseUntil.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	// StageDurations is what this plan observed per action (keyed by the
	// action name: Prep, Upgrade, Finalize, Rollback, Abort), for the ETA.
	StageDurations map[string]StageStat `json:"stageDurations,omitempty"`
}

// StageStat accumulates the observed durations of one action.
type StageStat struct {
	Count int             `json:"count"`
	Total events.Duration `json:"total"`
}

// Mean is the average observed duration, zero when nothing was observed.
func (s StageStat) Mean() time.Duration {
	if s.Count <= 0 {
		return 0
	}
	return time.Duration(s.Total) / time.Duration(s.Count)
}

// Add returns the stat with one more observation.
func (s StageStat) Add(d time.Duration) StageStat {
	return StageStat{Count: s.Count + 1, Total: s.Total + events.Duration(d)}
}

// ClusterState is where a cluster stands in a plan.
type ClusterState string

// The cluster states. Pending: waiting to start its next action (in its
// step, or for the next step). InProgress: an action's desired stage is
// written and not finished. Succeeded: it finished every action of its
// step (of the last step: of the plan). Failed and TimedOut are failures;
// Skipped: never started (the plan aborted first); Aborted: the plan
// aborted after the cluster had started.
const (
	ClusterPending    ClusterState = "Pending"
	ClusterInProgress ClusterState = "InProgress"
	ClusterSucceeded  ClusterState = "Succeeded"
	ClusterFailed     ClusterState = "Failed"
	ClusterTimedOut   ClusterState = "TimedOut"
	ClusterSkipped    ClusterState = "Skipped"
	ClusterAborted    ClusterState = "Aborted"
)

// IsFailure reports Failed or TimedOut.
func (s ClusterState) IsFailure() bool { return s == ClusterFailed || s == ClusterTimedOut }

// CleanupState is the progress of the work the scheduler does to undo a
// cluster's part of a plan: an AbortOnFailure after it failed, or an abort
// or rollback of the whole plan. Empty: none was started.
type CleanupState string

// The cleanup states.
const (
	CleanupInProgress CleanupState = "InProgress"
	CleanupSucceeded  CleanupState = "Succeeded"
	CleanupFailed     CleanupState = "Failed"
	CleanupSkipped    CleanupState = "Skipped" // nothing could be done; CleanupMessage says why
)

// PlanCluster is one cluster's progress through a plan.
type PlanCluster struct {
	ClusterID string `json:"clusterId"`
	Canary    bool   `json:"canary,omitempty"`
	// Step is the index of the plan step the cluster is in; ActionIndex the
	// action of that step it is at, and Action that action (or, while a
	// cleanup runs, the cleanup's action: Abort, Finalize or Rollback).
	Step        int           `json:"step"`
	ActionIndex int           `json:"actionIndex"`
	Action      stages.Action `json:"action"`
	// Stage and Generation are the desired stage and IBU_DESIRED generation
	// the scheduler last wrote for the cluster; Generation 0: none yet.
	Stage      stages.Stage `json:"stage,omitempty"`
	Generation int64        `json:"generation"`
	State      ClusterState `json:"state"`
	Reason     string       `json:"reason,omitempty"`
	Message    string       `json:"message,omitempty"`
	// StartedAt is when the current (or last) action started; FinishedAt
	// when the last action or the cluster's part of the plan ended.
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// StepWorked is the time spent in earlier actions of the current step;
	// the step's timeout bounds StepWorked plus the current action's time,
	// so that waiting for a maintenance window between actions is free.
	StepWorked events.Duration `json:"stepWorked,omitempty"`
	// Completed lists the plan actions the cluster completed, in order.
	Completed      []stages.Action `json:"completed,omitempty"`
	Cleanup        CleanupState    `json:"cleanup,omitempty"`
	CleanupMessage string          `json:"cleanupMessage,omitempty"`
}

// Busy reports whether a desired stage written for the cluster is still
// running: its action or its cleanup is in progress.
func (c PlanCluster) Busy() bool {
	return c.State == ClusterInProgress || c.Cleanup == CleanupInProgress
}

// HasCompleted reports whether the cluster completed action a in the plan.
func (c PlanCluster) HasCompleted(a stages.Action) bool {
	for _, d := range c.Completed {
		if d == a {
			return true
		}
	}
	return false
}

// IsActive reports whether the plan may still change: Pending, Running,
// Paused or Aborting.
func (p Plan) IsActive() bool {
	switch p.Phase {
	case events.PlanPending, events.PlanRunning, events.PlanPaused, events.PlanAborting:
		return true
	}
	return false
}

// Cluster returns the index of a cluster in p.Clusters, or -1.
func (p Plan) Cluster(id string) int {
	for i := range p.Clusters {
		if p.Clusters[i].ClusterID == id {
			return i
		}
	}
	return -1
}

// Failures counts the clusters that failed or timed out.
func (p Plan) Failures() int {
	n := 0
	for _, c := range p.Clusters {
		if c.State.IsFailure() {
			n++
		}
	}
	return n
}

// ComputeCounts counts the clusters by their progress through the whole
// plan: Pending have not started, InProgress have started and not
// finished the last step (or are busy undoing), Succeeded finished every
// step, Failed failed or timed out, Skipped were skipped or aborted.
func (p Plan) ComputeCounts() events.PlanCounts {
	last := len(p.Spec.Steps) - 1
	c := events.PlanCounts{Total: len(p.Clusters)}
	for _, pc := range p.Clusters {
		switch {
		case pc.Busy():
			c.InProgress++
		case pc.State.IsFailure():
			c.Failed++
		case pc.State == ClusterSkipped || pc.State == ClusterAborted:
			c.Skipped++
		case pc.State == ClusterSucceeded && pc.Step >= last:
			c.Succeeded++
		case pc.State == ClusterPending && pc.Generation == 0 && len(pc.Completed) == 0:
			c.Pending++
		default:
			c.InProgress++
		}
	}
	return c
}

// Recount sets p.Counts from the clusters.
func (p *Plan) Recount() { p.Counts = p.ComputeCounts() }

// StatusEvent is the plan's progress as the contract reports it.
func (p Plan) StatusEvent() events.PlanStatusChanged {
	return events.PlanStatusChanged{PlanID: p.Spec.PlanID, Phase: p.Phase, Reason: p.Reason,
		Message: p.Message, Counts: p.Counts, CurrentStep: p.CurrentStep, ETASeconds: p.ETASeconds}
}
