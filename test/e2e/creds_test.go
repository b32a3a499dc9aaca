package e2e

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	simfleet "ibu.dev/demo/fleet"
	"ibu.dev/services/scheduler/rollout"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/natsauth"
	"ibu.dev/shared/telemetry"
	"ibu.dev/shared/testkit/natstest"
	"ibu.dev/shared/testkit/registrytest"
)

// A whole rollout (Prep, Upgrade, Finalize) on a hub in JWT mode: every
// agent on its own cluster's credentials and inbox prefix, the scheduler
// on a service credential. Nothing is refused along the way.
func TestRolloutOnClusterCredentials(t *testing.T) {
	const n = 5
	ctx := t.Context()
	h := natstest.StartAuthHub(t)
	reg := registrytest.Start(t)
	ref := reg.Ref("telco/seed:" + seedVersion)
	if err := simfleet.PushSeed(ctx, ref, seedVersion, 4); err != nil {
		t.Fatal(err)
	}

	var (
		mu     sync.Mutex
		denied []string
	)
	onErr := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		denied = append(denied, err.Error())
		mu.Unlock()
	})
	startSpokes(t, n, 20*time.Second, func(id string) jetstream.JetStream {
		_, js := natstest.Connect(t, h.URL(), nats.UserCredentials(h.SpokeCreds(t, id)),
			nats.CustomInboxPrefix(natsauth.SpokeInboxPrefix(id)), onErr)
		return js
	})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	_, sjs := natstest.Connect(t, h.URL(), nats.UserCredentials(h.Creds(t, natsauth.ServiceUser("scheduler", 0))))
	go func() {
		done <- rollout.New(sjs, rollout.Config{Name: "s1", Telemetry: telemetry.Telemetry{Logger: quiet()}, Tick: 50 * time.Millisecond}).Run(runCtx)
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("scheduler: %v", err)
		}
	})

	f := &fleet{t: t, js: h.JS, log: quiet()}
	f.plans, _ = h.JS.KeyValue(ctx, bus.BucketPlans)
	f.desired, _ = h.JS.KeyValue(ctx, bus.BucketDesired)
	clusters, _ := h.JS.KeyValue(ctx, bus.BucketClusters)
	natstest.WaitFor(t, 30*time.Second, "every cluster registered", func() bool {
		keys, _ := clusters.Keys(ctx)
		return len(keys) == n
	})
	f.request(basicPlan("creds", ref, 3, ids(n)...))
	p := f.waitPlan("creds", 120*time.Second, "completed", terminal)
	if p.Phase != events.PlanCompleted || p.Counts.Succeeded != n {
		t.Fatalf("plan ended %s (%s %s), counts %+v", p.Phase, p.Reason, p.Message, p.Counts)
	}
	for _, id := range ids(n) {
		if gens := f.desiredHistory(id); !slices.Equal(gens, []int64{1, 2, 3}) {
			t.Errorf("%s: desired generations %v", id, gens)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(denied) > 0 {
		t.Errorf("the agents were refused: %v", denied)
	}
}
