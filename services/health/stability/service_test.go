package stability_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/services/health/stability"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/clusterkube"
	"ibu.dev/shared/events"
	"ibu.dev/shared/testkit/natstest"
)

// TestServiceOverNATS: a health task on JetStream is answered on the
// cluster's event subject, through the cluster registry's kubeconfig file;
// a cluster the registry does not know is answered with a failure.
func TestServiceOverNATS(t *testing.T) {
	s := newSpoke(t)
	s.healthy("")
	_, js := natstest.StartHub(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sno-1.kubeconfig"), kube.Kubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	svc := stability.New(js, stability.Config{Clusters: clusterkube.Dir(dir), Interval: 20 * time.Millisecond})
	stopped := make(chan error, 1)
	go func() {
		err := svc.Run(ctx)
		if err != nil {
			t.Logf("service: %v", err)
		}
		stopped <- err
	}()
	t.Cleanup(func() { cancel(); <-stopped })

	ask := func(cluster string, req events.HealthCheckRequested) cloudevents.Event {
		t.Helper()
		var subjects []string
		for _, typ := range []string{events.TypeHealthPassed, events.TypeHealthFailed} {
			sub, err := events.SubjectFor(typ, cluster)
			if err != nil {
				t.Fatal(err)
			}
			subjects = append(subjects, sub)
		}
		cons, err := js.OrderedConsumer(s.ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: subjects})
		if err != nil {
			t.Fatal(err)
		}
		e, err := events.New("/test", cluster, req)
		if err != nil {
			t.Fatal(err)
		}
		subj, _ := events.SubjectFor(req.EventType(), cluster)
		if _, err := bus.NewPublisher(js).Publish(s.ctx, subj, e); err != nil {
			t.Fatal(err)
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(30 * time.Second))
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		ans, err := bus.FromHeaders(msg.Headers(), msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		return ans
	}

	ans := ask("sno-1", events.HealthCheckRequested{ClusterID: "sno-1", Generation: 3, Step: "PrePivotHealth", StableForSeconds: 1,
		Timeout: events.Duration(30 * time.Second), Tiers: []events.HealthTier{events.TierMandatory}})
	if ans.Type() != events.TypeHealthPassed {
		t.Fatalf("answer %s: %s", ans.Type(), ans.Data())
	}
	passed, err := events.DataAs[events.HealthPassed](ans)
	if err != nil || passed.Step != "PrePivotHealth" || passed.Generation != 3 || len(passed.Checks) != 4 {
		t.Fatalf("passed %+v, %v; want the step, generation and the 4 mandatory checks", passed, err)
	}

	ans = ask("sno-9", events.HealthCheckRequested{ClusterID: "sno-9", Generation: 1, Step: "PrepHealth", StableForSeconds: 1})
	failed, err := events.DataAs[events.HealthFailed](ans)
	if err != nil || ans.Type() != events.TypeHealthFailed || failed.Reason != "UnknownCluster" {
		t.Fatalf("answer %s %+v, %v; want health.failed UnknownCluster", ans.Type(), failed, err)
	}
}
