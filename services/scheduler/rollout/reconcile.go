package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"

	"ibu.dev/services/scheduler/planner"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

// reconcileAll drives every active plan this replica owns or may take.
func (s *Scheduler) reconcileAll(ctx context.Context) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.planCache))
	for id, pe := range s.planCache {
		if pe.plan.IsActive() {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if err := s.reconcile(ctx, id); err != nil && ctx.Err() == nil {
			s.log.Warn("reconcile plan", "plan", id, "error", err)
		}
	}
}

// reconcile runs the planner over one plan and, if this replica may own
// the plan, stores the result with compare-and-set before it writes any
// desired stage: a replica that loses the race writes nothing.
func (s *Scheduler) reconcile(ctx context.Context, id string) error {
	now := s.cfg.Now()
	s.mu.Lock()
	pe, ok := s.planCache[id]
	if !ok || !pe.plan.IsActive() {
		s.mu.Unlock()
		return nil
	}
	p := pe.plan
	if p.Owner != "" && p.Owner != s.cfg.Name && now.Before(p.LeaseUntil) {
		s.mu.Unlock()
		return nil // another live replica drives it
	}
	statuses := make(map[string]state.Status, len(p.Clusters))
	desired := make(map[string]int64, len(p.Clusters))
	for _, c := range p.Clusters {
		if st, ok := s.statusSeen[c.ClusterID]; ok {
			statuses[c.ClusterID] = st
		}
		desired[c.ClusterID] = s.desiredGen[c.ClusterID]
	}
	s.mu.Unlock()

	next, writes := planner.Reconcile(p, statuses, desired, now)
	renew := p.Owner != s.cfg.Name || p.LeaseUntil.Sub(now) < s.cfg.LeaseTTL/2
	if !renew && reflect.DeepEqual(next, p) && len(writes) == 0 {
		return nil
	}
	next.Owner = s.cfg.Name
	if renew || !reflect.DeepEqual(next, p) {
		next.LeaseUntil = now.Add(s.cfg.LeaseTTL)
	}
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	rev, err := s.plans.Update(ctx, id, b, pe.rev)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil // someone else wrote the plan first; the watch brings it
		}
		return err
	}
	s.mu.Lock()
	if cur := s.planCache[id]; cur.rev < rev {
		s.planCache[id] = planEntry{plan: next, rev: rev}
	}
	s.mu.Unlock()
	if !next.IsActive() {
		s.planEnded(ctx, next)
	}
	for _, w := range writes {
		if err := s.writeDesired(ctx, next, w); err != nil {
			return err
		}
	}
	return s.report(ctx, next, "")
}

// writeDesired sets a cluster's desired stage, unless a generation at least
// as new is already there (a write repeated after a crash).
func (s *Scheduler) writeDesired(ctx context.Context, p state.Plan, w planner.DesiredWrite) (err error) {
	s.mu.Lock()
	have := s.desiredGen[w.ClusterID]
	s.mu.Unlock()
	if have >= w.Generation {
		return nil
	}
	spec := p.Spec
	d := state.Desired{ClusterID: w.ClusterID, Stage: w.Stage, Generation: w.Generation, PlanID: spec.PlanID,
		PullSecretRef: spec.PullSecretRef, OADPContent: spec.OADPContent, ExtraManifests: spec.ExtraManifests,
		AutoRollbackOnFailure: spec.AutoRollbackOnFailure}
	if w.Stage == stages.Prep || w.Stage == stages.Upgrade {
		d.SeedImage, d.SeedVersion = spec.SeedImage, spec.SeedVersion
	}
	ctx, span := s.desiredSpan(ctx, p, d)
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	b, err := state.EncodeDesired(d)
	if err != nil {
		return err
	}
	if _, err := s.desired.Put(ctx, w.ClusterID, b); err != nil {
		return err
	}
	s.mu.Lock()
	if s.desiredGen[w.ClusterID] < w.Generation {
		s.desiredGen[w.ClusterID] = w.Generation
	}
	s.mu.Unlock()
	return s.emit(ctx, w.ClusterID, d)
}

// report publishes the plan's status when its phase, counts, step or ETA
// changed since the last report.
func (s *Scheduler) report(ctx context.Context, p state.Plan, reason string) error {
	ev := events.PlanStatusChanged{PlanID: p.Spec.PlanID, Phase: p.Phase, Reason: p.Reason, Message: p.Message,
		Counts: p.Counts, CurrentStep: p.CurrentStep, ETASeconds: p.ETASeconds}
	if reason != "" {
		ev.Reason = reason
	}
	s.mu.Lock()
	last, seen := s.lastReport[p.Spec.PlanID]
	s.lastReport[p.Spec.PlanID] = ev
	s.mu.Unlock()
	if seen && reflect.DeepEqual(last, ev) {
		return nil
	}
	return s.emit(ctx, p.Spec.PlanID, ev)
}

// emit publishes an event about a cluster or a plan.
func (s *Scheduler) emit(ctx context.Context, id string, data events.Data) error {
	return s.pub.Emit(ctx, source, id, data)
}
