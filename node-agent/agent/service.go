package agent

import (
	"context"
	"fmt"
	"time"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
)

// ErrServiceFailed: a hub service answered that the task failed (the
// error is a *bus.ServiceError).
var ErrServiceFailed = bus.ErrServiceFailed

// askService sends a task to a hub service and waits for its answer about
// this run and step (bus.Ask): the completed answer, or an error that is
// ErrServiceFailed for a failed one. The task's event id is fixed per run,
// generation and step, so a request re-sent after a crash is dropped by
// JetStream's dedup, and the answer is looked for from the step's first
// start, so one given while the agent was down is still found.
func askService[T events.Data](ctx context.Context, a *Agent, r *runState, step string, req events.Data) (T, error) {
	return bus.Ask[T](ctx, a.d.JS, a.pub, bus.Request{
		Source: a.source, Cluster: a.cfg.ClusterID, Data: req,
		ID:    fmt.Sprintf("%s.%s.%d.%s", a.cfg.ClusterID, r.run.ID, r.run.Generation, step),
		Since: a.stepStart(step), Timeout: a.cfg.ServiceTimeout, Now: a.d.Now,
	})
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
