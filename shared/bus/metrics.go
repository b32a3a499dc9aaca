package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// consumeMetrics are a Subscription's instruments. Labels: consumer (the
// durable), event_type (the CloudEvent type, "invalid" when the message
// could not be decoded) and, for failures, reason.
type consumeMetrics struct {
	handled  metric.Int64Counter
	failed   metric.Int64Counter
	dlq      metric.Int64Counter
	duration metric.Float64Histogram
}

func newConsumeMetrics(mp metric.MeterProvider) (consumeMetrics, error) {
	m := mp.Meter("ibu.dev/shared/bus")
	var c consumeMetrics
	var err, e error
	c.handled, e = m.Int64Counter("ibu.bus.events.handled", metric.WithUnit("{event}"),
		metric.WithDescription("Events whose handler succeeded, by consumer and event type."))
	err = errors.Join(err, e)
	c.failed, e = m.Int64Counter("ibu.bus.events.failed", metric.WithUnit("{event}"),
		metric.WithDescription("Deliveries that failed, by consumer, event type and reason (Retry for a transient failure that is redelivered, else the DLQ reason)."))
	err = errors.Join(err, e)
	c.dlq, e = m.Int64Counter("ibu.bus.dlq.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages copied to the dead-letter queue, by consumer and reason."))
	err = errors.Join(err, e)
	c.duration, e = m.Float64Histogram("ibu.bus.handler.duration", metric.WithUnit("s"),
		metric.WithDescription("Time a handler took, by consumer and event type."))
	err = errors.Join(err, e)
	return c, err
}

const (
	labelConsumer  = "consumer"
	labelEventType = "event_type"
	labelReason    = "reason"
	// reasonRetry labels a failed delivery that will be redelivered.
	reasonRetry = "Retry"
)

func (s *Subscription) observeHandled(ctx context.Context, eventType string, took time.Duration, err error) {
	attrs := metric.WithAttributes(attribute.String(labelConsumer, s.durable), attribute.String(labelEventType, eventType))
	s.metrics.duration.Record(ctx, took.Seconds(), attrs)
	if err == nil {
		s.metrics.handled.Add(ctx, 1, attrs)
	}
}

func (s *Subscription) observeFailed(ctx context.Context, eventType, reason string) {
	s.metrics.failed.Add(ctx, 1, metric.WithAttributes(attribute.String(labelConsumer, s.durable),
		attribute.String(labelEventType, eventType), attribute.String(labelReason, reason)))
}

func (s *Subscription) observeDLQ(ctx context.Context, reason string) {
	s.metrics.dlq.Add(ctx, 1, metric.WithAttributes(attribute.String(labelConsumer, s.durable), attribute.String(labelReason, reason)))
}

// InstrumentConn reports nc's reconnects as ibu_nats_reconnects_total,
// labelled with the connection's name, until the returned function is
// called.
func InstrumentConn(nc *nats.Conn, mp metric.MeterProvider) (unregister func() error, err error) {
	m := mp.Meter("ibu.dev/shared/bus")
	c, err := m.Int64ObservableCounter("ibu.nats.reconnects", metric.WithUnit("{reconnect}"),
		metric.WithDescription("Times the NATS connection reconnected to a server."))
	if err != nil {
		return nil, err
	}
	name := attribute.String("connection", nc.Opts.Name)
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(c, int64(nc.Stats().Reconnects), metric.WithAttributes(name))
		return nil
	}, c)
	if err != nil {
		return nil, err
	}
	return reg.Unregister, nil
}
