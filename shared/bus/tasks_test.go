package bus_test

import (
	"testing"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/testkit/natstest"
)

func TestTaskPlacement(t *testing.T) {
	for _, c := range []struct {
		cluster, subject, durable string
		bad                       bool
	}{
		{"", "ibu.task.health.*", "health", false},
		{"sno-1", "ibu.task.health.sno-1", "health-sno-1", false},
		{"SNO_1", "", "", true},
	} {
		subject, durable, err := bus.TaskPlacement("health", c.cluster)
		if (err != nil) != c.bad || subject != c.subject || durable != c.durable {
			t.Errorf("TaskPlacement(health, %q) = %q, %q, %v", c.cluster, subject, durable, err)
		}
	}
}

// Answer publishes on the answer's subject for the task's cluster with the
// task's id and ".answer"; an answer that cannot be built (the task names
// no valid cluster) is Permanent, so a handler does not retry it forever.
func TestAnswer(t *testing.T) {
	_, js := natstest.StartHub(t)
	pub := bus.NewPublisher(js)
	task, err := events.New("/clusters/sno-1/node-agent", "sno-1",
		events.HealthCheckRequested{ClusterID: "sno-1", Generation: 3, Step: "PostPivot", StableForSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	task.SetID("sno-1.run.3.PostPivot")
	answer := events.HealthPassed{ClusterID: "sno-1", Generation: 3, Step: "PostPivot"}
	if err := pub.Answer(t.Context(), "/services/health", task, answer); err != nil {
		t.Fatalf("Answer: %v", err)
	}
	subject, err := events.SubjectFor(events.TypeHealthPassed, "sno-1")
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(t.Context(), bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(t.Context(), subject)
	if err != nil {
		t.Fatalf("no answer on %s: %v", subject, err)
	}
	e, err := bus.FromHeaders(msg.Header, msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() != "sno-1.run.3.PostPivot.answer" || e.Subject() != "sno-1" {
		t.Errorf("answer id %q subject %q", e.ID(), e.Subject())
	}

	task.SetSubject("not a cluster")
	if err := pub.Answer(t.Context(), "/services/health", task, answer); !bus.IsPermanent(err) {
		t.Errorf("Answer to a task about no valid cluster = %v, want a Permanent error", err)
	}
}
