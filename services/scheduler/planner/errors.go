package planner

import (
	"errors"
	"fmt"
	"strings"

	"ibu.dev/shared/events"
)

// The sentinel errors, for errors.Is.
var (
	// ErrInvalidPlan: the request is not a valid plan (Validate).
	ErrInvalidPlan = errors.New("invalid plan")
	// ErrInvalidSelection: the request's clusters cannot be resolved
	// against the inventory and the active plans (Resolve).
	ErrInvalidSelection = errors.New("invalid cluster selection")
	// ErrNotAllowed: a pause, resume or abort the plan's phase refuses.
	ErrNotAllowed = errors.New("not allowed")
)

// Reason is one problem: a stable CamelCase code for programs and a message
// for people that names the field or clusters concerned.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (r Reason) String() string { return r.Code + ": " + r.Message }

// InvalidPlanError lists every problem Validate found, not only the first.
type InvalidPlanError struct {
	Reasons []Reason
}

func (e *InvalidPlanError) Error() string { return joinReasons(ErrInvalidPlan, e.Reasons) }

// Unwrap makes errors.Is(err, ErrInvalidPlan) true.
func (e *InvalidPlanError) Unwrap() error { return ErrInvalidPlan }

// Codes lists the reasons' codes, in order.
func (e *InvalidPlanError) Codes() []string { return codes(e.Reasons) }

// SelectionError lists every problem Resolve found.
type SelectionError struct {
	Reasons []Reason
}

func (e *SelectionError) Error() string { return joinReasons(ErrInvalidSelection, e.Reasons) }

// Unwrap makes errors.Is(err, ErrInvalidSelection) true.
func (e *SelectionError) Unwrap() error { return ErrInvalidSelection }

// Codes lists the reasons' codes, in order.
func (e *SelectionError) Codes() []string { return codes(e.Reasons) }

// ControlError is a pause, resume or abort that the plan's phase does not
// allow. Reason is a stable word: AlreadyPaused, NotPaused, Aborting,
// AlreadyAborting or PlanFinished.
type ControlError struct {
	PlanID  string
	Op      string // pause, resume or abort
	Phase   events.PlanPhase
	Reason  string
	Message string
}

func (e *ControlError) Error() string {
	return fmt.Sprintf("%s plan %s: %s: %s (phase %s)", e.Op, e.PlanID, e.Reason, e.Message, e.Phase)
}

// Unwrap makes errors.Is(err, ErrNotAllowed) true.
func (e *ControlError) Unwrap() error { return ErrNotAllowed }

func joinReasons(sentinel error, rs []Reason) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return fmt.Sprintf("%s: %s", sentinel, strings.Join(parts, "; "))
}

func codes(rs []Reason) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Code
	}
	return out
}

// reasons collects problems.
type reasons []Reason

func (rs *reasons) add(code, format string, args ...any) {
	*rs = append(*rs, Reason{Code: code, Message: fmt.Sprintf(format, args...)})
}
