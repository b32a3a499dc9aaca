package events

// Health: a task for the health service and its results.
const (
	TypeHealthCheckRequested = "dev.ibu.health.requested.v1"
	TypeHealthPassed         = "dev.ibu.health.passed.v1"
	TypeHealthFailed         = "dev.ibu.health.failed.v1"
)

func init() {
	register(Spec{Type: TypeHealthCheckRequested, Name: "health", Scope: ScopeTask, Service: ServiceHealth,
		Description: "the node agent asks for the stabilisation checks of a step",
		new:         func() any { return new(HealthCheckRequested) }})
	register(Spec{Type: TypeHealthPassed, Name: "health.passed", Scope: ScopeCluster,
		Description: "the cluster was healthy for the required window; per-check results",
		new:         func() any { return new(HealthPassed) }})
	register(Spec{Type: TypeHealthFailed, Name: "health.failed", Scope: ScopeCluster,
		Description: "the cluster did not become healthy before the deadline; per-check reasons",
		new:         func() any { return new(HealthFailed) }})
}

// HealthCheckRequested asks the health service to check a cluster until the
// checks have passed continuously for StableForSeconds, or Timeout expires.
// A stage checks health several times, so Step (the agent's step that asks)
// is part of the idempotency key. Empty Checks and Tiers mean every check.
type HealthCheckRequested struct {
	ClusterID        string       `json:"clusterId"`
	PlanID           string       `json:"planId,omitempty"`
	Generation       int64        `json:"generation"`
	Step             string       `json:"step"`
	Checks           []string     `json:"checks,omitempty"`
	Tiers            []HealthTier `json:"tiers,omitempty"`
	StableForSeconds int          `json:"stableForSeconds"`
	Timeout          Duration     `json:"timeout,omitempty"` // 0: the service default; never unbounded
}

// CheckResult is the outcome of one check. Reason is a CamelCase word (e.g.
// OperatorDegraded); Message names the culprits.
type CheckResult struct {
	Name    string     `json:"name"`
	Tier    HealthTier `json:"tier"`
	Passed  bool       `json:"passed"`
	Reason  string     `json:"reason,omitempty"`
	Message string     `json:"message,omitempty"`
}

// HealthPassed says the checks held for the window.
type HealthPassed struct {
	ClusterID  string        `json:"clusterId"`
	PlanID     string        `json:"planId,omitempty"`
	Generation int64         `json:"generation"`
	Step       string        `json:"step"`
	Checks     []CheckResult `json:"checks,omitempty"`
	DurationMs int64         `json:"durationMs"`
}

// HealthFailed says the checks did not hold before the deadline; Checks has
// the last result of each check.
type HealthFailed struct {
	ClusterID  string        `json:"clusterId"`
	PlanID     string        `json:"planId,omitempty"`
	Generation int64         `json:"generation"`
	Step       string        `json:"step"`
	Reason     string        `json:"reason"` // CamelCase, e.g. TimedOut, ClusterUnreachable
	Message    string        `json:"message"`
	Checks     []CheckResult `json:"checks,omitempty"`
	DurationMs int64         `json:"durationMs"`
}

// EventType implements Data.
func (HealthCheckRequested) EventType() string { return TypeHealthCheckRequested }

// EventType implements Data.
func (HealthPassed) EventType() string { return TypeHealthPassed }

// EventType implements Data.
func (HealthFailed) EventType() string { return TypeHealthFailed }
