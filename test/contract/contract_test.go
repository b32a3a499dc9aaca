package contract

import (
	"testing"

	"github.com/nats-io/nats.go"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/testkit/natstest"
)

func wantStream(s events.Spec) string {
	switch s.Scope {
	case events.ScopeRequest:
		return bus.StreamRequests
	case events.ScopeTask:
		return bus.StreamTasks
	default:
		return bus.StreamEvents
	}
}

// Every type of the contract, published on its subject, lands in the stream
// its scope names — checked by the server's own PubAck, on a real embedded
// JetStream with the topology the services ensure.
func TestEveryEventTypeLandsInItsStream(t *testing.T) {
	_, js := natstest.StartHub(t)
	specs := events.All()
	if len(specs) < 30 {
		t.Fatalf("contract has %d types, want at least 30", len(specs))
	}
	for _, s := range specs {
		id := "sno-001"
		if s.Scope == events.ScopePlan {
			id = "spring-rollout"
		}
		subject, err := events.SubjectFor(s.Type, id)
		if err != nil {
			t.Errorf("%s: %v", s.Type, err)
			continue
		}
		ack, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: subject, Data: []byte("{}")})
		if err != nil {
			t.Errorf("%s on %s: no stream took it: %v", s.Type, subject, err)
			continue
		}
		if ack.Stream != wantStream(s) {
			t.Errorf("%s on %s went to %s, want %s", s.Type, subject, ack.Stream, wantStream(s))
		}
	}
	// DLQ subjects of every service land in the DLQ stream and nowhere else.
	for _, svc := range []string{events.ServiceScheduler, events.ServiceSeedBuilder, events.ServicePrecache,
		events.ServiceBackupRestore, events.ServiceHealth, events.ServiceNodeAgent} {
		subject, err := events.DLQSubject(svc)
		if err != nil {
			t.Fatal(err)
		}
		ack, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: subject, Data: []byte("x")})
		if err != nil || ack.Stream != bus.StreamDLQ {
			t.Errorf("DLQ subject %s: ack %+v, err %v", subject, ack, err)
		}
	}
}

// Task subjects are per service and per cluster, so one service's durable
// consumer filter (ibu.task.<service>.>) never sees another's work.
func TestTaskSubjectsArePerServiceAndCluster(t *testing.T) {
	seen := map[string]string{}
	for _, s := range events.All() {
		if s.Scope != events.ScopeTask {
			continue
		}
		a, err := events.TaskSubject(s.Service, "sno-001")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := events.TaskSubject(s.Service, "sno-002")
		if a == b {
			t.Errorf("%s: the subject does not carry the cluster: %s", s.Type, a)
		}
		if want := "ibu.task." + s.Service + ".sno-001"; a != want {
			t.Errorf("%s: subject %s, want %s", s.Type, a, want)
		}
		seen[s.Type] = a
	}
	if len(seen) == 0 {
		t.Fatal("no task types in the contract")
	}
}
