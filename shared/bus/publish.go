package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"ibu.dev/shared/events"
	"ibu.dev/shared/telemetry"
)

// PublisherOption configures a Publisher.
type PublisherOption func(*publisherOptions)

type publisherOptions struct {
	logger   *slog.Logger
	attempts int
	timeout  time.Duration
	backoff  time.Duration
	validate bool
	tracer   trace.TracerProvider
}

// PublishTracerProvider sets where publish spans go; default the global
// otel provider.
func PublishTracerProvider(tp trace.TracerProvider) PublisherOption {
	return func(o *publisherOptions) { o.tracer = tp }
}

// PublishLogger sets the logger; default slog.Default().
func PublishLogger(l *slog.Logger) PublisherOption {
	return func(o *publisherOptions) { o.logger = l }
}

// PublishAttempts sets how many times Publish tries before giving up on
// timeouts and "no responders" (e.g. during a leader election). Default 5.
func PublishAttempts(n int) PublisherOption {
	return func(o *publisherOptions) { o.attempts = max(1, n) }
}

// PublishTimeout bounds the wait for each attempt's ack. Default 5s.
func PublishTimeout(d time.Duration) PublisherOption {
	return func(o *publisherOptions) { o.timeout = d }
}

// PublishBackoff sets the first pause between attempts; it doubles per
// attempt, with jitter, up to 2s. Default 100ms.
func PublishBackoff(d time.Duration) PublisherOption {
	return func(o *publisherOptions) { o.backoff = d }
}

// PublishValidate makes the publisher run events.Validate on every event
// before sending it. Off by default: events.New already validated it.
func PublishValidate() PublisherOption {
	return func(o *publisherOptions) { o.validate = true }
}

// Publisher sends CloudEvents to JetStream in binary content mode with the
// event id as Nats-Msg-Id, so a re-publish within the streams' duplicate
// window is dropped by the server.
type Publisher struct {
	js     jetstream.JetStream
	o      publisherOptions
	tracer trace.Tracer
}

// NewPublisher returns a Publisher using js.
func NewPublisher(js jetstream.JetStream, opts ...PublisherOption) *Publisher {
	o := publisherOptions{
		logger:   slog.Default(),
		attempts: 5,
		timeout:  5 * time.Second,
		backoff:  100 * time.Millisecond,
	}
	for _, f := range opts {
		f(&o)
	}
	if o.tracer == nil {
		o.tracer = otel.GetTracerProvider()
	}
	return &Publisher{js: js, o: o, tracer: o.tracer.Tracer("ibu.dev/shared/bus")}
}

// prepare adds the trace context of ctx (unless e carries one already),
// optionally validates, and encodes e.
func (p *Publisher) prepare(ctx context.Context, subject string, e cloudevents.Event) (*nats.Msg, error) {
	if e.Context == nil {
		return nil, fmt.Errorf("publish %s: event has no context", subject)
	}
	if _, ok := e.Extensions()[telemetry.ExtTraceParent]; !ok && trace.SpanContextFromContext(ctx).IsValid() {
		e = e.Clone() // the caller's event shares its context with ours
		telemetry.InjectEvent(ctx, &e)
	}
	if p.o.validate {
		if err := events.Validate(e); err != nil {
			return nil, fmt.Errorf("publish %s: %w", subject, err)
		}
	}
	msg, err := ToMsg(subject, e)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", subject, err)
	}
	return msg, nil
}

// Publish sends e on subject and waits for JetStream's ack. Timeouts and
// "no responders" are retried with backoff under the same message id, so a
// retry of a publish that did land is reported as PubAck.Duplicate instead
// of being stored twice.
func (p *Publisher) Publish(ctx context.Context, subject string, e cloudevents.Event) (_ *jetstream.PubAck, err error) {
	ctx, span := p.span(ctx, subject, e)
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	msg, err := p.prepare(ctx, subject, e)
	if err != nil {
		return nil, err
	}
	pause := p.o.backoff
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.o.timeout)
		ack, err := p.js.PublishMsg(actx, msg)
		cancel()
		if err == nil {
			return ack, nil
		}
		if attempt >= p.o.attempts || ctx.Err() != nil || !retryablePublishError(err) {
			return nil, fmt.Errorf("publish %s (event %s, attempt %d): %w", subject, e.ID(), attempt, err)
		}
		p.o.logger.DebugContext(ctx, "publish failed, retrying",
			"subject", subject, "event_id", e.ID(), "attempt", attempt, "error", err)
		if err := sleepCtx(ctx, jitter(pause)); err != nil {
			return nil, fmt.Errorf("publish %s (event %s): %w", subject, e.ID(), err)
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// PublishAsync sends e on subject without waiting; the returned future
// reports the ack. Use it for bulk publishing and wait for
// PublishAsyncComplete (or every future) before relying on the events being
// stored. There is no retry: on error, publish the same event again (same
// id, so it is deduplicated).
func (p *Publisher) PublishAsync(ctx context.Context, subject string, e cloudevents.Event) (jetstream.PubAckFuture, error) {
	ctx, span := p.span(ctx, subject, e)
	defer span.End()
	msg, err := p.prepare(ctx, subject, e)
	if err != nil {
		return nil, err
	}
	f, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		return nil, fmt.Errorf("publish async %s (event %s): %w", subject, e.ID(), err)
	}
	return f, nil
}

// PublishAsyncComplete returns a channel closed when every async publish of
// the underlying JetStream context has been acked or has failed.
func (p *Publisher) PublishAsyncComplete() <-chan struct{} { return p.js.PublishAsyncComplete() }

// span starts a producer span for a publish that is part of a trace (an
// event published outside any trace starts none), with the messaging
// attributes of OpenTelemetry's semantic conventions. The event carries
// this span's context, so the consumers' spans are its children.
func (p *Publisher) span(ctx context.Context, subject string, e cloudevents.Event) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx)
	}
	if e.Context != nil {
		if _, ok := e.Extensions()[telemetry.ExtTraceParent]; ok {
			return ctx, trace.SpanFromContext(ctx) // the event already names its parent
		}
	}
	ctx, span := p.tracer.Start(ctx, "send "+subject, trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		attrs := []attribute.KeyValue{
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.operation.name", "publish"),
			attribute.String("messaging.destination.name", subject),
		}
		if e.Context != nil {
			attrs = append(attrs, attribute.String("messaging.message.id", e.ID()),
				attribute.String("cloudevents.event_id", e.ID()), attribute.String("cloudevents.event_type", e.Type()),
				attribute.String("cloudevents.event_subject", e.Subject()))
		}
		attrs = append(attrs, aboutAttrs(subject)...)
		span.SetAttributes(attrs...)
	}
	return ctx, span
}

// aboutAttrs are the ibu.cluster and ibu.plan attributes of a span about
// a message on subject.
func aboutAttrs(subject string) []attribute.KeyValue {
	cluster, plan := aboutOf(subject)
	var out []attribute.KeyValue
	if cluster != "" {
		out = append(out, attribute.String("ibu.cluster", cluster))
	}
	if plan != "" {
		out = append(out, attribute.String("ibu.plan", plan))
	}
	return out
}

// retryablePublishError reports errors after which the same message may
// well succeed: a lost ack, no stream leader for a moment, a reconnect.
func retryablePublishError(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 503 {
		return true // JetStream temporarily unavailable (no quorum yet)
	}
	return false
}

// Transient reports whether err is one a JetStream cluster gives while it
// elects a leader or a server restarts (a timeout, no responders, 503):
// worth retrying the same call for a while.
func Transient(err error) bool { return retryablePublishError(err) }
