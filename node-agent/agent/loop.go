package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/journal"
	"ibu.dev/shared/buckets"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/store"
	"ibu.dev/shared/telemetry"
)

// loop is the level-triggered control loop: it compares the desired state
// with the status on every change and on start, and runs at most one
// action at a time.
type loop struct {
	a    *Agent
	cur  *active
	next *pending // an action waiting for the current one to stop
	done chan runResult
}

type active struct {
	run        journal.Run
	cancel     context.CancelFunc
	superseded string // why the run was cancelled to make way for another
}

type pending struct {
	desired state.Desired
	action  stages.Action
	reason  string // failure message for an action the agent took itself
}

type runResult struct {
	id  string
	err error
}

// runInputs is what a run needs, fixed when it starts and kept in the
// journal so that it resumes after a crash or reboot with the same inputs.
type runInputs struct {
	Desired      state.Desired `json:"desired"`
	OldStateroot string        `json:"oldStateroot"`
	NewStateroot string        `json:"newStateroot,omitempty"`
	SeedVersion  string        `json:"seedVersion,omitempty"`
	AutoRollback bool          `json:"autoRollback"`
}

func stageOf(a stages.Action) stages.Stage {
	switch a {
	case stages.ActionPrep, stages.ActionResumePrep:
		return stages.Prep
	case stages.ActionUpgrade:
		return stages.Upgrade
	case stages.ActionRollback, stages.ActionRetryRollback:
		return stages.Rollback
	}
	return stages.Idle
}

// resume continues an interrupted run from the journal, or settles a run
// that finished in the journal but not yet in the status.
func (l *loop) resume(ctx context.Context) error {
	run, ok, err := l.a.d.Journal.Current()
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	if !ok {
		return nil
	}
	if run.Finished.IsZero() {
		l.a.log.Info("resuming run from the journal", "run", run.ID, "next", nextStep(run, l.a.plan(stages.Action(run.Action))))
		return l.launch(ctx, run)
	}
	st, err := l.a.readStatus(ctx)
	if err != nil {
		return err
	}
	if st.State == stages.InProgress && st.Action == stages.Action(run.Action) {
		var runErr error
		if run.Result != journal.ResultSucceeded {
			runErr = errors.New(run.Error)
		}
		return l.settle(ctx, run, runErr)
	}
	return nil
}

// desiredChanged acts on a new IBU_DESIRED value.
func (l *loop) desiredChanged(ctx context.Context, entry store.Event[state.Desired]) error {
	if entry.Op != store.Put {
		return nil // a deleted desired state asks for nothing
	}
	d := entry.Value
	if entry.Err != nil {
		// The contract's own words in the condition, not the watch's.
		var err error
		if d, err = state.DecodeDesired(entry.Raw); err != nil {
			return l.refuse(ctx, d, "InvalidDesiredState", err.Error())
		}
	}
	if d.ClusterID != l.a.cfg.ClusterID {
		return l.refuse(ctx, d, "WrongCluster", fmt.Sprintf("desired state names cluster %q, this is %q", d.ClusterID, l.a.cfg.ClusterID))
	}
	st, err := l.a.readStatus(ctx)
	if err != nil {
		return err
	}
	if l.cur != nil && d.Generation == l.cur.run.Generation {
		return nil
	}
	if l.cur == nil && d.Generation <= st.ObservedGeneration {
		return nil // already acted on, or refused
	}
	action, err := stages.Decide(st.Position, d.Stage)
	if err != nil {
		var te *stages.TransitionError
		if errors.As(err, &te) {
			return l.refuseTransition(ctx, d, te)
		}
		return err
	}
	if action == stages.ActionNone {
		_, err := l.a.updateStatus(ctx, func(s *state.Status, _ bool) { s.ObservedGeneration = d.Generation })
		return err
	}
	if l.cur != nil {
		// Only abort can interrupt a running stage (Decide allowed it).
		l.cur.superseded = fmt.Sprintf("superseded by %s (generation %d)", action, d.Generation)
		l.cur.cancel()
		l.next = &pending{desired: d, action: action}
		return nil
	}
	return l.start(ctx, d, action, "")
}

// refuseTransition leaves an InvalidTransition condition and a rejected
// event; the position and the host stay as they were.
func (l *loop) refuseTransition(ctx context.Context, d state.Desired, te *stages.TransitionError) error {
	now := l.a.d.Now().UTC()
	if _, err := l.a.updateStatus(ctx, func(s *state.Status, _ bool) {
		s.ObservedGeneration = max(s.ObservedGeneration, d.Generation)
		s.Conditions = stages.SetCondition(s.Conditions, stages.InvalidTransitionCondition(te), now)
	}); err != nil {
		return err
	}
	l.a.log.Warn("desired stage refused", "desired", d.Stage, "generation", d.Generation, "code", te.Code, "reason", te.Message)
	return l.a.emit(ctx, events.Rejected{
		ClusterID: l.a.cfg.ClusterID, PlanID: d.PlanID, RefusedType: events.TypeDesiredStageSet,
		RefusedSubject: "$KV." + buckets.Desired.Name() + "." + l.a.cfg.ClusterID, Service: events.ServiceNodeAgent,
		Reason: stages.ReasonInvalidTransition, Message: te.Error(),
	})
}

// refuse reports a desired state that cannot be read at all.
func (l *loop) refuse(ctx context.Context, d state.Desired, reason, msg string) error {
	l.a.log.Warn("desired state refused", "reason", reason, "error", msg)
	return l.a.emit(ctx, events.Rejected{
		ClusterID: l.a.cfg.ClusterID, PlanID: d.PlanID, RefusedType: events.TypeDesiredStageSet,
		RefusedSubject: "$KV." + buckets.Desired.Name() + "." + l.a.cfg.ClusterID, Service: events.ServiceNodeAgent,
		Reason: reason, Message: events.Clip(msg, 1000),
	})
}

// start begins a run of action for the desired state d.
func (l *loop) start(ctx context.Context, d state.Desired, action stages.Action, why string) error {
	st, err := l.a.readStatus(ctx)
	if err != nil {
		return err
	}
	booted, err := l.a.d.Stateroots.Booted(ctx)
	if err != nil {
		return fmt.Errorf("read booted stateroot: %w", err)
	}
	in := runInputs{Desired: d, OldStateroot: st.OldStateroot, NewStateroot: st.NewStateroot,
		SeedVersion: st.SeedVersion, AutoRollback: d.AutoRollbackOnFailure == nil || *d.AutoRollbackOnFailure}
	if d.SeedVersion != "" {
		in.SeedVersion = d.SeedVersion
	}
	if action == stages.ActionPrep {
		in.OldStateroot, in.NewStateroot = booted.Stateroot, ""
	}
	raw, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode run inputs: %w", err)
	}
	now := l.a.d.Now().UTC()
	run := journal.Run{
		ID: fmt.Sprintf("%s-%d", action, d.Generation), Stage: string(stageOf(action)), Action: string(action),
		Generation: d.Generation, PlanID: d.PlanID, Inputs: raw, Started: now,
	}
	if why != "" {
		run.ID += "-auto"
	}
	// The run's root span context goes into the journal: every step span,
	// also those after a reboot, joins this trace. A run of a plan is part
	// of the trace of the cluster's upgrade in that plan.
	_, root := l.a.tracer.Start(telemetry.WithParent(ctx, telemetry.ClusterUpgrade(d.PlanID, l.a.cfg.ClusterID)), "ibu "+string(action),
		trace.WithAttributes(attribute.String("ibu.cluster", l.a.cfg.ClusterID), attribute.String("ibu.plan", d.PlanID),
			attribute.String("ibu.stage", string(stageOf(action))), attribute.String("ibu.action", string(action)),
			attribute.Int64("ibu.generation", d.Generation)))
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpan(ctx, root), carrier)
	run.TraceParent, run.TraceState = carrier["traceparent"], carrier["tracestate"]
	root.End()
	if action == stages.ActionResumePrep || action == stages.ActionRetryRollback || action == stages.ActionRetryIdle {
		// Carry the steps already done, so that nothing done is redone.
		if prev, ok, err := l.a.d.Journal.Current(); err == nil && ok {
			for _, s := range prev.Steps {
				if s.State == journal.StepDone {
					run.Steps = append(run.Steps, s)
				}
			}
			if action == stages.ActionResumePrep {
				run.Inputs = mergeInputs(prev.Inputs, d)
			}
		}
	}
	if err := l.a.d.Journal.Start(run); err != nil {
		return fmt.Errorf("journal run %s: %w", run.ID, err)
	}
	msg := fmt.Sprintf("%s started", action)
	if why != "" {
		msg = why
	}
	pos := stages.Position{Stage: stageOf(action), State: stages.InProgress, AfterPivot: st.AfterPivot}
	if _, err := l.a.updateStatus(ctx, func(s *state.Status, _ bool) {
		s.ObservedGeneration = max(s.ObservedGeneration, d.Generation)
		s.Action, s.PlanID = action, d.PlanID
		if d.SeedImage != "" {
			s.SeedImage, s.SeedVersion = d.SeedImage, d.SeedVersion
		}
		if action == stages.ActionPrep {
			s.OldStateroot, s.NewStateroot, s.Precache = in.OldStateroot, "", nil
		}
		applyPosition(s, pos, msg, now)
	}); err != nil {
		return err
	}
	return l.launch(ctx, run)
}

// mergeInputs keeps the resumed Prep's stateroot names and takes the new
// desired state (same seed; Decide allowed only Prep again).
func mergeInputs(prev json.RawMessage, d state.Desired) json.RawMessage {
	var in runInputs
	_ = json.Unmarshal(prev, &in)
	in.Desired = d
	raw, _ := json.Marshal(in)
	return raw
}

func (l *loop) launch(ctx context.Context, run journal.Run) error {
	runCtx, cancel := context.WithCancel(ctx)
	l.cur = &active{run: run, cancel: cancel}
	go func() {
		err := l.a.execute(runCtx, run)
		l.done <- runResult{id: run.ID, err: err}
	}()
	return nil
}

func (l *loop) stop() error {
	if l.cur != nil {
		l.cur.cancel()
		<-l.done
		l.cur = nil
	}
	return errStopped
}

// finished handles the end of the current run.
func (l *loop) finished(ctx context.Context, res runResult) error {
	cur := l.cur
	l.cur = nil
	switch {
	case errors.Is(res.err, host.ErrRebooting), errors.Is(res.err, errCrash):
		return res.err
	case cur != nil && cur.superseded != "":
		if err := l.a.d.Journal.Finish(journal.ResultFailed, errors.New(cur.superseded)); err != nil {
			return err
		}
		next := l.next
		l.next = nil
		if next == nil {
			return nil
		}
		return l.start(ctx, next.desired, next.action, next.reason)
	case ctx.Err() != nil:
		return errStopped
	}
	run, _, err := l.a.d.Journal.Current()
	if err != nil {
		return err
	}
	result := journal.ResultSucceeded
	if res.err != nil {
		result = journal.ResultFailed
	}
	if err := l.a.d.Journal.Finish(result, res.err); err != nil {
		return fmt.Errorf("journal finish: %w", err)
	}
	return l.settle(ctx, run, res.err)
}

// settle writes a finished run's outcome to the status, then rolls back by
// itself when a post-pivot upgrade failed and auto-rollback is on.
func (l *loop) settle(ctx context.Context, run journal.Run, runErr error) error {
	action := stages.Action(run.Action)
	var in runInputs
	if err := json.Unmarshal(run.Inputs, &in); err != nil {
		return fmt.Errorf("run %s inputs: %w", run.ID, err)
	}
	booted, err := l.a.d.Stateroots.Booted(ctx)
	if err != nil {
		return fmt.Errorf("read booted stateroot: %w", err)
	}
	if cur, err := l.a.readStatus(ctx); err == nil && in.NewStateroot == "" {
		in.NewStateroot = cur.NewStateroot // Prep names it in InspectSeed
	}
	afterPivot := in.NewStateroot != "" && booted.Stateroot == in.NewStateroot
	pos := stages.Position{Stage: stageOf(action), State: stages.Completed, AfterPivot: afterPivot}
	msg := completedMessage(action, in)
	if runErr != nil {
		pos.State, msg = stages.Failed, fmt.Sprintf("%s failed: %v", action, runErr)
	}
	if pos.Stage == stages.Idle {
		pos.AfterPivot = false
		if runErr == nil {
			pos = stages.IdlePosition
		}
	}
	now := l.a.d.Now().UTC()
	l.a.meters.stageDone(ctx, string(pos.Stage), string(action), now.Sub(run.Started), runErr)
	if _, err := l.a.updateStatus(ctx, func(s *state.Status, _ bool) {
		s.BootedStateroot = booted.Stateroot
		s.Step = ""
		if pos == stages.IdlePosition {
			s.OldStateroot, s.NewStateroot = "", ""
		}
		applyPosition(s, pos, msg, now)
	}); err != nil {
		return err
	}
	if pos == stages.IdlePosition {
		if err := l.a.d.Journal.Archive(); err != nil {
			l.a.log.Warn("archive journal", "error", err)
		}
	}
	if runErr != nil && action == stages.ActionUpgrade && afterPivot && in.AutoRollback {
		l.a.log.Warn("upgrade failed after the pivot: rolling back", "error", runErr)
		return l.start(ctx, in.Desired, stages.ActionRollback, fmt.Sprintf("Rollback due to failure after pivot: %v", runErr))
	}
	return nil
}

func completedMessage(a stages.Action, in runInputs) string {
	switch a {
	case stages.ActionPrep, stages.ActionResumePrep:
		return fmt.Sprintf("Prep completed: stateroot %s ready", in.NewStateroot)
	case stages.ActionUpgrade:
		return fmt.Sprintf("Upgrade completed: running %s", in.NewStateroot)
	case stages.ActionRollback, stages.ActionRetryRollback:
		return fmt.Sprintf("Rollback completed: running %s", in.OldStateroot)
	case stages.ActionFinalize:
		return "Finalize completed: old stateroot removed"
	case stages.ActionFinalizeRollback:
		return "Rollback finalized: new stateroot removed"
	case stages.ActionAbort:
		return "Abort completed"
	}
	return string(a) + " completed"
}

// watchdog is the init-monitor timer of an upgrade after its pivot.
func (l *loop) watchdog() *time.Timer {
	if l.cur == nil || stages.Action(l.cur.run.Action) != stages.ActionUpgrade {
		return nil
	}
	run, ok, err := l.a.d.Journal.Current()
	if err != nil || !ok {
		return nil
	}
	var piv pivotOutput
	if run.Output(stepPivot, &piv) != nil || piv.At.IsZero() {
		return nil
	}
	var in runInputs
	if json.Unmarshal(run.Inputs, &in) != nil || !in.AutoRollback {
		return nil
	}
	left := piv.At.Add(l.a.cfg.InitMonitorTimeout).Sub(l.a.d.Now())
	return time.NewTimer(max(left, 0))
}

// watchdogFired: the upgrade did not complete in time after the pivot.
func (l *loop) watchdogFired(ctx context.Context) error {
	if l.cur == nil {
		return nil
	}
	msg := fmt.Sprintf("Rollback due to init monitor timeout, after %s", l.a.cfg.InitMonitorTimeout)
	l.a.log.Warn(msg)
	run := l.cur.run
	l.cur.superseded = msg
	l.cur.cancel()
	<-l.done
	l.cur = nil
	if err := l.a.d.Journal.Finish(journal.ResultFailed, errors.New(msg)); err != nil {
		return err
	}
	var in runInputs
	_ = json.Unmarshal(run.Inputs, &in)
	booted, err := l.a.d.Stateroots.Booted(ctx)
	if err != nil {
		return err
	}
	afterPivot := booted.Stateroot == in.NewStateroot
	if _, err := l.a.setPosition(ctx, stages.Position{Stage: stages.Upgrade, State: stages.Failed, AfterPivot: afterPivot}, msg); err != nil {
		return err
	}
	if !afterPivot {
		return nil
	}
	return l.start(ctx, in.Desired, stages.ActionRollback, msg)
}
