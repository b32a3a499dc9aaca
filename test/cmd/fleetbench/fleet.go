package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	simfleet "ibu.dev/demo/fleet"
	"ibu.dev/node-agent/agent"
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
type agentExit = simfleet.Exit

// fleet is n node agents on simulated hosts with zero delays, running in
// this process and sharing a few NATS connections.
type fleet struct {
	*simfleet.Fleet
	ids   []string
	conns []*nats.Conn
	exits <-chan agentExit
}

// startFleet starts n agents, sno-0001..sno-n, with their files under dir,
// perConn agents to a connection.
func startFleet(url string, n, perConn int, dir string) (*fleet, error) {
	f := &fleet{}
	for i := 0; i < n; i += perConn {
		nc, _, err := connect(url, fmt.Sprintf("fleetbench-agents-%d", len(f.conns)))
		if err != nil {
			return nil, errors.Join(err, f.stop())
		}
		f.conns = append(f.conns, nc)
	}
	fl, err := simfleet.Start(context.Background(), simfleet.Config{
		N: n, IDFormat: "sno-%04d", Dir: dir, Stateroot: oldStateroot,
		JS: func(i int, _ string) (jetstream.JetStream, error) { return jetstream.New(f.conns[i/perConn]) },
		Agent: func(int, string) agent.Config {
			return agent.Config{
				Version: oldVersion, Fingerprint: seedsim.Fingerprint(),
				Labels: map[string]string{fleetLabel: fleetValue}, AgentVersion: "fleetbench",
				HeartbeatInterval: time.Hour, ServiceTimeout: time.Minute,
			}
		},
	})
	if err != nil {
		return nil, errors.Join(err, f.stop())
	}
	f.Fleet, f.ids, f.exits = fl, fl.IDs(), fl.Exits()
	return f, nil
}

// lost turns an agent's exit received during a run into the error it is.
func (f *fleet) lost(x agentExit) error { return x.Lost() }

// stop stops every agent, waits for them, and closes the connections.
func (f *fleet) stop() error {
	var err error
	if f.Fleet != nil {
		err = f.Stop(stopTimeout)
	}
	for _, nc := range f.conns {
		nc.Close()
	}
	return err
}

// waitRegistered waits until every agent of f has registered and reports
// Idle, watching IBU_STATUS (no polling), or the hub stops.
func waitRegistered(ctx context.Context, js jetstream.JetStream, f *fleet, hub component, timeout time.Duration) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-hub.Done():
			cancel(fmt.Errorf("hub: %w", hub.Err()))
		case <-ctx.Done():
		}
	}()
	return f.WaitIdle(ctx, js, timeout)
}

// statusView is the part of an IBU_STATUS value the benchmark reads.
type statusView struct {
	stages.Position
	ObservedGeneration int64  `json:"observedGeneration"`
	Message            string `json:"message"`
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
