package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"ibu.dev/shared/events"
	"ibu.dev/shared/telemetry"
)

// Handler processes one validated event. Returning nil acks the message;
// an error wrapped by Permanent dead-letters it at once; any other error
// retries it later with backoff, up to MaxDeliver deliveries.
type Handler func(ctx context.Context, e cloudevents.Event) error

// Headers added to a dead-lettered copy of a message.
const (
	HeaderDLQReason    = "Ibu-Dlq-Reason"
	HeaderDLQError     = "Ibu-Dlq-Error"
	HeaderDLQStream    = "Ibu-Dlq-Stream"
	HeaderDLQSubject   = "Ibu-Dlq-Subject"
	HeaderDLQDelivered = "Ibu-Dlq-Delivered"
	HeaderDLQSequence  = "Ibu-Dlq-Sequence"
	HeaderDLQConsumer  = "Ibu-Dlq-Consumer"
	HeaderDLQTime      = "Ibu-Dlq-Time"
	// HeaderDLQTruncated is set, to the original payload size, when the
	// payload had to be dropped to fit the DLQ.
	HeaderDLQTruncated = "Ibu-Dlq-Truncated"
)

// DLQ reasons set by the consumer itself. Decode failures use
// events.Reason (UnknownType, SchemaMismatch, ...).
const (
	ReasonPermanent          = "Permanent"
	ReasonHandlerPanic       = "HandlerPanic"
	ReasonMaxDeliverExceeded = "MaxDeliverExceeded"
)

// Permanent marks err as not worth retrying: the consumer terminates the
// message and copies it to the DLQ. The DLQ reason is "Permanent" unless
// err (or an error it wraps) has a method Reason() string.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return "permanent: " + e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// reasoner is implemented by errors that name their own DLQ reason.
type reasoner interface{ Reason() string }

type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string  { return fmt.Sprintf("handler panic: %v", e.value) }
func (e *panicError) Reason() string { return ReasonHandlerPanic }

// ConsumeOption configures Consume.
type ConsumeOption func(*consumeOptions)

type consumeOptions struct {
	logger         *slog.Logger
	service        string
	maxDeliver     int
	backoff        []time.Duration
	ackWait        time.Duration
	inProgress     time.Duration
	concurrency    int
	batch          int
	filterSubjects []string
	tracer         trace.TracerProvider
	meter          metric.MeterProvider
	opTimeout      time.Duration
	rejectedSource string
}

// ConsumeLogger sets the logger; default slog.Default().
func ConsumeLogger(l *slog.Logger) ConsumeOption {
	return func(o *consumeOptions) { o.logger = l }
}

// ConsumeService names the consuming service; rejected messages go to
// events.DLQSubject(service). Default: the durable name.
func ConsumeService(name string) ConsumeOption {
	return func(o *consumeOptions) { o.service = name }
}

// ConsumeMaxDeliver bounds how many times a failing message is handed to
// the handler before it is dead-lettered as MaxDeliverExceeded. Default 5.
func ConsumeMaxDeliver(n int) ConsumeOption {
	return func(o *consumeOptions) { o.maxDeliver = max(1, n) }
}

// ConsumeBackoff sets the redelivery delay after the n-th failed delivery
// (the last entry repeats). Default 1s, 5s, 15s, 30s, 60s.
func ConsumeBackoff(delays ...time.Duration) ConsumeOption {
	return func(o *consumeOptions) { o.backoff = delays }
}

// ConsumeAckWait sets how long the server waits for an ack (or an
// in-progress signal) before redelivering. Default 30s.
func ConsumeAckWait(d time.Duration) ConsumeOption {
	return func(o *consumeOptions) { o.ackWait = d }
}

// ConsumeInProgress sets how often a running handler's message is marked
// in progress, which resets the server's AckWait. Default AckWait/3.
func ConsumeInProgress(d time.Duration) ConsumeOption {
	return func(o *consumeOptions) { o.inProgress = d }
}

// ConsumeConcurrency sets how many handlers run at once. Default 1.
func ConsumeConcurrency(n int) ConsumeOption {
	return func(o *consumeOptions) { o.concurrency = max(1, n) }
}

// ConsumeBatch sets how many messages the client buffers ahead of the
// handlers. Buffered messages age towards AckWait, so keep it small for
// slow handlers. Default 4×concurrency, at least 16.
func ConsumeBatch(n int) ConsumeOption {
	return func(o *consumeOptions) { o.batch = n }
}

// ConsumeFilterSubjects restricts the durable consumer to these subjects.
func ConsumeFilterSubjects(subjects ...string) ConsumeOption {
	return func(o *consumeOptions) { o.filterSubjects = subjects }
}

// ConsumeTracerProvider sets where consumer spans go; default the global
// otel provider.
func ConsumeTracerProvider(tp trace.TracerProvider) ConsumeOption {
	return func(o *consumeOptions) { o.tracer = tp }
}

// ConsumeMeterProvider sets where the consumer's metrics go (events
// handled and failed by type, DLQ copies, handler latency); default the
// global otel provider.
func ConsumeMeterProvider(mp metric.MeterProvider) ConsumeOption {
	return func(o *consumeOptions) { o.meter = mp }
}

// ConsumeRejectedEvents makes the consumer also publish a
// dev.ibu.rejected.v1 event (events.Rejected), with the given CloudEvents
// source, for every message it dead-letters that names a cluster or plan
// in its NATS subject, so the refusal shows in that cluster's or plan's
// event history. A refused Rejected event never produces another one.
func ConsumeRejectedEvents(source string) ConsumeOption {
	return func(o *consumeOptions) { o.rejectedSource = source }
}

// dlqGraceDeliveries: the server allows this many deliveries beyond
// MaxDeliver, so a message whose DLQ copy could not be written (or whose
// handler crashed the process) comes back and is dead-lettered then, rather
// than being stranded un-acked in a work queue.
const dlqGraceDeliveries = 3

// Subscription is a running Consume loop.
type Subscription struct {
	o        consumeOptions
	handler  Handler
	js       jetstream.JetStream
	cons     jetstream.Consumer
	stream   string
	durable  string
	baseCtx  context.Context
	tracer   trace.Tracer
	metrics  consumeMetrics
	cc       jetstream.ConsumeContext
	work     chan jetstream.Msg // to the handler workers
	quit     chan struct{}      // closed when the workers must exit
	workers  sync.WaitGroup
	stopping atomic.Bool
	stopOnce sync.Once
	stopped  chan struct{}
	dlq      string
}

// Consume creates or updates the durable pull consumer durable on stream
// (explicit ack, MaxDeliver, AckWait and filter subjects from opts) and
// hands every message to h. A message that is not a valid CloudEvent is
// terminated and copied to the DLQ. The loop runs until Stop is called or
// ctx is cancelled; ctx (with the event's trace context) is passed to h.
func Consume(ctx context.Context, js jetstream.JetStream, stream, durable string, h Handler, opts ...ConsumeOption) (*Subscription, error) {
	if h == nil {
		return nil, errors.New("consume: handler is nil")
	}
	o := consumeOptions{
		logger:      slog.Default(),
		service:     durable,
		maxDeliver:  5,
		backoff:     []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute},
		ackWait:     30 * time.Second,
		concurrency: 1,
		opTimeout:   5 * time.Second,
	}
	for _, f := range opts {
		f(&o)
	}
	if o.inProgress <= 0 {
		o.inProgress = o.ackWait / 3
	}
	if o.batch <= 0 {
		o.batch = max(4*o.concurrency, 16)
	}
	if o.tracer == nil {
		o.tracer = otel.GetTracerProvider()
	}
	if o.meter == nil {
		o.meter = otel.GetMeterProvider()
	}
	metrics, err := newConsumeMetrics(o.meter)
	if err != nil {
		return nil, fmt.Errorf("consume %s/%s: metrics: %w", stream, durable, err)
	}
	o.logger = o.logger.With("stream", stream, "consumer", durable)
	dlqSubject, err := events.DLQSubject(o.service)
	if err != nil {
		return nil, fmt.Errorf("consume %s/%s: %w (set ConsumeService)", stream, durable, err)
	}

	cons, err := EnsureConsumer(ctx, js, stream, ConsumerConfig{
		Durable:        durable,
		FilterSubjects: o.filterSubjects,
		AckWait:        o.ackWait,
		MaxDeliver:     o.maxDeliver + dlqGraceDeliveries,
		MaxAckPending:  max(1000, 2*o.batch),
	})
	if err != nil {
		return nil, fmt.Errorf("consume %s/%s: %w", stream, durable, err)
	}
	s := &Subscription{
		o:       o,
		handler: h,
		js:      js,
		cons:    cons,
		stream:  stream,
		durable: durable,
		baseCtx: ctx,
		tracer:  o.tracer.Tracer("ibu.dev/shared/bus"),
		metrics: metrics,
		work:    make(chan jetstream.Msg),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
		dlq:     dlqSubject,
	}
	for range o.concurrency {
		s.workers.Go(s.worker)
	}
	cc, err := cons.Consume(s.dispatch,
		jetstream.PullMaxMessages(o.batch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if s.stopping.Load() {
				return
			}
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				o.logger.Debug("consume: missed heartbeat", "error", err)
				return
			}
			o.logger.Warn("consume error", "error", err)
		}))
	if err != nil {
		close(s.quit)
		s.workers.Wait()
		return nil, fmt.Errorf("consume %s/%s: %w", stream, durable, err)
	}
	s.cc = cc
	go func() {
		select {
		case <-ctx.Done():
			s.Stop()
		case <-s.stopped:
		}
	}()
	return s, nil
}

// Consumer returns the underlying JetStream consumer (for Info).
func (s *Subscription) Consumer() jetstream.Consumer { return s.cons }

// Stop stops fetching, hands buffered messages that have not started back
// to the server (Nak) and waits for running handlers to finish. It is safe
// to call more than once and from several goroutines, but not from a
// handler (it would wait for itself).
func (s *Subscription) Stop() {
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		s.cc.Drain()
		select {
		case <-s.cc.Closed():
		case <-time.After(s.o.ackWait + s.o.opTimeout):
			s.o.logger.Warn("consume: drain did not finish, stopping")
			s.cc.Stop()
		}
		close(s.quit)
		s.workers.Wait()
		close(s.stopped)
	})
	<-s.stopped
}

// dispatch runs on the subscription's goroutine: it hands the message to a
// free worker, waiting for one, or back to the server when stopping.
func (s *Subscription) dispatch(m jetstream.Msg) {
	if s.stopping.Load() {
		_ = m.Nak()
		return
	}
	select {
	case s.work <- m:
	case <-s.quit:
		_ = m.Nak()
	}
}

// worker is a handler worker; Consume starts ConsumeConcurrency of them.
func (s *Subscription) worker() {
	for {
		select {
		case m := <-s.work:
			if s.stopping.Load() {
				_ = m.Nak()
				continue
			}
			s.process(m)
		case <-s.quit:
			return
		}
	}
}

// delivery is one message being processed; its logger is built only when
// something is logged.
type delivery struct {
	s         *Subscription
	m         jetstream.Msg
	delivered uint64
	seq       uint64
	e         *cloudevents.Event
}

func (d *delivery) log() *slog.Logger {
	l := d.s.o.logger.With("subject", d.m.Subject(), "stream_seq", d.seq, "delivered", d.delivered)
	if d.e != nil {
		l = l.With("event_id", d.e.ID(), "event_type", d.e.Type())
	}
	return l
}

func (s *Subscription) process(m jetstream.Msg) {
	d := &delivery{s: s, m: m, delivered: 1}
	if md, err := m.Metadata(); err == nil {
		d.delivered, d.seq = md.NumDelivered, md.Sequence.Stream
	}

	e, err := FromHeaders(m.Headers(), m.Data())
	if err == nil {
		err = events.CheckSubjectCluster(m.Subject(), e)
	}
	if err != nil {
		reason := events.Reason(err)
		d.log().Warn("rejecting malformed message", "reason", reason, "error", err)
		s.reject(d, reason, err)
		return
	}
	d.e = &e
	if d.delivered > uint64(s.o.maxDeliver) {
		// Earlier deliveries ended without a verdict (crash, lost DLQ
		// write): do not run the handler again.
		s.reject(d, ReasonMaxDeliverExceeded,
			fmt.Errorf("delivered %d times, limit %d", d.delivered, s.o.maxDeliver))
		return
	}

	ctx := telemetry.ExtractEvent(s.baseCtx, e)
	ctx, span := s.tracer.Start(ctx, "process "+s.stream, trace.WithSpanKind(trace.SpanKindConsumer))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", m.Subject()),
			attribute.String("messaging.consumer.group.name", s.durable),
			attribute.String("messaging.message.id", e.ID()),
			attribute.Int64("messaging.message.delivery_count", int64(d.delivered)),
			attribute.String("cloudevents.event_id", e.ID()),
			attribute.String("cloudevents.event_type", e.Type()),
			attribute.String("cloudevents.event_source", e.Source()),
			attribute.String("cloudevents.event_subject", e.Subject()),
		)
		span.SetAttributes(aboutAttrs(m.Subject())...)
	}

	stopProgress := s.keepInProgress(m)
	began := time.Now()
	err = s.call(ctx, e)
	stopProgress()
	s.observeHandled(ctx, e.Type(), time.Since(began), err)

	switch {
	case err == nil:
		actx, cancel := s.opContext()
		defer cancel()
		if aerr := m.DoubleAck(actx); aerr != nil {
			// The handler succeeded; the message will come back and the
			// idempotent handler will see it again.
			d.log().Warn("ack failed", "error", aerr)
			span.RecordError(aerr)
		}
		return
	case IsPermanent(err) || isPanic(err):
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		reason := permanentReason(err)
		if pe := (*panicError)(nil); errors.As(err, &pe) {
			d.log().Error("handler panicked", "panic", fmt.Sprint(pe.value), "stack", string(pe.stack))
		} else {
			d.log().Warn("handler failed permanently", "reason", reason, "error", err)
		}
		s.reject(d, reason, err)
	case d.delivered >= uint64(s.o.maxDeliver):
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		d.log().Warn("handler failed on last delivery", "error", err)
		s.reject(d, ReasonMaxDeliverExceeded, err)
	case s.baseCtx.Err() != nil:
		// Shutting down: let another replica have it now.
		_ = m.Nak()
	default:
		s.observeFailed(ctx, e.Type(), reasonRetry)
		span.RecordError(err)
		delay := s.backoff(d.delivered)
		d.log().Info("handler failed, retrying later", "delay", delay, "error", err)
		if nerr := m.NakWithDelay(delay); nerr != nil {
			d.log().Warn("nak failed", "error", nerr)
		}
	}
}

// call runs the handler, turning a panic into an error.
func (s *Subscription) call(ctx context.Context, e cloudevents.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: debug.Stack()}
		}
	}()
	return s.handler(ctx, e)
}

func isPanic(err error) bool {
	var pe *panicError
	return errors.As(err, &pe)
}

func permanentReason(err error) string {
	var r reasoner
	if errors.As(err, &r) {
		if s := r.Reason(); s != "" {
			return s
		}
	}
	var de *events.DecodeError
	if errors.As(err, &de) {
		return events.Reason(err)
	}
	return ReasonPermanent
}

// backoff is the redelivery delay after the given (failed) delivery.
func (s *Subscription) backoff(delivered uint64) time.Duration {
	if len(s.o.backoff) == 0 {
		return 0
	}
	i := int(min(delivered, uint64(len(s.o.backoff)))) - 1
	return s.o.backoff[max(i, 0)]
}

func (s *Subscription) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(s.baseCtx), s.o.opTimeout)
}

// keepInProgress marks m in progress every InProgress interval until the
// returned function is called.
func (s *Subscription) keepInProgress(m jetstream.Msg) (stop func()) {
	var (
		mu   sync.Mutex
		done bool
		t    *time.Timer
	)
	mu.Lock()
	t = time.AfterFunc(s.o.inProgress, func() {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return
		}
		if err := m.InProgress(); err != nil {
			s.o.logger.Debug("in-progress ack failed", "subject", m.Subject(), "error", err)
		}
		t.Reset(s.o.inProgress)
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		done = true
		t.Stop()
		mu.Unlock()
	}
}

// reject copies m to the service's DLQ subject with the reason, then
// terminates it. If the copy cannot be written the message is Nak'ed so
// that a later delivery tries again; nothing is dropped silently.
func (s *Subscription) reject(d *delivery, reason string, cause error) {
	if err := s.publishDLQ(d, reason, cause); err != nil {
		d.log().Error("dead-lettering failed, will retry", "reason", reason, "error", err)
		_ = d.m.NakWithDelay(s.backoff(d.delivered))
		return
	}
	eventType := "invalid"
	if d.e != nil {
		eventType = d.e.Type()
	}
	s.observeFailed(s.baseCtx, eventType, reason)
	s.observeDLQ(s.baseCtx, reason)
	if err := d.m.TermWithReason(reason); err != nil {
		d.log().Warn("term failed", "error", err)
	}
	if s.o.rejectedSource != "" {
		if err := s.publishRejected(d, reason, cause); err != nil {
			d.log().Warn("publishing rejected event failed", "error", err)
		}
	}
}

// publishRejected announces a refusal on the event subject of the cluster
// or plan named by the refused message's subject, if any.
func (s *Subscription) publishRejected(d *delivery, reason string, cause error) error {
	if d.e != nil && d.e.Type() == events.TypeRejected {
		return nil
	}
	cluster, plan := aboutOf(d.m.Subject())
	if cluster == "" && plan == "" {
		return nil
	}
	r := events.RejectionOf(s.o.service, d.m.Subject(), d.e, &reasonedError{reason, cause})
	r.ClusterID, r.PlanID = cluster, plan
	subject, err := r.Subject()
	if err != nil {
		return err
	}
	e, err := events.NewRejected(s.o.rejectedSource, r)
	if err != nil {
		return err
	}
	// One rejected event per refused stream message, however often this runs.
	e.SetID("rejected." + s.durable + "." + s.stream + "." + strconv.FormatUint(d.seq, 10))
	msg, err := ToMsg(subject, e)
	if err != nil {
		return err
	}
	ctx, cancel := s.opContext()
	defer cancel()
	if _, err := s.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

// reasonedError gives cause the reason the consumer decided on.
type reasonedError struct {
	reason string
	err    error
}

func (e *reasonedError) Error() string  { return e.err.Error() }
func (e *reasonedError) Unwrap() error  { return e.err }
func (e *reasonedError) Reason() string { return e.reason }

// aboutOf extracts the cluster or plan a message subject is about:
// ibu.event.<cluster>.<name>, ibu.event.plan.<plan>.<name>,
// ibu.task.<service>.<cluster>. Invalid ids yield nothing.
func aboutOf(subject string) (cluster, plan string) {
	tok := strings.Split(subject, ".")
	if len(tok) < 4 || tok[0] != "ibu" {
		return "", ""
	}
	switch {
	case tok[1] == "event" && tok[2] == "plan" && len(tok) >= 5:
		plan = tok[3]
	case tok[1] == "event":
		cluster = tok[2]
	case tok[1] == "task":
		cluster = tok[3]
	}
	if cluster != "" && events.ValidID(cluster) != nil {
		cluster = ""
	}
	if plan != "" && events.ValidID(plan) != nil {
		plan = ""
	}
	return cluster, plan
}

func (s *Subscription) publishDLQ(d *delivery, reason string, cause error) error {
	m, delivered, seq := d.m, d.delivered, d.seq
	h := make(nats.Header, len(m.Headers())+10)
	for k, vs := range m.Headers() {
		// Nats-* headers steer JetStream (dedup id, expected sequences,
		// rollups); the copy gets its own.
		if hasPrefixFold(k, "Nats-") {
			continue
		}
		h[k] = append([]string(nil), vs...)
	}
	h[HeaderDLQReason] = []string{reason}
	h[HeaderDLQError] = []string{headerSafe(cause.Error(), 1024)}
	h[HeaderDLQStream] = []string{s.stream}
	h[HeaderDLQSubject] = []string{m.Subject()}
	h[HeaderDLQDelivered] = []string{strconv.FormatUint(delivered, 10)}
	h[HeaderDLQSequence] = []string{strconv.FormatUint(seq, 10)}
	h[HeaderDLQConsumer] = []string{s.durable}
	h[HeaderDLQTime] = []string{time.Now().UTC().Format(time.RFC3339Nano)}
	// One DLQ entry per (consumer, stream message), however often this runs.
	h[HeaderMsgID] = []string{"dlq." + s.durable + "." + s.stream + "." + strconv.FormatUint(seq, 10)}
	msg := &nats.Msg{Subject: s.dlq, Header: h, Data: m.Data()}

	ctx, cancel := s.opContext()
	defer cancel()
	_, err := s.js.PublishMsg(ctx, msg)
	if err != nil && (errors.Is(err, nats.ErrMaxPayload) || isMessageTooLarge(err)) {
		// Keep the evidence that fits: headers and the reason.
		h[HeaderDLQTruncated] = []string{strconv.Itoa(len(m.Data()))}
		msg.Data = nil
		_, err = s.js.PublishMsg(ctx, msg)
	}
	if err != nil {
		return fmt.Errorf("publish DLQ copy to %s: %w", msg.Subject, err)
	}
	return nil
}

func isMessageTooLarge(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

// headerSafe makes s fit in one header value: no control characters, at
// most n bytes.
func headerSafe(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}
