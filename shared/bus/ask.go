package bus

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/events"
)

// ErrServiceFailed is wrapped by the error of an Ask answered with the
// pair's failed answer; the error is a *ServiceError.
var ErrServiceFailed = errors.New("service reported failure")

// ErrNoAnswer is wrapped by the error of an Ask that got no answer before
// its deadline.
var ErrNoAnswer = errors.New("no answer")

// ServiceError is a failed answer to an Ask.
type ServiceError struct {
	Service string // who answered (the pair's Service)
	Reason  string // CamelCase, from the answer
	Message string
	// Answer is the failed answer's data, a pointer to the pair's failed
	// type (e.g. *events.SeedCaptureFailed).
	Answer events.Failure
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("%s: %s: %s", ErrServiceFailed, e.Reason, e.Message)
}

func (e *ServiceError) Unwrap() error { return ErrServiceFailed }

// Request is what Ask sends and how long it waits.
type Request struct {
	// Source is the CloudEvents source of the request.
	Source string
	// Cluster is the cluster the request is about: the request travels on
	// its task subject and the answer on its event subject.
	Cluster string
	// ID is the request's event id, fixed per request, so that a request
	// re-sent after a crash is dropped by JetStream's dedup; the answer's
	// id is events.AnswerID(ID).
	ID string
	// Data is the request; its type must be the request of a pair of the
	// contract (events.AskOf).
	Data events.Data
	// Since is when answers are looked for from: an answer given before
	// (e.g. while the asker was down) is found. Zero: a second before now.
	Since time.Time
	// Timeout bounds the wait for the answer (required).
	Timeout time.Duration
	// Now is the clock of the deadline (default time.Now).
	Now func() time.Time
}

// askFetchWait bounds one fetch of Ask, so that a fetch never outlasts
// its deadline by much on a server that does not answer.
const askFetchWait = 5 * time.Second

// Ask sends a request to a service and waits for its answer on the
// cluster's events: the completed answer decoded as T (the pair's completed
// type), or a failed answer as a *ServiceError (errors.Is ErrServiceFailed).
// It follows the cluster's events from req.Since with one ordered consumer
// filtered on events.ClusterEventFilter (a spoke may create consumers with
// a single filter inside its own events only), and matches an answer by its
// id (events.AnswerID of req.ID) and type; other events, malformed ones
// included, are skipped. A fetch that finds nothing or times out, and a
// Transient error, are no answer yet. The wait ends at the deadline
// (ErrNoAnswer) or when ctx ends (ctx.Err()), whatever else arrives.
func Ask[T events.Data](ctx context.Context, js jetstream.JetStream, pub *Publisher, req Request) (T, error) {
	var zero T
	if req.Data == nil {
		return zero, errors.New("ask: no request")
	}
	typ := req.Data.EventType()
	pair, ok := events.AskOf(typ)
	if !ok {
		return zero, fmt.Errorf("ask: %s is not the request of a pair of the contract", typ)
	}
	if got := typeOf[T](); got != pair.Completed {
		return zero, fmt.Errorf("ask: %s is answered with %s, not %s", typ, pair.Completed, got)
	}
	if req.ID == "" || req.Timeout <= 0 {
		return zero, fmt.Errorf("ask %s: a request needs an id and a timeout", typ)
	}
	now := req.Now
	if now == nil {
		now = time.Now
	}
	since := req.Since
	if since.IsZero() {
		since = now().Add(-time.Second)
	}
	filter, err := events.ClusterEventFilter(req.Cluster)
	if err != nil {
		return zero, fmt.Errorf("ask %s: %w", typ, err)
	}
	cons, err := js.OrderedConsumer(ctx, StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since,
	})
	if err != nil {
		return zero, fmt.Errorf("watch answers to %s: %w", typ, err)
	}
	if err := pub.Emit(ctx, req.Source, req.Cluster, req.Data, EmitID(req.ID)); err != nil {
		return zero, err
	}
	answerID := events.AnswerID(req.ID)
	deadline := now().Add(req.Timeout)
	for {
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		left := deadline.Sub(now())
		if left <= 0 {
			return zero, fmt.Errorf("%w to %s within %s", ErrNoAnswer, typ, req.Timeout)
		}
		fctx, cancel := context.WithTimeout(ctx, min(left, askFetchWait))
		msg, err := cons.Next(jetstream.FetchContext(fctx))
		// By the fetch's own deadline, not fctx.Err(): the context's timer
		// may fire a little after the deadline that nats.go already read.
		fetchDeadline, _ := fctx.Deadline()
		fetchExpired := !time.Now().Before(fetchDeadline)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return zero, ctx.Err()
			}
			// A fetch whose own wait ran out (even before it was sent:
			// nats.go refuses an expired context as an invalid option) is
			// no answer yet.
			if fetchExpired || noAnswerYet(err) {
				continue
			}
			return zero, fmt.Errorf("wait for the answer to %s: %w", typ, err)
		}
		if ctx.Err() != nil {
			return zero, ctx.Err()
		}
		e, err := FromHeaders(msg.Headers(), msg.Data())
		if err != nil || e.ID() != answerID {
			continue // malformed events are the DLQ's business, not this wait's
		}
		switch e.Type() {
		case pair.Completed:
			v, err := events.DataAs[T](e)
			if err != nil {
				continue
			}
			return v, nil
		case pair.Failed:
			f, err := events.FailureOf(e)
			if err != nil {
				continue
			}
			reason, message := f.Failure()
			return zero, &ServiceError{Service: pair.Service, Reason: reason, Message: message, Answer: f}
		}
	}
}

// noAnswerYet: a fetch error after which the next fetch may well find the
// answer (nothing yet, a fetch timed out on a loaded server, a reconnect).
func noAnswerYet(err error) bool {
	return errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || Transient(err)
}

// typeOf is the event type of T (or of what T points to).
func typeOf[T events.Data]() string {
	t := reflect.TypeFor[T]()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if d, ok := reflect.New(t).Interface().(events.Data); ok {
		return d.EventType()
	}
	return ""
}
