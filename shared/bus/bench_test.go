package bus_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
)

// benchConcurrency is the handler concurrency of both consumers: each
// handler waits for its confirmed ack, so both sides pipeline that many.
const benchConcurrency = 16

// BenchmarkThroughput compares, against one embedded server (file storage,
// one replica), CloudEvents through Publisher.PublishAsync and Consume (with
// decoding, validation and a confirmed ack per event) with raw JetStream
// async publish and consume (confirmed ack) of payloads of the same size.
// Each iteration is one event published and consumed. Run with a fixed
// count so both sides move the same number of events:
//
//	go test -run '^$' -bench BenchmarkThroughput -benchtime 20000x ./bus/
//
// It prints events/s for both and, last, "ratio: <ce/raw>".
func BenchmarkThroughput(b *testing.B) {
	_, _, js := setup(b)
	var ceRate, rawRate float64
	var run atomic.Int64

	b.Run("cloudevents", func(b *testing.B) {
		n := b.N
		id := run.Add(1)
		cluster := fmt.Sprintf("bench%d", id)
		evs := make([]cloudevents.Event, n)
		var subj string
		for i := range evs {
			subj, evs[i] = heartbeat(b, cluster, uint64(i))
		}
		var handled atomic.Int64
		done := make(chan struct{})
		h := func(context.Context, cloudevents.Event) error {
			if handled.Add(1) == int64(n) {
				close(done)
			}
			return nil
		}
		pub := bus.NewPublisher(js)
		ctx := context.Background()
		b.ResetTimer()
		start := time.Now()
		sub, err := bus.Consume(ctx, js, bus.StreamEvents, "bench-ce-"+cluster, h,
			bus.ConsumeFilterSubjects(subj), bus.ConsumeConcurrency(benchConcurrency), bus.ConsumeBatch(500),
			bus.ConsumeLogger(discardLogger()))
		if err != nil {
			b.Fatal(err)
		}
		futures := make([]jetstream.PubAckFuture, 0, n)
		for _, e := range evs {
			f, err := pub.PublishAsync(ctx, subj, e)
			if err != nil {
				b.Fatal(err)
			}
			futures = append(futures, f)
		}
		waitAcks(b, pub.PublishAsyncComplete(), futures)
		waitDone(b, done)
		elapsed := time.Since(start)
		b.StopTimer()
		sub.Stop()
		ceRate = float64(n) / elapsed.Seconds()
		b.ReportMetric(ceRate, "events/s")
	})

	b.Run("raw", func(b *testing.B) {
		n := b.N
		id := run.Add(1)
		_, e := heartbeat(b, "raw", 0)
		payload := make([]byte, len(e.Data()))
		copy(payload, e.Data())
		subj := fmt.Sprintf("ibu.event.raw%d.bench", id)
		var handled atomic.Int64
		done := make(chan struct{})
		ctx := context.Background()
		b.ResetTimer()
		start := time.Now()
		cons, err := js.CreateOrUpdateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{
			Durable: fmt.Sprintf("bench-raw-%d", id), FilterSubject: subj, AckPolicy: jetstream.AckExplicitPolicy,
		})
		if err != nil {
			b.Fatal(err)
		}
		sem := make(chan struct{}, benchConcurrency)
		cc, err := cons.Consume(func(m jetstream.Msg) {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				if err := m.DoubleAck(ctx); err != nil {
					b.Error(err)
				}
				if handled.Add(1) == int64(n) {
					close(done)
				}
			}()
		}, jetstream.PullMaxMessages(500))
		if err != nil {
			b.Fatal(err)
		}
		futures := make([]jetstream.PubAckFuture, 0, n)
		for i := range n {
			f, err := js.PublishAsync(subj, payload, jetstream.WithMsgID(fmt.Sprintf("raw-%d-%d", id, i)))
			if err != nil {
				b.Fatal(err)
			}
			futures = append(futures, f)
		}
		waitAcks(b, js.PublishAsyncComplete(), futures)
		waitDone(b, done)
		elapsed := time.Since(start)
		b.StopTimer()
		cc.Stop()
		rawRate = float64(n) / elapsed.Seconds()
		b.ReportMetric(rawRate, "events/s")
	})

	if ceRate > 0 && rawRate > 0 {
		fmt.Printf("cloudevents: %.0f events/s\n", ceRate)
		fmt.Printf("raw: %.0f events/s\n", rawRate)
		fmt.Printf("ratio: %.2f\n", ceRate/rawRate)
	}
}

func waitAcks(b *testing.B, complete <-chan struct{}, futures []jetstream.PubAckFuture) {
	b.Helper()
	select {
	case <-complete:
	case <-time.After(time.Minute):
		b.Fatal("async publishes not acked within a minute")
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatalf("publish: %v", err)
		}
	}
}

func waitDone(b *testing.B, done <-chan struct{}) {
	b.Helper()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatal("events not consumed within two minutes")
	}
}
