package events_test

import (
	"errors"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"ibu.dev/shared/events"
)

func TestCheckSubjectCluster(t *testing.T) {
	ev := func(subject, data string) cloudevents.Event {
		e := cloudevents.NewEvent()
		e.SetSubject(subject)
		_ = e.SetData(cloudevents.ApplicationJSON, []byte(data))
		return e
	}
	for _, c := range []struct {
		name, subject string
		e             cloudevents.Event
		bad           bool
	}{
		{"own event", "ibu.event.c1.cluster.stage.changed", ev("c1", `{"clusterId":"c1"}`), false},
		{"other cluster in ce subject", "ibu.event.c1.cluster.stage.changed", ev("c2", `{"clusterId":"c1"}`), true},
		{"other cluster in data", "ibu.event.c1.cluster.stage.changed", ev("c1", `{"clusterId":"c2"}`), true},
		{"own task", "ibu.task.health.c1", ev("c1", `{"clusterId":"c1"}`), false},
		{"task for another", "ibu.task.health.c1", ev("c1", `{"clusterId":"c9"}`), true},
		{"plan event", "ibu.event.plan.p1.plan.status.changed", ev("p1", `{"clusterId":"c2"}`), false},
		{"request", "ibu.request.plan.create", ev("p1", `{}`), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := events.CheckSubjectCluster(c.subject, c.e)
			if (err != nil) != c.bad || (err != nil && !errors.Is(err, events.ErrClusterMismatch)) {
				t.Fatalf("CheckSubjectCluster = %v, want bad=%v", err, c.bad)
			}
			if err != nil && events.Reason(err) != "ClusterMismatch" {
				t.Fatalf("reason %s", events.Reason(err))
			}
		})
	}
}
