package agent

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// agentMetrics are the node agent's instruments. The cluster is the
// agent's own (a resource of its process), never a label.
type agentMetrics struct {
	stage       metric.Float64Histogram
	step        metric.Float64Histogram
	pulledBytes metric.Int64Counter
	images      metric.Int64Counter
}

func newAgentMetrics(mp metric.MeterProvider) (agentMetrics, error) {
	m := mp.Meter("ibu.dev/node-agent")
	var am agentMetrics
	var err, e error
	am.stage, e = m.Float64Histogram("ibu.agent.stage.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of a stage run (action) from its start to its end, by stage, action and result."))
	err = errors.Join(err, e)
	am.step, e = m.Float64Histogram("ibu.agent.step.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of one step of a stage, by stage, step and result."))
	err = errors.Join(err, e)
	am.pulledBytes, e = m.Int64Counter("ibu.agent.precache.pulled", metric.WithUnit("By"),
		metric.WithDescription("Bytes of container images pulled by precache."))
	err = errors.Join(err, e)
	am.images, e = m.Int64Counter("ibu.agent.precache.images", metric.WithUnit("{image}"),
		metric.WithDescription("Container images precache pulled, by result (pulled or failed)."))
	err = errors.Join(err, e)
	return am, err
}

func result(err error) string {
	if err != nil {
		return "failed"
	}
	return "succeeded"
}

func (m agentMetrics) stepDone(ctx context.Context, stage, step string, took time.Duration, err error) {
	m.step.Record(ctx, took.Seconds(), metric.WithAttributes(attribute.String("stage", stage),
		attribute.String("step", step), attribute.String("result", result(err))))
}

func (m agentMetrics) stageDone(ctx context.Context, stage, action string, took time.Duration, err error) {
	m.stage.Record(ctx, took.Seconds(), metric.WithAttributes(attribute.String("stage", stage),
		attribute.String("action", action), attribute.String("result", result(err))))
}

func (m agentMetrics) imagePulled(ctx context.Context, bytes int64, err error) {
	if err != nil {
		m.images.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "failed")))
		return
	}
	m.images.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "pulled")))
	m.pulledBytes.Add(ctx, bytes)
}
