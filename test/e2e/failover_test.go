package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	simfleet "ibu.dev/demo/fleet"
	"ibu.dev/services/scheduler/rollout"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
	"ibu.dev/shared/telemetry"
	"ibu.dev/shared/testkit/natstest"
	"ibu.dev/shared/testkit/registrytest"
)

// A 50-cluster rollout on a 3-node JetStream cluster: the server that leads
// the state buckets and the event stream is stopped mid-rollout. The plan
// completes, every cluster is driven exactly once per action, and every
// cluster's stage changes are on the audit stream without a gap.
func TestFailoverOfTheStreamLeaderMidRollout(t *testing.T) {
	const n = 50
	ctx := t.Context()
	c := natstest.StartCluster(t, 3)
	_, hub := natstest.Connect(t, c.URL())
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := bus.EnsureTopology(tctx, hub, bus.Replicas(3)); err != nil {
		t.Fatal(err)
	}

	reg := registrytest.Start(t)
	ref := reg.Ref("telco/seed:" + seedVersion)
	if err := simfleet.PushSeed(ctx, ref, seedVersion, 4); err != nil {
		t.Fatal(err)
	}

	// Every spoke and the scheduler on connections of their own, as in a
	// real fleet, each knowing all three servers.
	startSpokes(t, n, 30*time.Second, func(id string) jetstream.JetStream {
		_, js := natstest.Connect(t, c.URL())
		return js
	})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	_, sjs := natstest.Connect(t, c.URL())
	go func() {
		done <- rollout.New(sjs, rollout.Config{Name: "s1", Telemetry: telemetry.Telemetry{Logger: quiet()}, Tick: 50 * time.Millisecond}).Run(runCtx)
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("scheduler: %v", err)
		}
	})
	clusters, _ := hub.KeyValue(ctx, bus.BucketClusters)
	natstest.WaitFor(t, 60*time.Second, "every cluster registered", func() bool {
		keys, _ := clusters.Keys(ctx)
		return len(keys) == n
	})

	f := &fleet{t: t, js: hub, log: quiet()}
	f.plans, _ = hub.KeyValue(ctx, bus.BucketPlans)
	f.desired, _ = hub.KeyValue(ctx, bus.BucketDesired)
	f.request(basicPlan("failover", ref, 10, ids(n)...))

	// Mid-rollout: some clusters done, most not.
	f.waitPlan("failover", 120*time.Second, "under way", func(p state.Plan) bool {
		return p.Counts.Succeeded >= 5 || terminal(p)
	})
	leaders := map[string]int{}
	for _, name := range []string{"KV_" + bus.BucketDesired, "KV_" + bus.BucketStatus, bus.StreamEvents} {
		st, err := hub.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		leaders[st.CachedInfo().Cluster.Leader]++
	}
	victim, most := "", 0
	for l, k := range leaders {
		if k > most {
			victim, most = l, k
		}
	}
	i := c.Index(victim)
	if i < 0 {
		t.Fatalf("leader %q is not a node of the cluster (%v)", victim, leaders)
	}
	t.Logf("stopping %s, leader of %d of the 3 state streams", victim, most)
	c.Stop(i)

	p := f.waitPlan("failover", 240*time.Second, "completed after the failover", terminal)
	if p.Phase != events.PlanCompleted || p.Counts.Succeeded != n {
		status, _ := hub.KeyValue(ctx, bus.BucketStatus)
		for _, pc := range p.Clusters {
			id := pc.ClusterID
			if e, err := status.Get(ctx, id); err == nil && pc.State.IsFailure() {
				t.Logf("%s: %+v\n  status %s", id, pc, e.Value())
			}
		}
		t.Fatalf("plan ended %s (%s %s), counts %+v", p.Phase, p.Reason, p.Message, p.Counts)
	}
	for _, id := range ids(n) {
		if gens := f.desiredHistory(id); !slices.Equal(gens, []int64{1, 2, 3}) {
			t.Errorf("%s: desired generations %v, want [1 2 3] (each action once)", id, gens)
		}
	}
	checkAuditChains(t, hub, n)
}

// checkAuditChains reads every stage change on IBU_EVENTS and checks that
// each cluster's form an unbroken chain (each one's previous stage and
// state are the last one's) from Idle back to Idle through a completed
// Upgrade: a lost event would break it.
func checkAuditChains(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	var (
		chains  map[string][]events.StageChanged
		lastErr error
	)
	// The client may still be moving to a surviving server: read until a
	// whole pass succeeds.
	natstest.WaitFor(t, 60*time.Second, "a full read of the audit stream", func() bool {
		chains, lastErr = readStageChanges(t.Context(), js)
		if lastErr != nil {
			t.Logf("read the audit stream: %v (retrying)", lastErr)
		}
		return lastErr == nil
	})
	if len(chains) != n {
		t.Fatalf("stage changes of %d clusters on the audit stream, want %d", len(chains), n)
	}
	for id, chain := range chains {
		upgraded := false
		for i, sc := range chain {
			if i > 0 {
				prev := chain[i-1]
				if sc.PreviousStage != prev.Stage || sc.PreviousState != prev.State {
					t.Errorf("%s: audit gap: %s/%s follows %s/%s", id, sc.PreviousStage, sc.PreviousState, prev.Stage, prev.State)
				}
			}
			upgraded = upgraded || (sc.Stage == events.StageUpgrade && sc.State == events.StateCompleted)
		}
		last := chain[len(chain)-1]
		if !upgraded || last.Stage != events.StageIdle {
			t.Errorf("%s: chain ends %s/%s (upgraded %v)", id, last.Stage, last.State, upgraded)
		}
	}
}

// readStageChanges reads every stage change on IBU_EVENTS, per cluster in
// stream order.
func readStageChanges(ctx context.Context, js jetstream.JetStream) (map[string][]events.StageChanged, error) {
	const filter = "ibu.event.*.stage.changed"
	st, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("info: %w", err)
	}
	total := 0
	for _, k := range info.State.Subjects {
		total += int(k)
	}
	// A replicated durable consumer: an ephemeral (R1) one may be placed
	// on the stopped server while the cluster still counts it as a peer.
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{
		Durable: "audit-check", FilterSubject: filter, AckPolicy: jetstream.AckNonePolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy, Replicas: 2,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	defer func() { _ = js.DeleteConsumer(context.WithoutCancel(ctx), bus.StreamEvents, "audit-check") }()
	chains := map[string][]events.StageChanged{}
	for i := range total {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("message %d of %d: %w", i+1, total, err)
		}
		e, err := bus.FromHeaders(m.Headers(), m.Data())
		if err != nil {
			return nil, fmt.Errorf("audit event: %w", err)
		}
		var sc events.StageChanged
		if err := json.Unmarshal(e.Data(), &sc); err != nil {
			return nil, err
		}
		chains[sc.ClusterID] = append(chains[sc.ClusterID], sc)
	}
	return chains, nil
}
