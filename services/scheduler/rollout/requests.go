package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/services/scheduler/planner"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
)

// handleRequest serves one plan request. A request that is well formed but
// cannot be done (an invalid plan, an unknown cluster, a plan that is not
// paused) is refused with a rejected event on the plan's subject and
// acknowledged: retrying it would not help.
func (s *Scheduler) handleRequest(ctx context.Context, e cloudevents.Event) error {
	var err error
	var planID string
	switch e.Type() {
	case events.TypePlanCreateRequested:
		var req events.PlanCreateRequested
		if req, err = events.DataAs[events.PlanCreateRequested](e); err == nil {
			planID = req.PlanID
			err = s.create(ctx, req)
		}
	case events.TypePlanPauseRequested, events.TypePlanResumeRequested, events.TypePlanAbortRequested:
		var req struct {
			PlanID string `json:"planId"`
			Reason string `json:"reason"`
		}
		if err = json.Unmarshal(e.Data(), &req); err == nil {
			planID = req.PlanID
			err = s.control(ctx, e.Type(), req.PlanID, req.Reason)
		}
	default:
		return bus.Permanent(fmt.Errorf("the scheduler does not handle %s", e.Type()))
	}
	var refusal *refusedError
	if errors.As(err, &refusal) {
		s.log.Warn("plan request refused", "plan", planID, "type", e.Type(), "reason", refusal.reason, "error", refusal.err)
		rej := events.RejectionOf(events.ServiceScheduler, "", &e, refusal.err)
		rej.PlanID, rej.Reason = planID, refusal.reason
		if perr := s.emitPlan(ctx, planID, rej); perr != nil {
			return perr
		}
		return nil
	}
	return err
}

type refusedError struct {
	reason string
	err    error
}

func (e *refusedError) Error() string { return e.reason + ": " + e.err.Error() }

func refuse(reason string, err error) error { return &refusedError{reason: reason, err: err} }

// emitPlan publishes an event about a plan (rejected events default to the
// cluster scope; a plan's go on its plan subject).
func (s *Scheduler) emitPlan(ctx context.Context, planID string, data events.Data) error {
	if events.ValidID(planID) != nil {
		planID = "invalid"
	}
	e, err := events.New(source, planID, data)
	if err != nil {
		return err
	}
	spec, ok := events.Lookup(data.EventType())
	if !ok {
		return fmt.Errorf("emit %s: not in the contract", data.EventType())
	}
	subject, err := events.PlanEventSubject(planID, spec.Name)
	if err != nil {
		return err
	}
	_, err = s.pub.Publish(ctx, subject, e)
	return err
}

func (s *Scheduler) create(ctx context.Context, req events.PlanCreateRequested) error {
	if err := planner.Validate(req); err != nil {
		return refuse("InvalidPlan", err)
	}
	s.mu.Lock()
	inventory := make([]state.Cluster, 0, len(s.clusterSeen))
	for _, c := range s.clusterSeen {
		inventory = append(inventory, c)
	}
	var active []state.Plan
	for id, pe := range s.planCache {
		if pe.plan.IsActive() && id != req.PlanID {
			active = append(active, pe.plan)
		}
	}
	existing, exists := s.planCache[req.PlanID]
	s.mu.Unlock()
	if exists {
		if reflect.DeepEqual(existing.plan.Spec, req) {
			return nil // the same request again: already accepted
		}
		return refuse("PlanExists", fmt.Errorf("plan %s exists with a different spec; use a new plan id", req.PlanID))
	}
	ids, err := planner.Resolve(req, inventory, active)
	if err != nil {
		return refuse("InvalidSelection", err)
	}
	now := s.cfg.Now()
	if req.DryRun {
		res := planner.DryRun(req, ids, planner.Estimates{})
		eta := int64(res.EstimatedDuration / time.Second)
		var waves []string
		for _, w := range res.Waves {
			waves = append(waves, strings.Join(w, ","))
		}
		return s.emitPlan(ctx, req.PlanID, events.PlanStatusChanged{PlanID: req.PlanID, Phase: events.PlanPending,
			Reason: "DryRun", Message: events.Clip(fmt.Sprintf("dry run, nothing started: %d clusters in %d waves: %s",
				len(res.Clusters), len(res.Waves), strings.Join(waves, " | ")), 2000),
			Counts: events.PlanCounts{Total: len(ids), Pending: len(ids)}, ETASeconds: &eta})
	}
	p := planner.NewPlan(req, ids, now)
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := s.plans.Create(ctx, req.PlanID, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil // a concurrent replica stored it; its watch brings it here
		}
		return fmt.Errorf("store plan %s: %w", req.PlanID, err)
	}
	s.log.Info("plan accepted", "plan", req.PlanID, "clusters", len(ids))
	if err := s.report(ctx, p, "Accepted"); err != nil {
		return err
	}
	s.poke()
	return nil
}

// control applies pause, resume or abort with compare-and-set.
func (s *Scheduler) control(ctx context.Context, typ, planID, reason string) error {
	if events.ValidID(planID) != nil {
		return refuse("UnknownPlan", fmt.Errorf("plan id %q is not valid", planID))
	}
	now := s.cfg.Now()
	var out state.Plan
	_, _, err := bus.UpdateJSON(ctx, s.plans, planID, func(p *state.Plan, exists bool) error {
		if !exists {
			return refuse("UnknownPlan", fmt.Errorf("no plan %s", planID))
		}
		var next state.Plan
		var err error
		switch typ {
		case events.TypePlanPauseRequested:
			next, err = planner.Pause(*p, reason, now)
		case events.TypePlanResumeRequested:
			next, err = planner.Resume(*p, reason, now)
		default:
			next, err = planner.Abort(*p, reason, now)
		}
		if err != nil {
			return refuse("NotAllowed", err)
		}
		*p, out = next, next
		return nil
	})
	if err != nil {
		return err
	}
	s.poke()
	return s.report(ctx, out, "")
}
