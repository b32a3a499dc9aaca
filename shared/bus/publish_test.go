package bus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
)

func TestPublishWithoutStreamFailsAfterRetries(t *testing.T) {
	_, _, js := setup(t)
	_, e := heartbeat(t, "sno1", 1)
	pub := bus.NewPublisher(js, bus.PublishAttempts(2), bus.PublishBackoff(time.Millisecond),
		bus.PublishTimeout(time.Second), bus.PublishLogger(testLogger(t)))
	_, err := pub.Publish(context.Background(), "nowhere.at.all", e)
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(err.Error(), "attempt 2") {
		t.Fatalf("not retried: %v", err)
	}
}

func TestPublishValidateRefusesInvalidEvent(t *testing.T) {
	_, _, js := setup(t)
	subj, e := heartbeat(t, "sno1", 1)
	e.SetType("dev.ibu.nope.v1")
	_, err := bus.NewPublisher(js, bus.PublishValidate()).Publish(context.Background(), subj, e)
	if !errors.Is(err, events.ErrUnknownType) {
		t.Fatalf("err %v", err)
	}
}

func TestPublishAsync(t *testing.T) {
	_, _, js := setup(t)
	rec := newRecorder()
	consume(t, js, rec.handle)
	pub := bus.NewPublisher(js)
	var ids []string
	var futures []jetstream.PubAckFuture
	for i := range 50 {
		subj, e := heartbeat(t, "sno1", uint64(i))
		f, err := pub.PublishAsync(context.Background(), subj, e)
		if err != nil {
			t.Fatal(err)
		}
		ids, futures = append(ids, e.ID()), append(futures, f)
	}
	select {
	case <-pub.PublishAsyncComplete():
	case <-time.After(waitTimeout):
		t.Fatal("async publishes not complete")
	}
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Stream != bus.StreamEvents {
				t.Fatalf("ack %+v", ack)
			}
		case err := <-f.Err():
			t.Fatal(err)
		}
	}
	waitFor(t, waitTimeout, "all handled", func() bool {
		for _, id := range ids {
			if rec.handled(id) != 1 {
				return false
			}
		}
		return true
	})
}

func TestDLQCopyTruncatedWhenItDoesNotFit(t *testing.T) {
	_, _, js := setup(t) // server max payload 1 MiB
	rec := newRecorder()
	sub := consume(t, js, rec.handle)
	// Fits on its own; with the DLQ headers added it does not.
	msg := &nats.Msg{Subject: "ibu.event.sno1.heartbeat", Header: nats.Header{"Nats-Msg-Id": {"big-1"}},
		Data: []byte(strings.Repeat("x", events.MaxEventSize-200))}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, "DLQ copy", func() bool { return dlqCount(t, js) == 1 })
	waitFor(t, waitTimeout, "consumer settled", func() bool { return settled(t, sub) })
	d := dlq(t, js)[0]
	if len(d.Data) != 0 || d.Header.Get(bus.HeaderDLQTruncated) != itoa(len(msg.Data)) ||
		d.Header.Get(bus.HeaderDLQReason) != "NotJSON" {
		t.Fatalf("DLQ copy: %d bytes, headers %v", len(d.Data), d.Header)
	}
}
