package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/simspoke"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/seedimage/seedsim"
	"ibu.dev/shared/stages"
)

const (
	oldVersion   = "4.14.38"
	oldStateroot = "rhcos"
	seedVersion  = "4.16.9"
	fleetLabel   = "fleet"
	fleetValue   = "bench"
)

// agentExit is an agent that stopped.
type agentExit struct {
	id  string
	err error
}

// fleet is n node agents on simulated hosts with zero delays, running in
// this process and sharing a few NATS connections.
type fleet struct {
	ids    []string
	conns  []*nats.Conn
	cancel context.CancelFunc
	exits  chan agentExit
	left   int // agents whose exit was not received yet
}

// startFleet starts n agents, sno-0001..sno-n, with their files under dir,
// perConn agents to a connection.
func startFleet(url string, n, perConn int, dir string) (*fleet, error) {
	f := &fleet{exits: make(chan agentExit, n)}
	for i := 0; i < n; i += perConn {
		nc, _, err := connect(url, fmt.Sprintf("fleetbench-agents-%d", len(f.conns)))
		if err != nil {
			return nil, errors.Join(err, f.stop())
		}
		f.conns = append(f.conns, nc)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	quiet := slog.New(slog.DiscardHandler)
	for i := range n {
		id := fmt.Sprintf("sno-%04d", i+1)
		js, err := jetstream.New(f.conns[i/perConn])
		if err != nil {
			return nil, errors.Join(err, f.stop())
		}
		s := simspoke.New(agent.Config{
			ClusterID: id, Version: oldVersion, Fingerprint: seedsim.Fingerprint(),
			Labels: map[string]string{fleetLabel: fleetValue}, AgentVersion: "fleetbench",
			HeartbeatInterval: time.Hour, ServiceTimeout: time.Minute,
		}, filepath.Join(dir, id), oldStateroot)
		s.Logger = quiet
		f.ids = append(f.ids, id)
		f.left++
		go func() { f.exits <- agentExit{id: id, err: s.Run(ctx, js)} }()
	}
	return f, nil
}

// lost turns an agent's exit received during a run into the error it is.
func (f *fleet) lost(x agentExit) error {
	f.left--
	if x.err == nil {
		return fmt.Errorf("agent %s stopped on its own", x.id)
	}
	return fmt.Errorf("agent %s: %w", x.id, x.err)
}

// stop stops every agent, waits for them, and closes the connections.
func (f *fleet) stop() error {
	var errs []error
	if f.cancel != nil {
		f.cancel()
		t := time.NewTimer(stopTimeout)
		defer t.Stop()
	wait:
		for ; f.left > 0; f.left-- {
			select {
			case x := <-f.exits:
				if x.err != nil {
					errs = append(errs, fmt.Errorf("agent %s: %w", x.id, x.err))
				}
			case <-t.C:
				errs = append(errs, fmt.Errorf("%d agents did not stop within %s", f.left, stopTimeout))
				break wait
			}
		}
	}
	for _, nc := range f.conns {
		nc.Close()
	}
	return errors.Join(errs...)
}

// statusView is the part of an IBU_STATUS value the benchmark reads.
type statusView struct {
	stages.Position
	ObservedGeneration int64  `json:"observedGeneration"`
	Message            string `json:"message"`
}

// waitRegistered waits until every agent of f has registered and reports
// Idle, watching IBU_STATUS (no polling).
func waitRegistered(ctx context.Context, js jetstream.JetStream, f *fleet, hub component, timeout time.Duration) error {
	kv, err := js.KeyValue(ctx, bus.BucketStatus)
	if err != nil {
		return fmt.Errorf("open %s: %w", bus.BucketStatus, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := kv.WatchAll(wctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", bus.BucketStatus, err)
	}
	defer func() { _ = w.Stop() }()
	idle := make(map[string]bool, len(f.ids))
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(idle) < len(f.ids) {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watch of %s closed", bus.BucketStatus)
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var v statusView
			if err := json.Unmarshal(e.Value(), &v); err != nil {
				return fmt.Errorf("status of %s: %w", e.Key(), err)
			}
			if v.Position == stages.IdlePosition {
				idle[e.Key()] = true
			}
		case x := <-f.exits:
			return f.lost(x)
		case <-hub.Done():
			return fmt.Errorf("hub: %w", hub.Err())
		case <-deadline.C:
			return fmt.Errorf("%d of %d agents registered within %s", len(idle), len(f.ids), timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// counters are the hub's message counts at one moment.
type counters struct {
	events  uint64 // messages in IBU_EVENTS
	desired uint64 // writes IBU_DESIRED ever took (its stream's last sequence)
	status  uint64 // writes to IBU_STATUS
	plans   uint64 // writes to IBU_PLANS

	desiredConsumers int // consumers of KV_IBU_DESIRED (not a count of writes)
}

func readCounters(ctx context.Context, js jetstream.JetStream) (counters, error) {
	var c counters
	for _, s := range []struct {
		stream string
		v      *uint64
		msgs   bool
	}{
		{bus.StreamEvents, &c.events, true},
		{"KV_" + bus.BucketDesired, &c.desired, false},
		{"KV_" + bus.BucketStatus, &c.status, false},
		{"KV_" + bus.BucketPlans, &c.plans, false},
	} {
		st, err := js.Stream(ctx, s.stream)
		if err != nil {
			return c, fmt.Errorf("stream %s: %w", s.stream, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return c, fmt.Errorf("stream %s: %w", s.stream, err)
		}
		*s.v = info.State.LastSeq
		if s.msgs {
			*s.v = info.State.Msgs
		}
		if s.stream == "KV_"+bus.BucketDesired {
			c.desiredConsumers = info.State.Consumers
		}
	}
	return c, nil
}

func (c counters) minus(o counters) counters {
	return counters{events: c.events - o.events, desired: c.desired - o.desired, status: c.status - o.status, plans: c.plans - o.plans}
}

// schedulerReadyTimeout bounds the wait for the scheduler's "scheduler
// ready". (A scheduler whose start fails after its first watch does not
// exit until it is signalled: the wait is what shows it.)
const schedulerReadyTimeout = 2 * time.Minute
