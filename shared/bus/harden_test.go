package bus_test

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
)

// A rollup header on one cluster's status key must not wipe the others'
// (a spoke may write its own key, with any headers).
func TestStatusBucketRefusesRollups(t *testing.T) {
	_, _, js := setup(t)
	ctx := t.Context()
	for _, bucket := range []string{bus.BucketStatus, bus.BucketClusters} {
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "c2", []byte(`{"other":true}`)); err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg("$KV." + bucket + ".c1")
		m.Header.Set("Nats-Rollup", "all")
		m.Data = []byte(`{}`)
		if _, err := js.PublishMsg(ctx, m); err == nil {
			t.Fatalf("%s accepted a rollup", bucket)
		}
		if _, err := kv.Get(ctx, "c2"); err != nil {
			t.Fatalf("%s/c2 after a refused rollup: %v", bucket, err)
		}
		st, err := js.Stream(ctx, "KV_"+bucket)
		if err != nil {
			t.Fatal(err)
		}
		if c := st.CachedInfo().Config; !c.DenyPurge || c.AllowRollup || !c.AllowDirect {
			t.Fatalf("%s: deny purge %v, allow rollup %v, allow direct %v", bucket, c.DenyPurge, c.AllowRollup, c.AllowDirect)
		}
	}
}

func TestReapDurablesOnBuckets(t *testing.T) {
	_, _, js := setup(t)
	ctx := t.Context()
	if _, err := js.CreateOrUpdateConsumer(ctx, "KV_"+bus.BucketDesired, jetstream.ConsumerConfig{
		Durable: "sneaky", FilterSubject: "$KV." + bus.BucketDesired + ".c1", DeliverSubject: "elsewhere.c1",
	}); err != nil {
		t.Fatal(err)
	}
	n, err := bus.ReapDurables(ctx, js, nil)
	if err != nil || n != 1 {
		t.Fatalf("ReapDurables = %d, %v; want 1", n, err)
	}
	if _, err := js.Consumer(ctx, "KV_"+bus.BucketDesired, "sneaky"); err == nil {
		t.Fatal("durable still there")
	}
}

// An event published on one cluster's subject that names another cluster
// (a spoke may publish only under its own id, so its payload must not
// claim another) is dead-lettered as ClusterMismatch; the handler never
// sees it, and the next good event is handled.
func TestConsumerTrustsTheClusterOfTheSubject(t *testing.T) {
	_, _, js := setup(t)
	rec := newRecorder()
	consume(t, js, rec.handle)
	pub := bus.NewPublisher(js)
	subjC1, _ := heartbeat(t, "c1", 1)
	_, forged := heartbeat(t, "c2", 1)
	// An event about c2 on c1's subject.
	if _, err := pub.Publish(t.Context(), subjC1, forged); err != nil {
		t.Fatal(err)
	}
	subj, good := heartbeat(t, "c1", 2)
	if _, err := pub.Publish(t.Context(), subj, good); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, "the good event handled", func() bool { return rec.handled(good.ID()) == 1 })
	if rec.callCount(forged.ID()) != 0 {
		t.Fatal("the handler saw the forged event")
	}
	waitFor(t, waitTimeout, "the forged event in the DLQ", func() bool {
		for _, m := range dlq(t, js) {
			if m.Header.Get(bus.HeaderDLQReason) == "ClusterMismatch" {
				return true
			}
		}
		return false
	})
}
