package stages

import (
	"slices"
	"time"
)

// Condition types, one pair per stage, as users of Lifecycle Agent know them.
const (
	CondIdle               = "Idle"
	CondPrepInProgress     = "PrepInProgress"
	CondPrepCompleted      = "PrepCompleted"
	CondUpgradeInProgress  = "UpgradeInProgress"
	CondUpgradeCompleted   = "UpgradeCompleted"
	CondRollbackInProgress = "RollbackInProgress"
	CondRollbackCompleted  = "RollbackCompleted"
)

// Condition reasons.
const (
	ReasonIdle              = "Idle"
	ReasonInProgress        = "InProgress"
	ReasonCompleted         = "Completed"
	ReasonFailed            = "Failed"
	ReasonTimedOut          = "TimedOut"
	ReasonAborting          = "Aborting"
	ReasonAbortCompleted    = "AbortCompleted"
	ReasonAbortFailed       = "AbortFailed"
	ReasonFinalizing        = "Finalizing"
	ReasonFinalizeCompleted = "FinalizeCompleted"
	ReasonFinalizeFailed    = "FinalizeFailed"
	ReasonInvalidTransition = "InvalidTransition"
)

// ConditionStatus is True, False or Unknown.
type ConditionStatus string

const (
	True    ConditionStatus = "True"
	False   ConditionStatus = "False"
	Unknown ConditionStatus = "Unknown"
)

// Condition is one observation about the cluster, as in Kubernetes: the
// reason is a stable word for programs, the message is for people.
type Condition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	Reason             string          `json:"reason"`
	Message            string          `json:"message,omitempty"`
	LastTransitionTime time.Time       `json:"lastTransitionTime"`
}

// InProgressCondition and CompletedCondition name the pair of condition
// types that belong to a stage.
func InProgressCondition(s Stage) string {
	if s == Idle {
		return CondIdle
	}
	return string(s) + "InProgress"
}

// CompletedCondition: see InProgressCondition.
func CompletedCondition(s Stage) string {
	if s == Idle {
		return CondIdle
	}
	return string(s) + "Completed"
}

// SetCondition returns conds with c set: an existing condition of the same
// type is replaced, keeping its LastTransitionTime unless the status changed.
// The input slice is not modified.
func SetCondition(conds []Condition, c Condition, now time.Time) []Condition {
	out := slices.Clone(conds)
	for i := range out {
		if out[i].Type != c.Type {
			continue
		}
		if out[i].Status == c.Status && !out[i].LastTransitionTime.IsZero() {
			c.LastTransitionTime = out[i].LastTransitionTime
		} else {
			c.LastTransitionTime = now
		}
		out[i] = c
		return out
	}
	c.LastTransitionTime = now
	return append(out, c)
}

// FindCondition returns the condition of a type, if present.
func FindCondition(conds []Condition, typ string) (Condition, bool) {
	for _, c := range conds {
		if c.Type == typ {
			return c, true
		}
	}
	return Condition{}, false
}

// RemoveCondition returns conds without the condition of a type.
func RemoveCondition(conds []Condition, typ string) []Condition {
	return slices.DeleteFunc(slices.Clone(conds), func(c Condition) bool { return c.Type == typ })
}

// ConditionsFor returns the conditions that describe p with a message, set on
// top of prev. A finished stage sets InProgress=False and Completed=True or
// False with the stage's reason; a stage in progress sets InProgress=True.
func ConditionsFor(prev []Condition, p Position, message string, now time.Time) []Condition {
	conds := prev
	if p.Stage == Idle {
		c := Condition{Type: CondIdle, Message: message}
		switch p.State {
		case Completed:
			c.Status, c.Reason = True, ReasonIdle
		case InProgress:
			c.Status, c.Reason = False, ReasonInProgress
		case Failed:
			c.Status, c.Reason = False, ReasonFailed
		}
		return SetCondition(conds, c, now)
	}
	conds = SetCondition(conds, Condition{Type: CondIdle, Status: False, Reason: ReasonInProgress,
		Message: "a stage is in progress or not finalized"}, now)
	inProg := Condition{Type: InProgressCondition(p.Stage), Message: message}
	done := Condition{Type: CompletedCondition(p.Stage), Message: message}
	switch p.State {
	case InProgress:
		inProg.Status, inProg.Reason = True, ReasonInProgress
		return RemoveCondition(SetCondition(conds, inProg, now), done.Type)
	case Completed:
		inProg.Status, inProg.Reason = False, ReasonCompleted
		done.Status, done.Reason = True, ReasonCompleted
	case Failed:
		inProg.Status, inProg.Reason = False, ReasonFailed
		done.Status, done.Reason = False, ReasonFailed
	}
	return SetCondition(SetCondition(conds, inProg, now), done, now)
}

// InvalidTransitionCondition is the condition a refused desired stage leaves:
// <Stage>InProgress=False/InvalidTransition with the refusal message.
func InvalidTransitionCondition(err *TransitionError) Condition {
	return Condition{
		Type:    InProgressCondition(err.To),
		Status:  False,
		Reason:  ReasonInvalidTransition,
		Message: err.Message,
	}
}
