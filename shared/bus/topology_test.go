package bus_test

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/testkit/natstest"
)

func streamInfos(t *testing.T, js jetstream.JetStream) map[string]*jetstream.StreamInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string]*jetstream.StreamInfo{}
	var names []string
	for _, c := range bus.StreamConfigs() {
		names = append(names, c.Name)
	}
	for _, c := range bus.KeyValueConfigs() {
		names = append(names, "KV_"+c.Bucket)
	}
	for _, c := range bus.ObjectStoreConfigs() {
		names = append(names, "OBJ_"+c.Bucket)
	}
	for _, n := range names {
		st, err := js.Stream(ctx, n)
		if err != nil {
			t.Fatalf("stream %s: %v", n, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = info
	}
	return out
}

func TestEnsureTopologyCreatesEverything(t *testing.T) {
	_, _, js := setup(t)
	infos := streamInfos(t, js)

	want := map[string]struct {
		subject   string
		retention jetstream.RetentionPolicy
		maxAge    time.Duration
	}{
		bus.StreamRequests: {"ibu.request.>", jetstream.WorkQueuePolicy, 0},
		bus.StreamTasks:    {"ibu.task.>", jetstream.WorkQueuePolicy, 0},
		bus.StreamEvents:   {"ibu.event.>", jetstream.LimitsPolicy, 7 * 24 * time.Hour},
		bus.StreamDLQ:      {"ibu.dlq.>", jetstream.LimitsPolicy, 30 * 24 * time.Hour},
	}
	for name, w := range want {
		c := infos[name].Config
		if !reflect.DeepEqual(c.Subjects, []string{w.subject}) || c.Retention != w.retention || c.MaxAge != w.maxAge ||
			c.Storage != jetstream.FileStorage || c.Replicas != 1 || c.Duplicates != 2*time.Minute {
			t.Errorf("%s: subjects %v retention %v maxage %v storage %v replicas %d duplicates %v",
				name, c.Subjects, c.Retention, c.MaxAge, c.Storage, c.Replicas, c.Duplicates)
		}
	}
	for bucket, history := range map[string]int64{bus.BucketStatus: 10, bus.BucketDesired: 10, bus.BucketPlans: 5, bus.BucketClusters: 1} {
		c := infos["KV_"+bucket].Config
		if c.MaxMsgsPerSubject != history || c.Storage != jetstream.FileStorage {
			t.Errorf("bucket %s: history %d storage %v", bucket, c.MaxMsgsPerSubject, c.Storage)
		}
		if _, err := js.KeyValue(context.Background(), bucket); err != nil {
			t.Errorf("bucket %s: %v", bucket, err)
		}
	}
}

func TestEnsureTopologyTwiceChangesNothing(t *testing.T) {
	_, _, js := setup(t)
	before := streamInfos(t, js)
	if err := bus.EnsureTopology(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	after := streamInfos(t, js)
	for name, b := range before {
		a := after[name]
		if !reflect.DeepEqual(a.Config, b.Config) {
			t.Errorf("%s: config changed:\n before %+v\n after  %+v", name, b.Config, a.Config)
		}
		if !a.Created.Equal(b.Created) {
			t.Errorf("%s: re-created (%v -> %v)", name, b.Created, a.Created)
		}
	}
}

func TestEnsureTopologyConcurrentStartup(t *testing.T) {
	srv := natstest.Start(t)
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		_, js := natstest.Connect(t, srv.URL()) // one connection per "service"
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			errs <- bus.EnsureTopology(ctx, js)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent EnsureTopology: %v", err)
		}
	}
	_, js := natstest.Connect(t, srv.URL())
	if n, want := len(streamInfos(t, js)), len(bus.StreamConfigs())+len(bus.KeyValueConfigs())+len(bus.ObjectStoreConfigs()); n != want {
		t.Fatalf("%d streams, want %d", n, want)
	}
}

func TestEnsureTopologyReplicasOnCluster(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	_, js := natstest.Connect(t, c.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.EnsureTopology(ctx, js, bus.Replicas(3)); err != nil {
		t.Fatal(err)
	}
	for name, info := range streamInfos(t, js) {
		if info.Config.Replicas != 3 {
			t.Errorf("%s: replicas %d", name, info.Config.Replicas)
		}
		if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			t.Errorf("%s: cluster info %+v", name, info.Cluster)
		}
	}
}

func TestEnsureConsumer(t *testing.T) {
	_, _, js := setup(t)
	ctx := context.Background()
	cfg := bus.ConsumerConfig{
		Durable:        "scheduler",
		FilterSubjects: []string{"ibu.task.scheduler.>"},
		AckWait:        10 * time.Second,
		MaxDeliver:     4,
		BackOff:        []time.Duration{time.Second, 2 * time.Second},
	}
	cons, err := bus.EnsureConsumer(ctx, js, bus.StreamTasks, cfg)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if c.Durable != "scheduler" || c.FilterSubject != "ibu.task.scheduler.>" || c.MaxDeliver != 4 ||
		c.AckPolicy != jetstream.AckExplicitPolicy || !reflect.DeepEqual(c.BackOff, cfg.BackOff) {
		t.Fatalf("consumer config %+v", c)
	}
	// Idempotent, and an update applies.
	cfg.MaxDeliver = 6
	if _, err := bus.EnsureConsumer(ctx, js, bus.StreamTasks, cfg); err != nil {
		t.Fatal(err)
	}
	info, _ = cons.Info(ctx)
	if info.Config.MaxDeliver != 6 {
		t.Fatalf("MaxDeliver %d after update", info.Config.MaxDeliver)
	}
	if _, err := bus.EnsureConsumer(ctx, js, bus.StreamTasks, bus.ConsumerConfig{}); err == nil {
		t.Fatal("no error without durable name")
	}
}

// Every agent watches its own desired key, one consumer each: the buckets
// must take more than nats-server's default of 1,000 consumers per stream.
func TestBucketsAcceptMoreThanAThousandWatchers(t *testing.T) {
	_, _, js := setup(t)
	for _, b := range []string{bus.BucketDesired, bus.BucketStatus} {
		st, err := js.Stream(t.Context(), "KV_"+b)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CachedInfo().Config.MaxConsumers; got != bus.DefaultKVMaxConsumers {
			t.Errorf("%s MaxConsumers = %d, want %d", b, got, bus.DefaultKVMaxConsumers)
		}
	}
	// Ensuring again (another service starting) keeps the limit.
	if err := bus.EnsureTopology(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	st, _ := js.Stream(t.Context(), "KV_"+bus.BucketDesired)
	if got := st.CachedInfo().Config.MaxConsumers; got != bus.DefaultKVMaxConsumers {
		t.Errorf("after a second EnsureTopology MaxConsumers = %d", got)
	}
}
