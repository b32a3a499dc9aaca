package stages

import "fmt"

// Stage is what a cluster is asked to do (the desired stage) or is doing.
type Stage string

// The four stages. Idle is both "nothing to do" and the target of abort and
// finalize; which of the two a move to Idle means depends on where it starts.
const (
	Idle     Stage = "Idle"
	Prep     Stage = "Prep"
	Upgrade  Stage = "Upgrade"
	Rollback Stage = "Rollback"
)

// AllStages lists the stages in their natural order.
var AllStages = []Stage{Idle, Prep, Upgrade, Rollback}

// Valid reports whether s is one of the four stages.
func (s Stage) Valid() bool {
	switch s {
	case Idle, Prep, Upgrade, Rollback:
		return true
	}
	return false
}

// State is how far the current stage has got.
type State string

const (
	InProgress State = "InProgress"
	Completed  State = "Completed"
	Failed     State = "Failed"
)

// AllStates lists the states.
var AllStates = []State{InProgress, Completed, Failed}

// Valid reports whether s is one of the three states.
func (s State) Valid() bool {
	switch s {
	case InProgress, Completed, Failed:
		return true
	}
	return false
}

// Position is where a cluster stands: its stage, how far that stage got, and
// whether the host has booted the new stateroot ("after pivot"). The valid
// next stages are a function of the Position alone.
type Position struct {
	Stage      Stage `json:"stage"`
	State      State `json:"state"`
	AfterPivot bool  `json:"afterPivot"`
}

// IdlePosition is a cluster with nothing in flight.
var IdlePosition = Position{Stage: Idle, State: Completed}

func (p Position) String() string {
	s := string(p.Stage) + " " + string(p.State)
	if p.AfterPivot {
		s += " (after pivot)"
	}
	return s
}

// Validate checks that p names a known stage and state.
func (p Position) Validate() error {
	if !p.Stage.Valid() {
		return fmt.Errorf("unknown stage %q", p.Stage)
	}
	if !p.State.Valid() {
		return fmt.Errorf("unknown state %q", p.State)
	}
	return nil
}
