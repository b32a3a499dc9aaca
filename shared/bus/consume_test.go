package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/natsembed"
	"ibu.dev/shared/testkit/natstest"
)

func TestPublishConsumeRoundTripWithTrace(t *testing.T) {
	_, _, js := setup(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	rec := newRecorder()
	consume(t, js, rec.handle, bus.ConsumeTracerProvider(tp))

	subj, e := richEvent(t)
	e.SetExtension("traceparent", nil) // the publisher injects it from ctx
	e.SetExtension("tracestate", nil)
	ctx, span := tp.Tracer("test").Start(context.Background(), "send")
	pub := bus.NewPublisher(js)
	ack, err := pub.Publish(ctx, subj, e)
	span.End()
	if err != nil {
		t.Fatal(err)
	}
	if ack.Stream != bus.StreamEvents || ack.Duplicate {
		t.Fatalf("ack %+v", ack)
	}
	if _, ok := e.Extensions()["traceparent"]; ok {
		t.Fatal("Publish modified the caller's event")
	}

	waitFor(t, waitTimeout, "event handled", func() bool { return rec.handled(e.ID()) == 1 })
	got, hctx, _ := rec.get(e.ID())
	want := e.Clone()
	sc := span.SpanContext()
	want.SetExtension("traceparent", fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID()))
	assertSameEvent(t, got, want)

	// The handler runs in a consumer span that is a child of the sender's.
	hsc := trace.SpanContextFromContext(hctx)
	if hsc.TraceID() != sc.TraceID() || hsc.SpanID() == sc.SpanID() {
		t.Fatalf("handler span %v, sender span %v", hsc, sc)
	}
	waitFor(t, waitTimeout, "consumer span ended", func() bool {
		for _, s := range spans.Ended() {
			if s.SpanKind() == trace.SpanKindConsumer && s.Parent().SpanID() == sc.SpanID() {
				return true
			}
		}
		return false
	})
}

func TestPublishKeepsExistingTraceparent(t *testing.T) {
	_, _, js := setup(t)
	rec := newRecorder()
	consume(t, js, rec.handle)
	subj, e := richEvent(t)
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "other")
	defer span.End()
	if _, err := bus.NewPublisher(js).Publish(ctx, subj, e); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, "event handled", func() bool { return rec.handled(e.ID()) == 1 })
	got, _, _ := rec.get(e.ID())
	assertSameEvent(t, got, e)
}

func TestStructuredModeRawPublishAccepted(t *testing.T) {
	_, nc, js := setup(t)
	rec := newRecorder()
	consume(t, js, rec.handle)
	// What `nats pub ibu.event.sno2.heartbeat '<json>'` sends: no headers.
	body := `{"specversion":"1.0","id":"by-hand-1","source":"/ibuctl","type":"dev.ibu.cluster.heartbeat.v1",
	  "subject":"sno2","datacontenttype":"application/json",
	  "data":{"clusterId":"sno2","seq":3,"time":"2025-01-01T00:00:00Z","stage":"Idle","state":"Completed"}}`
	if err := nc.Publish("ibu.event.sno2.heartbeat", []byte(body)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, "hand-written event handled", func() bool { return rec.handled("by-hand-1") == 1 })
	got, _, _ := rec.get("by-hand-1")
	hb, err := events.DataAs[events.ClusterHeartbeat](got)
	if err != nil || hb.ClusterID != "sno2" || hb.Seq != 3 {
		t.Fatalf("data %+v %v", hb, err)
	}
}

func TestDuplicatePublishIsDroppedAndHandledOnce(t *testing.T) {
	_, _, js := setup(t)
	rec := newRecorder()
	consume(t, js, rec.handle)
	pub := bus.NewPublisher(js)
	ctx := context.Background()
	subj, e := heartbeat(t, "sno1", 1)
	ack1, err := pub.Publish(ctx, subj, e)
	if err != nil {
		t.Fatal(err)
	}
	ack2, err := pub.Publish(ctx, subj, e)
	if err != nil {
		t.Fatal(err)
	}
	if ack1.Duplicate || !ack2.Duplicate || ack2.Sequence != ack1.Sequence {
		t.Fatalf("acks %+v %+v", ack1, ack2)
	}
	// A later event proves the consumer has gone past the duplicate.
	_, next := heartbeat(t, "sno1", 2)
	if _, err := pub.Publish(ctx, subj, next); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, "later event handled", func() bool { return rec.handled(next.ID()) == 1 })
	if n := rec.callCount(e.ID()); n != 1 {
		t.Fatalf("duplicate event handled %d times", n)
	}
}

func TestMalformedMessagesGoToDLQ(t *testing.T) {
	_, _, js := setup(t, func(c *natsembed.Config) { c.MaxPayload = 4 << 20 })
	rec := newRecorder()
	sub := consume(t, js, rec.handle)
	pub := bus.NewPublisher(js)
	ctx := context.Background()

	for i, c := range malformed(t) {
		t.Run(c.name, func(t *testing.T) {
			if _, err := js.PublishMsg(ctx, c.msg); err != nil {
				t.Fatalf("publish: %v", err)
			}
			// The consumer goes on to the next good message.
			subj, good := heartbeat(t, "sno1", uint64(i))
			if _, err := pub.Publish(ctx, subj, good); err != nil {
				t.Fatal(err)
			}
			waitFor(t, waitTimeout, "good message after bad one handled", func() bool { return rec.handled(good.ID()) == 1 })
			waitFor(t, waitTimeout, "DLQ copy", func() bool { return dlqCount(t, js) == i+1 })
			d := dlq(t, js)[i]
			if d.Subject != "ibu.dlq.test" {
				t.Errorf("DLQ subject %s", d.Subject)
			}
			if got := d.Header.Get(bus.HeaderDLQReason); got != c.reason {
				t.Errorf("reason %q, want %q (error %q)", got, c.reason, d.Header.Get(bus.HeaderDLQError))
			}
			if d.Header.Get(bus.HeaderDLQError) == "" || d.Header.Get(bus.HeaderDLQStream) != bus.StreamEvents ||
				d.Header.Get(bus.HeaderDLQSubject) != c.msg.Subject || d.Header.Get(bus.HeaderDLQDelivered) != "1" {
				t.Errorf("DLQ headers %v", d.Header)
			}
			if string(d.Data) != string(c.msg.Data) {
				t.Errorf("DLQ payload differs (%d vs %d bytes)", len(d.Data), len(c.msg.Data))
			}
			for k, vs := range c.msg.Header {
				if k != "Nats-Msg-Id" && d.Header.Get(k) != vs[0] {
					t.Errorf("header %s not copied: %q", k, d.Header.Get(k))
				}
			}
		})
	}
	waitFor(t, waitTimeout, "consumer settled", func() bool { return settled(t, sub) })
}

func TestTransientErrorIsRetried(t *testing.T) {
	_, _, js := setup(t)
	rec := newRecorder()
	rec.fail = func(_ cloudevents.Event, call int) error {
		if call < 3 {
			return errors.New("database not reachable")
		}
		return nil
	}
	sub := consume(t, js, rec.handle, bus.ConsumeMaxDeliver(5))
	subj, e := heartbeat(t, "sno1", 1)
	if _, err := bus.NewPublisher(js).Publish(context.Background(), subj, e); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, "handled after retries", func() bool { return rec.handled(e.ID()) == 1 })
	waitFor(t, waitTimeout, "consumer settled", func() bool { return settled(t, sub) })
	if n := rec.callCount(e.ID()); n != 3 {
		t.Fatalf("%d calls", n)
	}
	if n := dlqCount(t, js); n != 0 {
		t.Fatalf("%d DLQ messages", n)
	}
}

func TestPersistentErrorEndsInDLQAfterMaxDeliver(t *testing.T) {
	_, _, js := setup(t)
	rec := newRecorder()
	rec.fail = func(cloudevents.Event, int) error { return errors.New("still broken") }
	sub := consume(t, js, rec.handle, bus.ConsumeMaxDeliver(3))
	subj, e := heartbeat(t, "sno1", 1)
	if _, err := bus.NewPublisher(js).Publish(context.Background(), subj, e); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, "DLQ copy", func() bool { return dlqCount(t, js) == 1 })
	waitFor(t, waitTimeout, "consumer settled", func() bool { return settled(t, sub) })
	d := dlq(t, js)[0]
	if r := d.Header.Get(bus.HeaderDLQReason); r != bus.ReasonMaxDeliverExceeded {
		t.Fatalf("reason %s", r)
	}
	if got := d.Header.Get(bus.HeaderDLQDelivered); got != "3" {
		t.Fatalf("delivered %s", got)
	}
	if got := d.Header.Get(bus.HeaderDLQError); got != "still broken" {
		t.Fatalf("error %q", got)
	}
	if d.Header.Get("ce-id") != e.ID() {
		t.Fatalf("DLQ headers %v", d.Header)
	}
	if n := rec.callCount(e.ID()); n != 3 {
		t.Fatalf("%d calls, want exactly 3", n)
	}
}

type reasonedErr struct{}

func (reasonedErr) Error() string  { return "transition Idle -> Upgrade not allowed" }
func (reasonedErr) Reason() string { return "InvalidTransition" }

func TestPermanentErrorGoesToDLQAtOnce(t *testing.T) {
	_, _, js := setup(t)
	rec := newRecorder()
	rec.fail = func(e cloudevents.Event, _ int) error {
		hb, _ := events.DataAs[events.ClusterHeartbeat](e)
		switch hb.Seq {
		case 1:
			return bus.Permanent(errors.New("cluster unknown"))
		case 2:
			return fmt.Errorf("apply: %w", bus.Permanent(reasonedErr{}))
		case 3:
			panic("boom")
		}
		return nil
	}
	sub := consume(t, js, rec.handle, bus.ConsumeMaxDeliver(5))
	pub := bus.NewPublisher(js)
	var ids []string
	for seq := uint64(1); seq <= 3; seq++ {
		subj, e := heartbeat(t, "sno1", seq)
		if _, err := pub.Publish(context.Background(), subj, e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID())
	}
	waitFor(t, waitTimeout, "3 DLQ copies", func() bool { return dlqCount(t, js) == 3 })
	waitFor(t, waitTimeout, "consumer settled", func() bool { return settled(t, sub) })
	want := []string{bus.ReasonPermanent, "InvalidTransition", bus.ReasonHandlerPanic}
	for i, d := range dlq(t, js) {
		if r := d.Header.Get(bus.HeaderDLQReason); r != want[i] {
			t.Errorf("DLQ %d reason %s, want %s", i, r, want[i])
		}
		if d.Header.Get(bus.HeaderDLQDelivered) != "1" {
			t.Errorf("DLQ %d delivered %s", i, d.Header.Get(bus.HeaderDLQDelivered))
		}
	}
	for _, id := range ids {
		if n := rec.callCount(id); n != 1 {
			t.Errorf("event %s: %d calls", id, n)
		}
	}
}

func TestLongHandlerWithInProgressIsNotRedelivered(t *testing.T) {
	_, _, js := setup(t)
	var calls atomic.Int32
	h := func(ctx context.Context, e cloudevents.Event) error {
		calls.Add(1)
		// Run for 2.5 AckWaits: the work itself, not synchronisation.
		select {
		case <-time.After(2500 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	sub := consume(t, js, h, bus.ConsumeAckWait(time.Second), bus.ConsumeInProgress(200*time.Millisecond))
	subj, e := heartbeat(t, "sno1", 1)
	if _, err := bus.NewPublisher(js).Publish(context.Background(), subj, e); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, "handler started", func() bool { return calls.Load() == 1 })
	waitFor(t, waitTimeout, "acked", func() bool { return settled(t, sub) })
	info, err := sub.Consumer().Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 || calls.Load() != 1 || info.Delivered.Consumer != 1 {
		t.Fatalf("redelivered %d, calls %d, deliveries %d", info.NumRedelivered, calls.Load(), info.Delivered.Consumer)
	}
}

func TestStopWaitsForRunningHandler(t *testing.T) {
	_, _, js := setup(t)
	started, release := make(chan struct{}), make(chan struct{})
	var done atomic.Bool
	h := func(ctx context.Context, e cloudevents.Event) error {
		close(started)
		<-release
		done.Store(true)
		return nil
	}
	sub, err := bus.Consume(context.Background(), js, bus.StreamEvents, "stopper", h)
	if err != nil {
		t.Fatal(err)
	}
	subj, e := heartbeat(t, "sno1", 1)
	if _, err := bus.NewPublisher(js).Publish(context.Background(), subj, e); err != nil {
		t.Fatal(err)
	}
	<-started
	stopped := make(chan struct{})
	go func() { sub.Stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a handler was running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	<-stopped
	if !done.Load() {
		t.Fatal("handler did not finish")
	}
	sub.Stop() // idempotent
	info, err := sub.Consumer().Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.AckFloor.Stream != 1 {
		t.Fatalf("not acked: %+v", info)
	}
}

func TestConsumeRejectsBadServiceName(t *testing.T) {
	_, _, js := setup(t)
	_, err := bus.Consume(context.Background(), js, bus.StreamEvents, "Bad_Name", func(context.Context, cloudevents.Event) error { return nil })
	if err == nil {
		t.Fatal("no error for a durable that is not a valid service name")
	}
}

func TestRestartKeepsStreamsAndKV(t *testing.T) {
	srv, nc, js := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub := bus.NewPublisher(js)
	for seq := range uint64(3) {
		subj, e := heartbeat(t, "sno1", seq)
		if _, err := pub.Publish(ctx, subj, e); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := js.KeyValue(ctx, bus.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "sno1", []byte(`{"stage":"Prep"}`)); err != nil {
		t.Fatal(err)
	}

	rec := newRecorder()
	consume(t, js, rec.handle)
	waitFor(t, waitTimeout, "events before restart handled", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.events) == 3
	})

	reconnects := nc.Stats().Reconnects
	srv.Shutdown()
	srv2, err := natsembed.Start(ctx, srv.Config()) // same store dir and port
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv2.Shutdown)
	// IsConnected alone may still describe the old connection.
	waitFor(t, waitTimeout, "client reconnected", func() bool {
		return nc.Stats().Reconnects > reconnects && nc.IsConnected()
	})

	st, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 {
		t.Fatalf("%d events after restart", info.State.Msgs)
	}
	kv, err = js.KeyValue(ctx, bus.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx, "sno1")
	if err != nil || string(entry.Value()) != `{"stage":"Prep"}` {
		t.Fatalf("kv after restart: %v", err)
	}
	if err := bus.EnsureTopology(ctx, js); err != nil {
		t.Fatal(err)
	}
	// The consumer started before the restart carries on.
	subj, e := heartbeat(t, "sno1", 9)
	if _, err := pub.Publish(ctx, subj, e); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "event after restart handled", func() bool { return rec.handled(e.ID()) == 1 })
}

func TestFailoverPublishAfterLeaderLoss(t *testing.T) {
	cl := natstest.StartCluster(t, 3)
	_, js := natstest.Connect(t, cl.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := bus.EnsureTopology(ctx, js, bus.Replicas(3)); err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(js, bus.PublishTimeout(2*time.Second), bus.PublishAttempts(3))
	subj, e := heartbeat(t, "sno1", 1)
	if _, err := pub.Publish(ctx, subj, e); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldLeader := info.Cluster.Leader
	idx := cl.Index(oldLeader)
	if idx < 0 {
		t.Fatalf("leader %q not a node", oldLeader)
	}
	cl.Stop(idx)

	_, e2 := heartbeat(t, "sno1", 2)
	var lastErr error
	waitFor(t, 45*time.Second, "publish after leader loss", func() bool {
		_, lastErr = pub.Publish(ctx, subj, e2)
		return lastErr == nil
	})
	waitFor(t, waitTimeout, "new leader", func() bool {
		info, err = st.Info(ctx)
		return err == nil && info.Cluster.Leader != "" && info.Cluster.Leader != oldLeader
	})
	if info.State.Msgs != 2 {
		t.Fatalf("%d messages after failover, want 2", info.State.Msgs)
	}
}

func TestRejectedEventsAnnounceRefusals(t *testing.T) {
	_, nc, js := setup(t)
	rec := newRecorder()
	rec.fail = func(e cloudevents.Event, _ int) error {
		if e.Type() == events.TypeClusterHeartbeat {
			return bus.Permanent(errors.New("no such cluster"))
		}
		return nil
	}
	consume(t, js, rec.handle, bus.ConsumeRejectedEvents("/services/test"))
	subj, e := heartbeat(t, "sno1", 1)
	if _, err := bus.NewPublisher(js).Publish(context.Background(), subj, e); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("ibu.event.plan.p1.created", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	var got []events.Rejected
	waitFor(t, waitTimeout, "two rejected events", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		got = got[:0]
		for _, ev := range rec.events {
			if ev.Type() == events.TypeRejected {
				r, err := events.DataAs[events.Rejected](ev)
				if err != nil {
					t.Error(err)
				}
				got = append(got, r)
			}
		}
		return len(got) == 2
	})
	for _, r := range got {
		switch {
		case r.ClusterID == "sno1":
			if r.Reason != "Permanent" || r.RefusedID != e.ID() || r.Service != "test" || r.RefusedSubject != subj {
				t.Errorf("cluster rejection %+v", r)
			}
		case r.PlanID == "p1":
			if r.Reason != "NotJSON" || r.RefusedSubject != "ibu.event.plan.p1.created" {
				t.Errorf("plan rejection %+v", r)
			}
		default:
			t.Errorf("unexpected rejection %+v", r)
		}
	}
	if n := dlqCount(t, js); n != 2 {
		t.Fatalf("%d DLQ messages, want 2", n)
	}
}
