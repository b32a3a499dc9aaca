package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go/jetstream"

	simfleet "ibu.dev/demo/fleet"
	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/agent/simspoke"
	"ibu.dev/services/scheduler/rollout"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/natsembed"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/seedimage/seedsim"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/telemetry"
	"ibu.dev/shared/testkit/natstest"
	"ibu.dev/shared/testkit/registrytest"
)

const seedVersion = "4.16.9"

type fleet struct {
	t       *testing.T
	srv     *natsembed.Server
	js      jetstream.JetStream
	seedRef string
	spokes  map[string]*simspoke.Spoke
	plans   jetstream.KeyValue
	desired jetstream.KeyValue
	log     *slog.Logger
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newFleet starts a hub, a registry with a seed, and n registered clusters
// sno-001..sno-n, each a node agent on a simulated host; prepare may
// change a spoke before its agent starts.
func newFleet(t *testing.T, n int, prepare func(id string, s *simspoke.Spoke)) *fleet {
	t.Helper()
	ctx := t.Context()
	srv, js := natstest.StartHub(t)
	reg := registrytest.Start(t, registrytest.WithBasicAuth("ibu", "s3cret"))
	auth := seedimage.WithAuthFile(reg.AuthFile(t))
	ref := reg.Ref("telco/seed:" + seedVersion)
	err := simfleet.PushSeed(ctx, ref, seedVersion, 6, auth)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, srv: srv, js: js, seedRef: ref, spokes: map[string]*simspoke.Spoke{}, log: quiet()}
	if f.plans, err = js.KeyValue(ctx, bus.BucketPlans); err != nil {
		t.Fatal(err)
	}
	if f.desired, err = js.KeyValue(ctx, bus.BucketDesired); err != nil {
		t.Fatal(err)
	}
	spokes, err := simfleet.Start(ctx, simfleet.Config{
		N: n, Dir: t.TempDir(), Logger: f.log,
		JS: func(int, string) (jetstream.JetStream, error) { return js, nil },
		Agent: func(i int, _ string) agent.Config {
			ring := "b"
			if i < n/2 {
				ring = "a"
			}
			return agent.Config{Version: "4.14.38", Fingerprint: seedsim.Fingerprint(),
				Labels: map[string]string{"ring": ring}, SeedOptions: []seedimage.Option{auth},
				HeartbeatInterval: time.Hour, ServiceTimeout: 20 * time.Second, PullBackoff: 10 * time.Millisecond}
		},
		Prepare: func(_ int, id string, s *simspoke.Spoke) error {
			if prepare != nil {
				prepare(id, s)
			}
			f.spokes[id] = s
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := spokes.Stop(time.Minute); err != nil {
			t.Errorf("agents: %v", err)
		}
	})
	clusters, err := js.KeyValue(ctx, bus.BucketClusters)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 20*time.Second, "every cluster registered", func() bool {
		keys, _ := clusters.Keys(ctx)
		return len(keys) == n
	})
	return f
}

// scheduler runs an in-process scheduler replica until the test ends.
func (f *fleet) scheduler(name string, clock func() time.Time) {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- rollout.New(f.js, rollout.Config{Name: name, Now: clock, Telemetry: telemetry.Telemetry{Logger: f.log}, Tick: 50 * time.Millisecond}).Run(ctx)
	}()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("scheduler %s: %v", name, err)
		}
	})
}

// request publishes a plan request.
func (f *fleet) request(data events.Data) {
	f.t.Helper()
	e, err := events.New("/users/test", "test", data)
	if err != nil {
		f.t.Fatal(err)
	}
	subject, err := events.SubjectFor(e.Type(), "")
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := bus.NewPublisher(f.js).Publish(f.t.Context(), subject, e); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fleet) plan(id string) (state.Plan, bool) {
	e, err := f.plans.Get(f.t.Context(), id)
	if err != nil {
		return state.Plan{}, false
	}
	var p state.Plan
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		f.t.Fatal(err)
	}
	return p, true
}

// waitPlan waits until the plan satisfies cond.
func (f *fleet) waitPlan(id string, timeout time.Duration, what string, cond func(state.Plan) bool) state.Plan {
	f.t.Helper()
	var p state.Plan
	natstest.WaitFor(f.t, timeout, "plan "+id+" "+what, func() bool {
		var ok bool
		p, ok = f.plan(id)
		return ok && cond(p)
	})
	return p
}

// desiredHistory returns the generations written for a cluster's desired
// state, oldest first.
func (f *fleet) desiredHistory(id string) []int64 {
	f.t.Helper()
	hist, err := f.desired.History(f.t.Context(), id)
	if err != nil {
		return nil
	}
	var gens []int64
	for _, e := range hist {
		var d state.Desired
		if json.Unmarshal(e.Value(), &d) == nil {
			gens = append(gens, d.Generation)
		}
	}
	return gens
}

// basicPlan is [Prep] then [Upgrade, Finalize], window w.
func basicPlan(id, seedRef string, w int, clusters ...string) events.PlanCreateRequested {
	return events.PlanCreateRequested{
		PlanID: id, SeedImage: seedRef, SeedVersion: seedVersion,
		Clusters: events.ClusterSelection{ClusterIDs: clusters},
		Steps: []events.PlanStep{
			{Actions: []stages.Action{stages.ActionPrep}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: w}},
			{Actions: []stages.Action{stages.ActionUpgrade, stages.ActionFinalize}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: w}},
		},
	}
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("sno-%03d", i+1)
	}
	return out
}

type cloudEvent = cloudevents.Event

func seedsimImages() ([]string, error) {
	s, err := seedsim.New(seedVersion, 6)
	return s.Images, err
}

// startSpokes starts n clusters sno-001..sno-n, each a node agent on a
// simulated host rebooting in 50ms, on the connection js gives it, until
// the test ends.
func startSpokes(t *testing.T, n int, serviceTimeout time.Duration, js func(id string) jetstream.JetStream) {
	t.Helper()
	spokes, err := simfleet.Start(t.Context(), simfleet.Config{
		N: n, Dir: t.TempDir(), Logger: quiet(),
		JS: func(_ int, id string) (jetstream.JetStream, error) { return js(id), nil },
		Agent: func(int, string) agent.Config {
			return agent.Config{Version: "4.14.38", Fingerprint: seedsim.Fingerprint(),
				HeartbeatInterval: time.Hour, ServiceTimeout: serviceTimeout}
		},
		Prepare: func(_ int, _ string, s *simspoke.Spoke) error { s.RebootDelay = 50 * time.Millisecond; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := spokes.Stop(time.Minute); err != nil {
			t.Errorf("agents: %v", err)
		}
	})
}
