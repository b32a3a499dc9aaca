package stages

import "time"

// Phase is a named part of a stage (Prep: Stateroot, Precache; Upgrade:
// PrePivot, Reboot, PostPivot) with its start and end.
type Phase struct {
	Name  string    `json:"name"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
}

// StageRecord is one run of a stage, kept in the status's history so that
// users and the scheduler's ETA see how long each stage and phase took.
type StageRecord struct {
	Stage  Stage     `json:"stage"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end,omitzero"`
	State  State     `json:"state"`
	Phases []Phase   `json:"phases,omitempty"`
}

// Duration is End-Start, or zero while the stage runs.
func (r StageRecord) Duration() time.Duration {
	if r.End.IsZero() {
		return 0
	}
	return r.End.Sub(r.Start)
}

// StartPhase appends a running phase to the record, ending any phase still
// open, and returns the record.
func (r StageRecord) StartPhase(name string, now time.Time) StageRecord {
	r.Phases = append(r.endOpen(now).Phases, Phase{Name: name, Start: now})
	return r
}

// Finish ends the record and any open phase with the given state.
func (r StageRecord) Finish(state State, now time.Time) StageRecord {
	r = r.endOpen(now)
	r.State, r.End = state, now
	return r
}

func (r StageRecord) endOpen(now time.Time) StageRecord {
	ph := make([]Phase, len(r.Phases))
	copy(ph, r.Phases)
	for i := range ph {
		if ph[i].End.IsZero() {
			ph[i].End = now
		}
	}
	r.Phases = ph
	return r
}
