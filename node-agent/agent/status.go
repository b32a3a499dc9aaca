package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"ibu.dev/shared/buckets"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/store"
)

func (a *Agent) readStatus(ctx context.Context) (state.Status, error) {
	st, _, err := store.Wrap(a.status, buckets.Status).Get(ctx, a.cfg.ClusterID)
	if errors.Is(err, store.ErrNotFound) {
		return state.Status{ClusterID: a.cfg.ClusterID, Position: stages.IdlePosition}, nil
	}
	if err != nil {
		return st, fmt.Errorf("read status: %w", err)
	}
	return st, nil
}

// updateStatus changes the cluster's status with compare-and-set, keeps
// validNextStages in step with the position, and publishes stage.changed
// when the position moved.
func (a *Agent) updateStatus(ctx context.Context, fn func(s *state.Status, exists bool)) (state.Status, error) {
	var before stages.Position
	var existed bool
	now := a.d.Now().UTC()
	st, rev, err := bus.UpdateJSON(ctx, a.status, a.cfg.ClusterID, func(s *state.Status, exists bool) error {
		before, existed = s.Position, exists
		fn(s, exists)
		s.ClusterID = a.cfg.ClusterID
		s.ValidNextStages = stages.ValidNextStages(s.Position)
		s.UpdatedAt = now
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("write status: %w", err)
	}
	if existed && before == st.Position {
		return st, nil
	}
	// The status is written: its stage.changed event must not be lost to a
	// JetStream leader election (a retry of the caller would find the
	// position unchanged and emit nothing). The id is the write's revision,
	// so re-sends are deduplicated.
	sc := events.StageChanged{
		ClusterID: a.cfg.ClusterID, PlanID: st.PlanID, Generation: st.ObservedGeneration,
		Stage: st.Stage, State: st.State, PreviousStage: before.Stage, PreviousState: before.State,
		AfterPivot: st.AfterPivot, Conditions: st.Conditions, ValidNextStages: st.ValidNextStages,
	}
	id := fmt.Sprintf("%s.status.%d", a.cfg.ClusterID, rev)
	return st, bus.RideOut(ctx, func() error {
		err := a.emit(ctx, sc, bus.EmitID(id))
		if err != nil && bus.Transient(err) {
			a.log.Warn("stage change not published yet; retrying", "stage", st.Stage, "state", st.State, "error", err)
		}
		return err
	})
}

// setPosition moves the status to p with a message, setting the stage's
// conditions and history.
func (a *Agent) setPosition(ctx context.Context, p stages.Position, msg string) (state.Status, error) {
	now := a.d.Now().UTC()
	return a.updateStatus(ctx, func(s *state.Status, _ bool) { applyPosition(s, p, msg, now) })
}

// applyPosition moves s to p: position, message, conditions and history in
// one write, so no reader sees a new generation with the old position.
func applyPosition(s *state.Status, p stages.Position, msg string, now time.Time) {
	{
		if p.State == stages.InProgress && (s.Stage != p.Stage || s.State != stages.InProgress) {
			s.History = append(s.History, stages.StageRecord{Stage: p.Stage, Start: now, State: stages.InProgress})
		}
		if p.State != stages.InProgress {
			if n := len(s.History); n > 0 && s.History[n-1].Stage == p.Stage && s.History[n-1].End.IsZero() {
				s.History[n-1] = s.History[n-1].Finish(p.State, now)
			}
		}
		s.Position = p
		s.Message = msg
		s.Conditions = stages.ConditionsFor(s.Conditions, p, msg, now)
	}
}
