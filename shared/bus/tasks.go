package bus

import (
	"context"
	"errors"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/events"
	"ibu.dev/shared/telemetry"
)

// TaskPlacement is where a hub service that works on spokes' APIs takes its
// tasks from. Hub placement (cluster ""): every cluster's tasks, through one
// durable consumer the replicas share. Spoke placement (the service runs on
// cluster): only that cluster's tasks, through a durable of its own.
func TaskPlacement(service, cluster string) (subject, durable string, err error) {
	if cluster == "" {
		return "ibu.task." + service + ".*", service, nil
	}
	if subject, err = events.TaskSubject(service, cluster); err != nil {
		return "", "", err
	}
	return subject, service + "-" + cluster, nil
}

// Answer publishes a service's answer to a task about a cluster: an event
// from source about the task's cluster (its CloudEvent subject), on the
// answer type's subject for that cluster, with the id events.AnswerID of
// the task's, so that an answer re-sent after a redelivery is dropped by
// JetStream's dedup and the asker (Ask) knows it for its own. For a
// handler: a malformed answer is Permanent, a failed publish is retried.
func (p *Publisher) Answer(ctx context.Context, source string, task cloudevents.Event, answer events.Data) error {
	err := p.Emit(ctx, source, task.Subject(), answer, EmitID(events.AnswerID(task.ID())))
	if _, malformed := errors.AsType[*buildError](err); malformed {
		return Permanent(err)
	}
	return err
}

// TaskHandler answers the tasks of one type; build it with HandleTask.
type TaskHandler struct {
	typ    string
	handle func(ctx context.Context, task cloudevents.Event) (events.Data, error)
}

// HandleTask is the handler of the tasks of type T: the task's data is
// decoded as T (a task that does not decode is Permanent) and h returns the
// answer, or an error: Permanent for a task that can never be answered,
// any other to have the task delivered again. A nil answer with no error
// acknowledges the task without answering it.
func HandleTask[T events.Data](h func(ctx context.Context, task T) (events.Data, error)) TaskHandler {
	return TaskHandler{typ: typeOf[T](), handle: func(ctx context.Context, e cloudevents.Event) (events.Data, error) {
		t, err := events.DataAs[T](e)
		if err != nil {
			return nil, Permanent(err)
		}
		return h(ctx, t)
	}}
}

// TaskWorker is a service's side of the contract's asks: it consumes the
// service's tasks (TaskPlacement of Service and Cluster) from IBU_TASKS,
// hands each to the handler of its type and publishes the answer through
// Publisher.Answer.
type TaskWorker struct {
	// Service is the task subject token, e.g. events.ServiceHealth; also
	// the name of the consumer's DLQ unless Options say otherwise.
	Service string
	// Cluster, when set, is the only cluster whose tasks are consumed
	// (the spoke placement).
	Cluster string
	// Source is the CloudEvents source of the answers.
	Source string
	// Handlers, one per task type the service answers.
	Handlers []TaskHandler
	// Telemetry logs, traces and measures the consumer and the answers'
	// publishes.
	Telemetry telemetry.Telemetry
	// Options are added after the worker's own (service, filter, logger,
	// tracer, meter), e.g. ConsumeConcurrency or ConsumeRejectedEvents.
	Options []ConsumeOption
}

// ServeTasks starts w; Stop the returned subscription to end it.
func ServeTasks(ctx context.Context, js jetstream.JetStream, w TaskWorker) (*Subscription, error) {
	if len(w.Handlers) == 0 {
		return nil, errors.New("serve tasks: no handler")
	}
	tel := w.Telemetry.Resolved()
	subject, durable, err := TaskPlacement(w.Service, w.Cluster)
	if err != nil {
		return nil, err
	}
	handlers := map[string]TaskHandler{}
	for _, h := range w.Handlers {
		handlers[h.typ] = h
	}
	pub := NewPublisher(js, PublishLogger(tel.Logger), PublishTracerProvider(tel.Tracer))
	handle := func(ctx context.Context, e cloudevents.Event) error {
		h, ok := handlers[e.Type()]
		if !ok {
			return Permanent(fmt.Errorf("%s does not handle %s", w.Service, e.Type()))
		}
		answer, err := h.handle(ctx, e)
		if ctx.Err() != nil {
			return ctx.Err() // shutting down: the task is delivered again
		}
		if err != nil || answer == nil {
			return err
		}
		return pub.Answer(ctx, w.Source, e, answer)
	}
	opts := append([]ConsumeOption{ConsumeService(w.Service), ConsumeFilterSubjects(subject),
		ConsumeLogger(tel.Logger), ConsumeTracerProvider(tel.Tracer), ConsumeMeterProvider(tel.Meter)}, w.Options...)
	sub, err := Consume(ctx, js, StreamTasks, durable, handle, opts...)
	if err != nil {
		return nil, fmt.Errorf("consume %s tasks: %w", w.Service, err)
	}
	return sub, nil
}

// RunTasks serves w until ctx ends.
func RunTasks(ctx context.Context, js jetstream.JetStream, w TaskWorker) error {
	sub, err := ServeTasks(ctx, js, w)
	if err != nil {
		return err
	}
	defer sub.Stop()
	w.Telemetry.Resolved().Logger.Info(w.Service + " ready")
	<-ctx.Done()
	return nil
}
