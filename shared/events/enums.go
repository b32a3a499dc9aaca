package events

import (
	"encoding/json"
	"fmt"
	"time"

	"ibu.dev/shared/stages"
)

// Stage, StageState and Condition are the state machine's own types (package
// stages owns them); the contract carries them as they are.
type (
	Stage      = stages.Stage
	StageState = stages.State
	Condition  = stages.Condition
)

// The stages. Idle is both "nothing to do" and the target of abort/finalize.
const (
	StageIdle    = stages.Idle
	StagePrep    = stages.Prep
	StageUpgrade = stages.Upgrade
)

// The states of a stage: a typed field rather than a condition message, so
// nobody parses prose for progress.
const (
	StateInProgress = stages.InProgress
	StateCompleted  = stages.Completed
	StateFailed     = stages.Failed
)

// The condition statuses.
const (
	ConditionTrue  = stages.True
	ConditionFalse = stages.False
)

// PlanPhase is the phase of a fleet plan.
type PlanPhase string

// The plan phases. Aborted, Completed and Failed are terminal.
const (
	PlanPending   PlanPhase = "Pending"
	PlanRunning   PlanPhase = "Running"
	PlanPaused    PlanPhase = "Paused"
	PlanAborting  PlanPhase = "Aborting"
	PlanAborted   PlanPhase = "Aborted"
	PlanCompleted PlanPhase = "Completed"
	PlanFailed    PlanPhase = "Failed"
)

// BreachAction is what the scheduler does when a plan's failure threshold is
// crossed.
type BreachAction string

// The breach actions.
const (
	BreachPause    BreachAction = "Pause"
	BreachAbort    BreachAction = "Abort"
	BreachRollback BreachAction = "Rollback"
)

// Weekday names a day of a maintenance window. Three-letter names keep
// hand-written plans short and unambiguous across locales.
type Weekday string

// The days of the week.
const (
	Monday    Weekday = "Mon"
	Tuesday   Weekday = "Tue"
	Wednesday Weekday = "Wed"
	Thursday  Weekday = "Thu"
	Friday    Weekday = "Fri"
	Saturday  Weekday = "Sat"
	Sunday    Weekday = "Sun"
)

// SelectorOperator is the operator of a label selector requirement, with the
// Kubernetes meaning.
type SelectorOperator string

// The selector operators.
const (
	SelectorIn           SelectorOperator = "In"
	SelectorNotIn        SelectorOperator = "NotIn"
	SelectorExists       SelectorOperator = "Exists"
	SelectorDoesNotExist SelectorOperator = "DoesNotExist"
)

// StepResult is the outcome of one step of a stage.
type StepResult string

// The step results.
const (
	StepSucceeded StepResult = "Succeeded"
	StepFailed    StepResult = "Failed"
)

// HealthTier says when a health check gates the upgrade: Mandatory checks
// gate everything, Deferred ones run after the restores (as some only pass
// once workloads are back), Advisory ones are reported but never gate.
type HealthTier string

// The health tiers.
const (
	TierMandatory HealthTier = "Mandatory"
	TierDeferred  HealthTier = "Deferred"
	TierAdvisory  HealthTier = "Advisory"
)

// SeedBuildPhase is a phase of a seed image build.
type SeedBuildPhase string

// The seed build phases, in order.
const (
	SeedValidating SeedBuildPhase = "Validating"
	SeedCapturing  SeedBuildPhase = "Capturing"
	SeedBuilding   SeedBuildPhase = "Building"
	SeedPushing    SeedBuildPhase = "Pushing"
	SeedVerifying  SeedBuildPhase = "Verifying"
)

// Duration is a time.Duration that travels as a Go duration string ("30m",
// "1h30m0s") so that hand-written requests stay readable.
type Duration time.Duration

// String returns the duration in Go notation.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON encodes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON decodes a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}
