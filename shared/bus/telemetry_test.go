package bus_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/telemetry"
)

// A publish inside a trace gets a producer span with the messaging
// attributes, and the consumer's span is its child.
func TestPublishSpanParentsConsumerSpan(t *testing.T) {
	_, _, js := setup(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	rec := newRecorder()
	consume(t, js, rec.handle, bus.ConsumeTracerProvider(tp))

	subj, e := heartbeat(t, "sno-7", 1)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "step")
	if _, err := bus.NewPublisher(js, bus.PublishTracerProvider(tp)).Publish(ctx, subj, e); err != nil {
		t.Fatal(err)
	}
	parent.End()
	waitFor(t, waitTimeout, "event handled", func() bool { return rec.handled(e.ID()) == 1 })

	var producer, consumer sdktrace.ReadOnlySpan
	waitFor(t, waitTimeout, "producer and consumer spans ended", func() bool {
		for _, s := range spans.Ended() {
			switch s.SpanKind() {
			case trace.SpanKindProducer:
				producer = s
			case trace.SpanKindConsumer:
				consumer = s
			}
		}
		return producer != nil && consumer != nil
	})
	if producer.Parent().SpanID() != parent.SpanContext().SpanID() || producer.Name() != "send "+subj {
		t.Fatalf("producer span %q with parent %v", producer.Name(), producer.Parent())
	}
	if consumer.Parent().SpanID() != producer.SpanContext().SpanID() {
		t.Fatalf("consumer span's parent %v, want the producer span %v", consumer.Parent().SpanID(), producer.SpanContext().SpanID())
	}
	for _, s := range []sdktrace.ReadOnlySpan{producer, consumer} {
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		if attrs["messaging.system"] != "nats" || attrs["messaging.destination.name"] != subj || attrs["ibu.cluster"] != "sno-7" {
			t.Errorf("%s span attributes %v", s.SpanKind(), attrs)
		}
	}
}

// The consumer counts what it handled, what failed and what it
// dead-lettered, by event type.
func TestConsumeMetrics(t *testing.T) {
	_, nc, js := setup(t)
	m, err := telemetry.NewMetrics()
	if err != nil {
		t.Fatal(err)
	}
	fail := map[uint64]bool{2: true}
	h := func(_ context.Context, e cloudevents.Event) error {
		var hb struct{ Seq uint64 }
		_ = e.DataAs(&hb)
		if fail[hb.Seq] {
			return bus.Permanent(errors.New("refused"))
		}
		return nil
	}
	consume(t, js, h, bus.ConsumeMeterProvider(m.MeterProvider()))
	pub := bus.NewPublisher(js)
	for seq := uint64(1); seq <= 3; seq++ {
		subj, e := heartbeat(t, "sno-1", seq)
		if _, err := pub.Publish(t.Context(), subj, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish("ibu.event.sno-1.heartbeat", []byte("{")); err != nil {
		t.Fatal(err)
	}
	unregister, err := bus.InstrumentConn(nc, m.MeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unregister() }()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	want := []string{
		`ibu_bus_events_handled_total{consumer="test",event_type="dev.ibu.cluster.heartbeat.v1"} 2`,
		`ibu_bus_events_failed_total{consumer="test",event_type="dev.ibu.cluster.heartbeat.v1",reason="Permanent"} 1`,
		`ibu_bus_dlq_messages_total{consumer="test",reason="Permanent"} 1`,
		`ibu_bus_handler_duration_seconds_count{consumer="test",event_type="dev.ibu.cluster.heartbeat.v1"} 3`,
		`ibu_nats_reconnects_total{connection="TestConsumeMetrics"} 0`,
	}
	var page string
	waitFor(t, waitTimeout, "metrics of 4 messages", func() bool {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page = string(b)
		return strings.Contains(page, `ibu_bus_dlq_messages_total{consumer="test",reason="`) &&
			strings.Count(page, "ibu_bus_dlq_messages_total{") == 2
	})
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("metrics lack %s\n%s", w, page)
		}
	}
}
