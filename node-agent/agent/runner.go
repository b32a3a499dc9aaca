package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/journal"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

// step is one named, journaled unit of a stage.
type step struct {
	name  string
	phase string // the stage history phase it belongs to
	fn    func(ctx context.Context, r *runState) (any, error)
}

// runState is what a step sees: the run's inputs and the journal (for the
// outputs of earlier steps).
type runState struct {
	a   *Agent
	run journal.Run
	in  runInputs
}

func (r *runState) output(stepName string, v any) error { return r.run.Output(stepName, v) }

// plan lists the steps of an action, in order.
func (a *Agent) plan(action stages.Action) []step {
	switch action {
	case stages.ActionPrep, stages.ActionResumePrep:
		return a.prepSteps()
	case stages.ActionUpgrade:
		return a.upgradeSteps()
	case stages.ActionRollback, stages.ActionRetryRollback:
		return a.rollbackSteps()
	case stages.ActionFinalize:
		return a.finalizeSteps()
	case stages.ActionFinalizeRollback:
		return a.finalizeRollbackSteps()
	case stages.ActionAbort, stages.ActionRetryIdle:
		return a.abortSteps()
	}
	return nil
}

func nextStep(run journal.Run, plan []step) string {
	names := make([]string, len(plan))
	for i, s := range plan {
		names[i] = s.name
	}
	n, _ := run.NextStep(names)
	return n
}

// execute runs the steps of run not yet done, in order, journaling each
// before and after, tracing each as a span of the run's trace, and
// reporting each as step.started / step.finished.
func (a *Agent) execute(ctx context.Context, run journal.Run) error {
	var in runInputs
	if err := json.Unmarshal(run.Inputs, &in); err != nil {
		return fmt.Errorf("run %s inputs: %w", run.ID, err)
	}
	ctx, span := a.runSpan(ctx, run)
	defer span.End()
	plan := a.plan(stages.Action(run.Action))
	for _, st := range plan {
		cur, _, err := a.d.Journal.Current()
		if err != nil {
			return fmt.Errorf("read journal: %w", err)
		}
		if stepDone(cur, st.name) {
			continue
		}
		if err := a.hook("before:" + st.name); err != nil {
			return err
		}
		if err := a.runStep(ctx, cur, in, st); err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			return err
		}
		if err := a.hook("after:" + st.name); err != nil {
			return err
		}
	}
	return nil
}

func stepDone(run journal.Run, name string) bool {
	for _, s := range run.Steps {
		if s.Name == name && s.State == journal.StepDone {
			return true
		}
	}
	return false
}

func (a *Agent) hook(boundary string) error {
	if a.d.StepHook == nil {
		return nil
	}
	if err := a.d.StepHook(boundary); err != nil {
		return fmt.Errorf("%w: %s: %v", errCrash, boundary, err)
	}
	return nil
}

func (a *Agent) runStep(ctx context.Context, run journal.Run, in runInputs, st step) error {
	ctx, span := a.tracer.Start(ctx, st.name, trace.WithAttributes(
		attribute.String("ibu.cluster", a.cfg.ClusterID), attribute.String("ibu.plan", run.PlanID),
		attribute.String("ibu.stage", run.Stage), attribute.String("ibu.step", st.name)))
	defer span.End()
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	attempt, err := a.d.Journal.StepStarted(st.name, carrier["traceparent"])
	if err != nil {
		return fmt.Errorf("journal step %s: %w", st.name, err)
	}
	start := a.d.Now()
	if _, err := a.updateStatus(ctx, func(s *state.Status, _ bool) {
		s.Step = st.name
		if n := len(s.History); n > 0 && s.History[n-1].End.IsZero() {
			ph := s.History[n-1].Phases
			if len(ph) == 0 || ph[len(ph)-1].Name != st.phase {
				s.History[n-1] = s.History[n-1].StartPhase(st.phase, start.UTC())
			}
		}
	}); err != nil {
		return err
	}
	stage := stages.Stage(run.Stage)
	if err := a.emit(ctx, events.StepStarted{ClusterID: a.cfg.ClusterID, PlanID: run.PlanID, Generation: run.Generation,
		Stage: stage, Step: st.name, Attempt: attempt}); err != nil {
		return err
	}
	out, stepErr := st.fn(ctx, &runState{a: a, run: run, in: in})
	if stepErr != nil && ctx.Err() != nil {
		// Cancelled (abort, watchdog, shutdown): not the step's failure.
		return ctx.Err()
	}
	fin := events.StepFinished{ClusterID: a.cfg.ClusterID, PlanID: run.PlanID, Generation: run.Generation,
		Stage: stage, Step: st.name, Attempt: attempt, Result: events.StepSucceeded,
		DurationMs: a.d.Now().Sub(start).Milliseconds()}
	if stepErr != nil {
		if errors.Is(stepErr, host.ErrRebooting) {
			return stepErr // the step finishes after the boot
		}
		span.RecordError(stepErr)
		span.SetStatus(codes.Error, stepErr.Error())
		fin.Result, fin.Error = events.StepFailed, events.Clip(stepErr.Error(), 1000)
		a.meters.stepDone(ctx, run.Stage, st.name, a.d.Now().Sub(start), stepErr)
		if err := a.d.Journal.StepFailed(st.name, stepErr); err != nil {
			return fmt.Errorf("journal step %s: %w", st.name, err)
		}
		if err := a.emit(ctx, fin); err != nil {
			a.log.Warn("publish step.finished", "error", err)
		}
		return fmt.Errorf("%s: %w", st.name, stepErr)
	}
	if err := a.d.Journal.StepDone(st.name, out); err != nil {
		return fmt.Errorf("journal step %s: %w", st.name, err)
	}
	a.meters.stepDone(ctx, run.Stage, st.name, a.d.Now().Sub(start), nil)
	return a.emit(ctx, fin)
}

// runSpan starts the run's span, a child of the trace context saved in the
// journal when the run began, so that the steps after a reboot join the
// same trace.
func (a *Agent) runSpan(ctx context.Context, run journal.Run) (context.Context, trace.Span) {
	if run.TraceParent != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": run.TraceParent, "tracestate": run.TraceState})
	}
	return a.tracer.Start(ctx, string(run.Action), trace.WithAttributes(
		attribute.String("ibu.cluster", a.cfg.ClusterID), attribute.String("ibu.plan", run.PlanID),
		attribute.String("ibu.stage", run.Stage), attribute.Int64("ibu.generation", run.Generation)))
}

// pivotOutput is the Pivot step's journaled output.
type pivotOutput struct {
	At time.Time `json:"at"`
}
