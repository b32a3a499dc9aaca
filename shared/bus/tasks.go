package bus

import (
	"context"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"ibu.dev/shared/events"
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
// answer type's subject for that cluster, with an id fixed per task so that
// an answer re-sent after a redelivery is dropped by JetStream's dedup. For
// a handler: a malformed answer is Permanent, a failed publish is retried.
func (p *Publisher) Answer(ctx context.Context, source string, task cloudevents.Event, answer events.Data) error {
	out, err := events.New(source, task.Subject(), answer)
	if err != nil {
		return Permanent(err)
	}
	out.SetID(task.ID() + ".answer")
	subject, err := events.SubjectFor(answer.EventType(), task.Subject())
	if err != nil {
		return Permanent(err)
	}
	if _, err := p.Publish(ctx, subject, out); err != nil {
		return fmt.Errorf("publish %s: %w", answer.EventType(), err)
	}
	return nil
}
