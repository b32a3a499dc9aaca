package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

// progressEvery is how often a run prints how far it is.
const progressEvery = 10 * time.Second

// outcome is what a driver reports of its run.
type outcome struct {
	wall      time.Duration // first desired stage asked for (plan request published) to the end
	planBytes int           // the plan record's size at the end (scheduler-driven)
}

// runEnv is what a driver works with.
type runEnv struct {
	js       jetstream.JetStream
	fleet    *fleet
	hub      component
	sched    component // nil when driven directly
	seedRef  string
	window   int
	timeout  time.Duration
	progress io.Writer
	// started is called right before the first request or write, ended as
	// soon as the driver saw the end: only what lies between is measured.
	started, ended func()
}

// broken returns a channel that yields why the run cannot go on: an agent,
// the hub or the scheduler stopped.
func (env *runEnv) broken() <-chan error {
	ch := make(chan error, 1)
	go func() {
		var sched <-chan struct{}
		if env.sched != nil {
			sched = env.sched.Done()
		}
		select {
		case <-env.hub.Done():
			ch <- fmt.Errorf("hub: %w", env.hub.Err())
		case <-sched:
			ch <- fmt.Errorf("scheduler: %w", env.sched.Err())
		}
	}()
	return ch
}

// planEvent is one event on a plan's subject.
type planEvent struct {
	status   events.PlanStatusChanged
	rejected *events.Rejected
	err      error
}

// followPlan delivers the events published on the plan's subjects
// (status changes, refusals) from now on, through an ordered consumer of
// IBU_EVENTS that starts after the stream's last message.
func followPlan(ctx context.Context, js jetstream.JetStream, planID string) (<-chan planEvent, func(), error) {
	stream, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		return nil, nil, fmt.Errorf("stream %s: %w", bus.StreamEvents, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("stream %s: %w", bus.StreamEvents, err)
	}
	// ibu.event.plan.<plan>.<event name>
	subject, err := events.PlanEventFilter(planID)
	if err != nil {
		return nil, nil, err
	}
	cons, err := js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy, OptStartSeq: info.State.LastSeq + 1,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("follow %s: %w", subject, err)
	}
	ch := make(chan planEvent, 64)
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var pe planEvent
		e, err := bus.FromHeaders(m.Headers(), m.Data())
		switch {
		case err != nil:
			pe.err = fmt.Errorf("event on %s: %w", m.Subject(), err)
		case e.Type() == events.TypePlanStatusChanged:
			pe.status, pe.err = events.DataAs[events.PlanStatusChanged](e)
		case e.Type() == events.TypeRejected:
			var r events.Rejected
			r, pe.err = events.DataAs[events.Rejected](e)
			pe.rejected = &r
		default:
			return
		}
		select {
		case ch <- pe:
		case <-done:
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("follow %s: %w", subject, err)
	}
	var once sync.Once
	return ch, func() { once.Do(func() { close(done); cc.Stop() }) }, nil
}

// planRequest is [Prep] then [Upgrade, Finalize] over the whole fleet (by
// label), window w in both steps.
func planRequest(planID, seedRef string, w int) events.PlanCreateRequested {
	return events.PlanCreateRequested{
		PlanID: planID, SeedImage: seedRef, SeedVersion: seedVersion,
		Clusters: events.ClusterSelection{Selector: &events.LabelSelector{MatchLabels: map[string]string{fleetLabel: fleetValue}}},
		Steps: []events.PlanStep{
			{Actions: []stages.Action{stages.ActionPrep}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: w}},
			{Actions: []stages.Action{stages.ActionUpgrade, stages.ActionFinalize}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: w}},
		},
	}
}

// publishRequest publishes a plan request.
func publishRequest(ctx context.Context, js jetstream.JetStream, req events.PlanCreateRequested) error {
	if err := bus.NewPublisher(js).Emit(ctx, "/fleetbench", req.PlanID, req); err != nil {
		return fmt.Errorf("publish the plan request %s: %w", req.PlanID, err)
	}
	return nil
}

// dryRunAttempts bounds awaitInventory.
const dryRunAttempts = 20

// awaitInventory asks the scheduler for dry runs of the plan until it
// resolves every cluster of the fleet: its inventory (a watch of
// IBU_CLUSTERS) may trail the registrations the benchmark saw by a little.
func awaitInventory(ctx context.Context, env *runEnv) error {
	n := len(env.fleet.ids)
	req := planRequest(fmt.Sprintf("fleet-%d-dry-run", n), env.seedRef, env.window)
	req.DryRun = true
	planEvents, stopFollow, err := followPlan(ctx, env.js, req.PlanID)
	if err != nil {
		return err
	}
	defer stopFollow()
	broken := env.broken()
	deadline := time.NewTimer(env.timeout)
	defer deadline.Stop()
	total := 0
	for range dryRunAttempts {
		if err := publishRequest(ctx, env.js, req); err != nil {
			return err
		}
		select {
		case pe := <-planEvents:
			switch {
			case pe.err != nil:
				return pe.err
			case pe.rejected != nil && pe.rejected.Reason != "InvalidSelection":
				return fmt.Errorf("dry run refused: %s: %s", pe.rejected.Reason, pe.rejected.Message)
			case pe.rejected == nil:
				if total = pe.status.Counts.Total; total == n {
					return nil
				}
			}
		case x := <-env.fleet.exits:
			return env.fleet.lost(x)
		case err := <-broken:
			return err
		case <-deadline.C:
			return fmt.Errorf("no dry-run answer within %s", env.timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("after %d dry runs the scheduler resolves %d of %d clusters", dryRunAttempts, total, n)
}

func terminal(p events.PlanPhase) bool {
	return p == events.PlanCompleted || p == events.PlanFailed || p == events.PlanAborted
}

// driveScheduler publishes one plan request for the whole fleet and waits
// for the plan's terminal phase, as the scheduler reports it; then it
// checks the stored plan record: Completed, every cluster succeeded.
func driveScheduler(ctx context.Context, env *runEnv) (outcome, error) {
	n := len(env.fleet.ids)
	planID := fmt.Sprintf("fleet-%d", n)
	planEvents, stopFollow, err := followPlan(ctx, env.js, planID)
	if err != nil {
		return outcome{}, err
	}
	defer stopFollow()
	broken := env.broken()
	deadline := time.NewTimer(env.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()

	env.started()
	start := time.Now()
	if err := publishRequest(ctx, env.js, planRequest(planID, env.seedRef, env.window)); err != nil {
		return outcome{}, err
	}
	var last events.PlanStatusChanged
	var out outcome
wait:
	for {
		select {
		case pe := <-planEvents:
			switch {
			case pe.err != nil:
				return outcome{}, pe.err
			case pe.rejected != nil:
				return outcome{}, fmt.Errorf("plan %s refused: %s: %s", planID, pe.rejected.Reason, pe.rejected.Message)
			}
			last = pe.status
			if terminal(last.Phase) || last.Phase == events.PlanPaused {
				out.wall = time.Since(start)
				env.ended()
				break wait
			}
		case <-tick.C:
			c := last.Counts
			fmt.Fprintf(env.progress, "    %4.0fs  %s, step %d/2: %d succeeded, %d in progress, %d failed of %d\n",
				time.Since(start).Seconds(), orDash(string(last.Phase)), last.CurrentStep+1, c.Succeeded, c.InProgress, c.Failed, n)
		case x := <-env.fleet.exits:
			return outcome{}, env.fleet.lost(x)
		case err := <-broken:
			return outcome{}, err
		case <-deadline.C:
			return outcome{}, fmt.Errorf("plan %s not finished within %s: last reported %s, step %d, counts %+v",
				planID, env.timeout, orDash(string(last.Phase)), last.CurrentStep+1, last.Counts)
		case <-ctx.Done():
			return outcome{}, ctx.Err()
		}
	}
	plans, err := env.js.KeyValue(ctx, bus.BucketPlans)
	if err != nil {
		return outcome{}, fmt.Errorf("open %s: %w", bus.BucketPlans, err)
	}
	entry, err := plans.Get(ctx, planID)
	if err != nil {
		return outcome{}, fmt.Errorf("plan record %s: %w", planID, err)
	}
	out.planBytes = len(entry.Value())
	var p state.Plan
	if err := json.Unmarshal(entry.Value(), &p); err != nil {
		return outcome{}, fmt.Errorf("plan record %s: %w", planID, err)
	}
	if p.Phase != events.PlanCompleted || p.Counts.Succeeded != n {
		return out, fmt.Errorf("plan %s ended %s (%s: %s) with counts %+v, want Completed with %d succeeded",
			planID, p.Phase, p.Reason, p.Message, p.Counts, n)
	}
	return out, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// directWriters is how many desired-stage writes the direct driver has in
// flight.
const directWriters = 16

var (
	prepDone    = stages.Position{Stage: stages.Prep, State: stages.Completed}
	upgradeDone = stages.Position{Stage: stages.Upgrade, State: stages.Completed, AfterPivot: true}
)

// driveDirect is the baseline: no scheduler, no window, no plan record. It
// writes every cluster's desired Prep at once; when all are prepared,
// every cluster's Upgrade, and each cluster's Finalize (desired Idle) as
// soon as its Upgrade completed; it follows the clusters through one
// watch of IBU_STATUS. The steps are barriers, as in the plan.
func driveDirect(ctx context.Context, env *runEnv) (outcome, error) {
	ids := env.fleet.ids
	planID := fmt.Sprintf("direct-%d", len(ids))
	status, err := env.js.KeyValue(ctx, bus.BucketStatus)
	if err != nil {
		return outcome{}, fmt.Errorf("open %s: %w", bus.BucketStatus, err)
	}
	desired, err := env.js.KeyValue(ctx, bus.BucketDesired)
	if err != nil {
		return outcome{}, fmt.Errorf("open %s: %w", bus.BucketDesired, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := status.WatchAll(wctx, jetstream.UpdatesOnly())
	if err != nil {
		return outcome{}, fmt.Errorf("watch %s: %w", bus.BucketStatus, err)
	}
	defer func() { _ = w.Stop() }()

	writes := make(chan state.Desired, 3*len(ids))
	writeErr := make(chan error, 1)
	var wg sync.WaitGroup
	defer func() { close(writes); cancel(); wg.Wait() }()
	for range min(directWriters, len(ids)) {
		wg.Go(func() {
			for d := range writes {
				b, err := state.EncodeDesired(d)
				if err == nil {
					_, err = desired.Put(wctx, d.ClusterID, b)
				}
				if err != nil && wctx.Err() == nil {
					select {
					case writeErr <- fmt.Errorf("desire %s of %s: %w", d.Stage, d.ClusterID, err):
					default:
					}
				}
			}
		})
	}
	desire := func(id string, stage stages.Stage, gen int64) {
		d := state.Desired{ClusterID: id, Stage: stage, Generation: gen, PlanID: planID}
		if stage == stages.Prep || stage == stages.Upgrade {
			d.SeedImage, d.SeedVersion = env.seedRef, seedVersion
		}
		writes <- d
	}

	broken := env.broken()
	deadline := time.NewTimer(env.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()

	env.started()
	start := time.Now()
	step := 0
	pending := make(map[string]bool, len(ids))
	finalizing := make(map[string]bool, len(ids))
	begin := func(stage stages.Stage, gen int64) {
		for _, id := range ids {
			pending[id] = true
			desire(id, stage, gen)
		}
	}
	begin(stages.Prep, 1)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return outcome{}, fmt.Errorf("watch of %s closed", bus.BucketStatus)
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut || !pending[e.Key()] {
				continue
			}
			id := e.Key()
			var v statusView
			if err := json.Unmarshal(e.Value(), &v); err != nil {
				return outcome{}, fmt.Errorf("status of %s: %w", id, err)
			}
			gen := int64(step + 1)
			if finalizing[id] {
				gen = 3
			}
			if v.ObservedGeneration >= gen && v.State == stages.Failed {
				return outcome{}, fmt.Errorf("%s failed %s: %s", id, v.Stage, v.Message)
			}
			switch {
			case step == 0 && v.ObservedGeneration >= 1 && v.Position == prepDone:
				delete(pending, id)
			case step == 1 && !finalizing[id] && v.ObservedGeneration >= 2 && v.Position == upgradeDone:
				finalizing[id] = true
				desire(id, stages.Idle, 3)
			case step == 1 && finalizing[id] && v.ObservedGeneration >= 3 && v.Position == stages.IdlePosition:
				delete(pending, id)
			}
			if len(pending) > 0 {
				continue
			}
			if step == 1 {
				env.ended()
				return outcome{wall: time.Since(start)}, nil
			}
			step++
			begin(stages.Upgrade, 2)
		case <-tick.C:
			fmt.Fprintf(env.progress, "    %4.0fs  step %d/2: %d of %d clusters still going\n",
				time.Since(start).Seconds(), step+1, len(pending), len(ids))
		case err := <-writeErr:
			return outcome{}, err
		case x := <-env.fleet.exits:
			return outcome{}, env.fleet.lost(x)
		case err := <-broken:
			return outcome{}, err
		case <-deadline.C:
			return outcome{}, fmt.Errorf("direct run not finished within %s: step %d/2, %d of %d clusters still going",
				env.timeout, step+1, len(pending), len(ids))
		case <-ctx.Done():
			return outcome{}, ctx.Err()
		}
	}
}
