package observability

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"ibu.dev/services/health/stability"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/clusterkube"
	"ibu.dev/shared/events"
	"ibu.dev/shared/telemetry"
	"ibu.dev/shared/testkit/kubetest"
	"ibu.dev/shared/testkit/natstest"
)

// TestHealthServiceJoinsTheClusterTrace runs the real health service
// against a real API server, each cluster's kubeconfig pointing at it, and
// asks it for a gate the way the agent does: from the agent's step span
// inside the cluster's upgrade trace. The service's consumer span of the
// request and its publish of stability.passed must land in that trace, under
// the agent's publish and under the consumer span; the answer event
// carries the trace on to whoever consumes it.
//
// The agent itself is not run here: it asks for 60 s stabilisation
// windows, which would make the test take minutes; the request it sends
// is the same event.
func TestHealthServiceJoinsTheClusterTrace(t *testing.T) {
	// Only this test needs an API server, so it starts one rather than
	// the package's TestMain (which would slow down every other test).
	kube := kubetest.Start(t)
	rcv := startReceiver(t)
	tr := newTracers(t, rcv)
	_, js := natstest.StartHub(t)
	clusters := []string{"sno-001", "sno-002"}
	dir := t.TempDir()
	for _, c := range clusters {
		if err := os.WriteFile(filepath.Join(dir, c+".kubeconfig"), kube.Kubeconfig(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		// A bare API server: the mandatory checks find no OpenShift
		// types and pass; a 1 ms window passes on the second round.
		done <- stability.New(js, stability.Config{Clusters: clusterkube.Dir(dir), Window: time.Millisecond,
			Interval: 20 * time.Millisecond, Telemetry: telemetry.Telemetry{Logger: quiet(), Tracer: tr.health}}).Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("health service: %v", err)
		}
	})

	const plan = "health-plan"
	agentPub := bus.NewPublisher(js, bus.PublishTracerProvider(tr.agent))
	steps := map[string]trace.SpanContext{} // cluster → the agent's step span
	for _, c := range clusters {
		answer, err := events.SubjectFor(events.TypeHealthPassed, c)
		if err != nil {
			t.Fatal(err)
		}
		cons, err := js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{answer}})
		if err != nil {
			t.Fatal(err)
		}
		// The agent's step span, as the agent starts it: under the
		// cluster's upgrade trace.
		sctx, step := tr.agent.Tracer("test").Start(telemetry.WithParent(ctx, telemetry.ClusterUpgrade(plan, c)), "step PrePivotHealthCheck")
		steps[c] = step.SpanContext()
		req := events.HealthCheckRequested{ClusterID: c, PlanID: plan, Generation: 1, Step: "PrePivotHealthCheck",
			Tiers: []events.HealthTier{events.TierMandatory}, Timeout: events.Duration(20 * time.Second)}
		e, err := events.New("/node-agent", c, req)
		if err != nil {
			t.Fatal(err)
		}
		subject, err := events.SubjectFor(e.Type(), c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := agentPub.Publish(sctx, subject, e); err != nil {
			t.Fatal(err)
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(20 * time.Second))
		step.End()
		if err != nil {
			t.Fatalf("%s: no health.passed: %v", c, err)
		}
		ans, err := bus.FromHeaders(msg.Headers(), msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		// The answer carries the cluster's trace to its consumers.
		if got := trace.SpanContextFromContext(telemetry.ExtractEvent(context.Background(), ans)); got.TraceID() != telemetry.ClusterUpgrade(plan, c).TraceID() {
			t.Errorf("%s: health.passed carries trace %s, not the cluster's", c, got.TraceID())
		}
	}

	var spans []span
	// A consumer span ends after its handler's publish span: once both
	// consumer spans are in, so is everything the handlers did.
	natstest.WaitFor(t, 10*time.Second, "the health service's consumer spans exported", func() bool {
		tr.flush(t)
		spans = rcv.all()
		n := 0
		for _, s := range spans {
			if s.service == "ibu-health" && s.Kind == tracepbKindConsumer {
				n++
			}
		}
		return n >= len(clusters)
	})
	byID := map[string]span{}
	for _, s := range spans {
		byID[s.spanID()] = s
	}
	for _, c := range clusters {
		tid := telemetry.ClusterUpgrade(plan, c).TraceID().String()
		request, err := events.SubjectFor(events.TypeHealthCheckRequested, c)
		if err != nil {
			t.Fatal(err)
		}
		answer, err := events.SubjectFor(events.TypeHealthPassed, c)
		if err != nil {
			t.Fatal(err)
		}
		var consumer, publish *span
		for i, s := range spans {
			if s.service != "ibu-health" || s.attr("ibu.cluster") != c {
				continue
			}
			if s.traceID() != tid {
				t.Errorf("%s: health span %q in trace %s, not in the cluster's trace %s", c, s.Name, s.traceID(), tid)
			}
			switch {
			case s.Kind == tracepbKindConsumer && s.attr("messaging.destination.name") == request:
				consumer = &spans[i]
			case s.Kind == tracepbKindProducer && s.attr("messaging.destination.name") == answer:
				publish = &spans[i]
			}
		}
		if consumer == nil || publish == nil {
			t.Errorf("%s: health consumer span of the request %v, publish span of the answer %v; want both", c, consumer != nil, publish != nil)
			continue
		}
		// The consumer span is under the agent's publish of the request,
		// which is under the step span.
		parent, ok := byID[consumer.parentID()]
		if !ok || parent.service != "ibu-agent" || parent.Kind != tracepbKindProducer || parent.parentID() != steps[c].SpanID().String() {
			t.Errorf("%s: health consumer span's parent %s is not the agent's publish of the request under its step span", c, consumer.parentID())
		}
		if publish.parentID() != consumer.spanID() {
			t.Errorf("%s: the answer's publish span has parent %s, not the consumer span %s", c, publish.parentID(), consumer.spanID())
		}
		if !slices.ContainsFunc(spans, func(s span) bool { return s.spanID() == steps[c].SpanID().String() && s.traceID() == tid }) {
			t.Errorf("%s: the agent's step span is not in the cluster's trace", c)
		}
	}
}
