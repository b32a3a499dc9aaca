package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
)

// ErrServiceFailed: a hub service answered that the task failed.
var ErrServiceFailed = errors.New("service reported failure")

// askService sends a task to a hub service and waits for its answer about
// this run (same generation, and same step where the answer names one) on
// IBU_EVENTS. The task's event id is fixed per run and step, so a request
// re-sent after a crash is dropped by JetStream's dedup, and the answer is
// looked for from the step's first start, so one given while the agent was
// down is still found.
func (a *Agent) askService(ctx context.Context, r *runState, step string, req events.Data, okType, failType string) error {
	since := a.stepStart(step)
	// One filter on this cluster's events, not the two answer subjects: a
	// cluster's credentials allow creating consumers only with a filter
	// inside ibu.event.<cluster>.>, which the server can check only when
	// the create subject carries a single filter.
	filter, err := events.ClusterEventSubject(a.cfg.ClusterID, "x")
	if err != nil {
		return err
	}
	filter = strings.TrimSuffix(filter, "x") + ">"
	cons, err := a.d.JS.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since,
	})
	if err != nil {
		return fmt.Errorf("watch answers to %s: %w", req.EventType(), err)
	}
	id := fmt.Sprintf("%s.%s.%d.%s", a.cfg.ClusterID, r.run.ID, r.run.Generation, step)
	if err := a.emitWithID(ctx, id, req); err != nil {
		return err
	}
	deadline := a.d.Now().Add(a.cfg.ServiceTimeout)
	for {
		left := deadline.Sub(a.d.Now())
		if left <= 0 {
			return fmt.Errorf("no answer to %s within %s", req.EventType(), a.cfg.ServiceTimeout)
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(min(left, 5*time.Second)))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrNoMessages) || bus.Transient(err) {
				continue
			}
			return fmt.Errorf("wait for answer to %s: %w", req.EventType(), err)
		}
		e, err := bus.FromHeaders(msg.Headers(), msg.Data())
		if err != nil || (e.Type() != okType && e.Type() != failType) {
			continue // malformed answers are the DLQ's business, not this wait's
		}
		var key struct {
			Generation int64  `json:"generation"`
			Step       string `json:"step"`
			Reason     string `json:"reason"`
			Message    string `json:"message"`
		}
		if json.Unmarshal(e.Data(), &key) != nil || key.Generation != r.run.Generation || (key.Step != "" && key.Step != step) {
			continue
		}
		if e.Type() == failType {
			return fmt.Errorf("%w: %s: %s", ErrServiceFailed, key.Reason, key.Message)
		}
		return nil
	}
}

// stepStart is when the current run first started step (now if unknown).
func (a *Agent) stepStart(step string) time.Time {
	run, ok, err := a.d.Journal.Current()
	if err == nil && ok {
		for _, s := range run.Steps {
			if s.Name == step && !s.Started.IsZero() {
				return s.Started.Add(-time.Second)
			}
		}
	}
	return a.d.Now().Add(-time.Second)
}
