package bus_test

import (
	"testing"

	"ibu.dev/shared/bus"
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
