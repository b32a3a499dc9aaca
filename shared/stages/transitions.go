package stages

import (
	"errors"
	"fmt"
	"slices"
)

// ErrInvalidTransition is wrapped by every refusal of a desired stage.
var ErrInvalidTransition = errors.New("invalid stage transition")

// Action is one thing a cluster can be told or decide to do. A plan step
// names plan actions (PlanActions), which the scheduler turns into desired
// stages (Finalize and Abort both mean "desired stage Idle", from different
// situations); the node agent decides its run's action from its Position and
// the desired stage (Decide) and runs it; ibuctl shows both.
type Action string

const (
	// ActionNone: the desired stage is the current one; nothing to start.
	ActionNone Action = "None"
	// ActionPrep: set up the new stateroot from the seed and precache.
	ActionPrep Action = "Prep"
	// ActionResumePrep: continue a failed Prep from its first step not done.
	ActionResumePrep Action = "ResumePrep"
	// ActionAbort: remove what Prep or a pre-pivot Upgrade made; back to Idle.
	ActionAbort Action = "Abort"
	// ActionUpgrade: back up, pivot, reboot, restore.
	ActionUpgrade Action = "Upgrade"
	// ActionFinalize: the upgrade stays; remove the old stateroot.
	ActionFinalize Action = "Finalize"
	// ActionRollback: boot the old stateroot again.
	ActionRollback Action = "Rollback"
	// ActionRetryRollback: continue a failed rollback from its journal.
	ActionRetryRollback Action = "RetryRollback"
	// ActionFinalizeRollback: the rollback stays; remove the new stateroot.
	ActionFinalizeRollback Action = "FinalizeRollback"
	// ActionRetryIdle: run a failed abort or finalize cleanup again.
	ActionRetryIdle Action = "RetryIdle"
	// ActionAbortOnFailure: a plan action only; the scheduler aborts the
	// clusters that failed an earlier step and leaves the others alone.
	ActionAbortOnFailure Action = "AbortOnFailure"
)

// PlanActions returns the actions a plan step may name, in the order a plan
// usually runs them.
func PlanActions() []Action {
	return []Action{ActionPrep, ActionUpgrade, ActionFinalize, ActionRollback, ActionAbort, ActionAbortOnFailure}
}

// Refusal codes: a stable word per reason a move is refused, carried in the
// TransitionError and in rejected events beside the human message.
const (
	CodeUnknownStage        = "UnknownStage"
	CodePrepFirst           = "PrepFirst"
	CodePreviousNotSucceded = "PreviousStageNotSucceeded"
	CodeNotUpgraded         = "UpgradeNotStartedOrFinalized"
	CodeRollbackFirst       = "RollbackFirst"
	CodeRollbackInProgress  = "RollbackInProgress"
	CodeIdleInProgress      = "IdleInProgress"
	CodeNotAfterPivot       = "NotAfterPivot"
	CodeStageInProgress     = "StageInProgress"
)

// TransitionError is a refused move, with every fact a user needs to act.
type TransitionError struct {
	From    Position
	To      Stage
	Valid   []Stage // the stages that would have been accepted
	Code    string  // one of the Code* constants
	Message string  // human explanation, e.g. "Rollback first"
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("%s: %s -> %s: %s (valid next stages: %v)",
		ErrInvalidTransition, e.From, e.To, e.Message, e.Valid)
}

func (e *TransitionError) Unwrap() error { return ErrInvalidTransition }

// Reason is the condition reason of every refused move, InvalidTransition;
// Code says which refusal it was.
func (e *TransitionError) Reason() string { return ReasonInvalidTransition }

// ValidNextStages returns the stages a cluster at p may be asked to move to,
// not counting its own stage (asking for the current stage again is always a
// no-op, except where it means resume or retry, which is listed).
//
// It follows Lifecycle Agent's table with two deliberate improvements: a
// failed Prep may be resumed (Prep again), and a failed Rollback may be
// retried (Rollback again), because steps are journaled and idempotent. A
// failed abort or finalize may be retried too (Idle again) instead of
// needing manual cleanup.
func ValidNextStages(p Position) []Stage {
	switch p.Stage {
	case Idle:
		switch p.State {
		case Completed:
			return []Stage{Prep}
		case Failed:
			return []Stage{Idle}
		}
		return []Stage{}
	case Prep:
		switch p.State {
		case InProgress:
			return []Stage{Idle}
		case Failed:
			return []Stage{Idle, Prep}
		case Completed:
			return []Stage{Idle, Upgrade}
		}
	case Upgrade:
		switch p.State {
		case InProgress, Failed:
			if p.AfterPivot {
				return []Stage{Rollback}
			}
			return []Stage{Idle}
		case Completed:
			if p.AfterPivot {
				return []Stage{Idle, Rollback}
			}
			// Completed but on the old stateroot cannot happen through the
			// agent; treat it like a failed pre-pivot upgrade.
			return []Stage{Idle}
		}
	case Rollback:
		switch p.State {
		case InProgress:
			return []Stage{}
		case Failed:
			return []Stage{Rollback}
		case Completed:
			if p.AfterPivot {
				// The host is still on the new stateroot: the rollback's
				// reboot has not happened, so nothing may be finalized.
				return []Stage{Rollback}
			}
			return []Stage{Idle}
		}
	}
	return []Stage{}
}

// Decide says what moving from p to the desired stage means, or why it is
// refused. A desired stage equal to the current one is ActionNone unless it
// is a resume or retry.
func Decide(p Position, to Stage) (Action, error) {
	if !to.Valid() {
		return "", &TransitionError{From: p, To: to, Valid: ValidNextStages(p),
			Code: CodeUnknownStage, Message: fmt.Sprintf("unknown stage %q", to)}
	}
	valid := ValidNextStages(p)
	if slices.Contains(valid, to) {
		return action(p, to), nil
	}
	if to == p.Stage {
		return ActionNone, nil
	}
	code, msg := refusal(p, to)
	return "", &TransitionError{From: p, To: to, Valid: valid, Code: code, Message: msg}
}

func action(p Position, to Stage) Action {
	switch to {
	case Prep:
		if p.Stage == Prep {
			return ActionResumePrep
		}
		return ActionPrep
	case Upgrade:
		return ActionUpgrade
	case Rollback:
		if p.Stage == Rollback {
			return ActionRetryRollback
		}
		return ActionRollback
	case Idle:
		switch {
		case p.Stage == Idle:
			return ActionRetryIdle
		case p.Stage == Upgrade && p.State == Completed && p.AfterPivot:
			return ActionFinalize
		case p.Stage == Rollback:
			return ActionFinalizeRollback
		default:
			return ActionAbort
		}
	}
	return ActionNone
}

// refusal explains, in Lifecycle Agent's words where users know them, why p
// may not move to the stage to.
func refusal(p Position, to Stage) (code, msg string) {
	switch {
	case p.Stage == Idle && p.State == InProgress:
		return CodeIdleInProgress, "Abort or finalize is in progress"
	case p.Stage == Rollback && p.State == InProgress:
		return CodeRollbackInProgress, "Rollback is in progress"
	case p.Stage == Rollback && p.State == Failed:
		return CodeRollbackFirst, "Rollback failed - retry the rollback first"
	case p.Stage == Rollback && p.AfterPivot:
		return CodeRollbackInProgress, "Rollback has not rebooted into the original stateroot yet"
	case to == Rollback:
		if p.Stage == Upgrade && !p.AfterPivot {
			return CodeNotAfterPivot, "Rollback is only possible after the pivot; abort instead"
		}
		return CodeNotUpgraded, "Upgrade not started or already finalized"
	case to == Idle && p.AfterPivot:
		return CodeRollbackFirst, "Transition to Idle not allowed - Rollback first"
	case to == Upgrade && p.Stage == Idle:
		return CodePrepFirst, "Prep first"
	case to == Upgrade || to == Prep:
		if p.State == InProgress {
			return CodeStageInProgress, fmt.Sprintf("%s is in progress", p.Stage)
		}
		return CodePreviousNotSucceded, "Previous stage not succeeded"
	}
	return CodePreviousNotSucceded, "Previous stage not succeeded"
}
