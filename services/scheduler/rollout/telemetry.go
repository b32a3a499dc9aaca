package rollout

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
	"ibu.dev/shared/telemetry"
)

// Traces: a cluster's pass through a plan is one trace whose ids derive
// from the plan and cluster ids (telemetry.ClusterUpgrade), so the agent
// and every service join it without coordination. The scheduler writes
// each desired stage in a span of that trace, and, when the plan ends,
// emits the traces' root spans and the plan's span, which links to them:
// spans that only the end can close, written by whichever replica sees
// the end, so a restart in between loses nothing.

// desiredSpan starts the span of a desired-stage write, in the trace of
// the cluster's upgrade.
func (s *Scheduler) desiredSpan(ctx context.Context, p state.Plan, d state.Desired) (context.Context, trace.Span) {
	ctx = telemetry.WithParent(ctx, telemetry.ClusterUpgrade(p.Spec.PlanID, d.ClusterID))
	return s.tracer.Start(ctx, "set desired "+string(d.Stage), trace.WithAttributes(
		attribute.String("ibu.cluster", d.ClusterID), attribute.String("ibu.plan", p.Spec.PlanID),
		attribute.String("ibu.stage", string(d.Stage)), attribute.Int64("ibu.generation", d.Generation)))
}

// planEnded emits the root span of every cluster that took part in the
// plan and the plan's span with links to them.
func (s *Scheduler) planEnded(ctx context.Context, p state.Plan) {
	id := p.Spec.PlanID
	start := p.StartedAt
	if start.IsZero() {
		start = p.CreatedAt
	}
	end := p.FinishedAt
	if end.IsZero() {
		end = s.cfg.Now()
	}
	planSC := telemetry.PlanSpan(id)
	var links []trace.Link
	for _, c := range p.Clusters {
		if c.State == state.ClusterSkipped || (c.Generation == 0 && len(c.Completed) == 0) {
			continue // never started: no trace
		}
		sc := telemetry.ClusterUpgrade(id, c.ClusterID)
		links = append(links, trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String("ibu.cluster", c.ClusterID)}})
		cend := c.FinishedAt
		if cend.IsZero() || cend.Before(start) {
			cend = end
		}
		_, span := s.tracer.Start(telemetry.WithFixedIDs(ctx, sc), "upgrade "+c.ClusterID,
			trace.WithNewRoot(), trace.WithTimestamp(start),
			trace.WithLinks(trace.Link{SpanContext: planSC}),
			trace.WithAttributes(attribute.String("ibu.cluster", c.ClusterID), attribute.String("ibu.plan", id),
				attribute.String("ibu.plan.cluster_state", string(c.State)), attribute.Bool("ibu.canary", c.Canary)))
		if c.State.IsFailure() {
			span.SetStatus(codes.Error, fmt.Sprintf("%s: %s", c.Reason, c.Message))
		}
		span.End(trace.WithTimestamp(cend))
	}
	_, span := s.tracer.Start(telemetry.WithFixedIDs(ctx, planSC), "plan "+id,
		trace.WithNewRoot(), trace.WithTimestamp(start), trace.WithLinks(links...),
		trace.WithAttributes(attribute.String("ibu.plan", id), attribute.String("ibu.plan.phase", string(p.Phase)),
			attribute.Int("ibu.plan.clusters", len(p.Clusters)), attribute.Int("ibu.plan.failed", p.Counts.Failed)))
	if p.Phase == events.PlanFailed || p.Phase == events.PlanAborted {
		span.SetStatus(codes.Error, fmt.Sprintf("%s: %s", p.Reason, p.Message))
	}
	span.End(trace.WithTimestamp(end))
}

// registerMetrics creates the scheduler's observable gauges, read from
// its caches at each scrape: clusters per stage and state (fleet-wide),
// and per active plan its clusters by state, progress and ETA.
func (s *Scheduler) registerMetrics(mp metric.MeterProvider) (func() error, error) {
	m := mp.Meter("ibu.dev/services/scheduler")
	var err, e error
	clusters, e := m.Int64ObservableGauge("ibu.scheduler.clusters", metric.WithUnit("{cluster}"),
		metric.WithDescription("Clusters by their reported stage and state."))
	err = errors.Join(err, e)
	plans, e := m.Int64ObservableGauge("ibu.scheduler.plans", metric.WithUnit("{plan}"),
		metric.WithDescription("Plans by phase."))
	err = errors.Join(err, e)
	planClusters, e := m.Int64ObservableGauge("ibu.scheduler.plan.clusters", metric.WithUnit("{cluster}"),
		metric.WithDescription("Clusters of each active plan by their progress (pending, in_progress, succeeded, failed, skipped)."))
	err = errors.Join(err, e)
	progress, e := m.Float64ObservableGauge("ibu.scheduler.plan.progress", metric.WithUnit("1"),
		metric.WithDescription("Share of an active plan's clusters that finished (succeeded, failed or skipped), 0 to 1."))
	err = errors.Join(err, e)
	eta, e := m.Int64ObservableGauge("ibu.scheduler.plan.eta", metric.WithUnit("s"),
		metric.WithDescription("Estimated time to the end of an active plan, when known."))
	err = errors.Join(err, e)
	if err != nil {
		return nil, err
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		type key struct{ stage, state string }
		byPos := map[key]int64{}
		byPhase := map[string]int64{}
		s.mu.Lock()
		for _, st := range s.statusSeen {
			byPos[key{string(st.Stage), string(st.State)}]++
		}
		active := make([]state.Plan, 0, len(s.planCache))
		for _, pe := range s.planCache {
			byPhase[string(pe.plan.Phase)]++
			if pe.plan.IsActive() {
				active = append(active, pe.plan)
			}
		}
		s.mu.Unlock()
		for k, n := range byPos {
			o.ObserveInt64(clusters, n, metric.WithAttributes(attribute.String("stage", k.stage), attribute.String("state", k.state)))
		}
		for ph, n := range byPhase {
			o.ObserveInt64(plans, n, metric.WithAttributes(attribute.String("phase", ph)))
		}
		for _, p := range active {
			c := p.Counts
			plan := attribute.String("plan", p.Spec.PlanID)
			for st, n := range map[string]int{"pending": c.Pending, "in_progress": c.InProgress, "succeeded": c.Succeeded, "failed": c.Failed, "skipped": c.Skipped} {
				o.ObserveInt64(planClusters, int64(n), metric.WithAttributes(plan, attribute.String("state", st)))
			}
			if c.Total > 0 {
				o.ObserveFloat64(progress, float64(c.Succeeded+c.Failed+c.Skipped)/float64(c.Total), metric.WithAttributes(plan))
			}
			if p.ETASeconds != nil {
				o.ObserveInt64(eta, *p.ETASeconds, metric.WithAttributes(plan))
			}
		}
		return nil
	}, clusters, plans, planClusters, progress, eta)
	if err != nil {
		return nil, err
	}
	return reg.Unregister, nil
}
