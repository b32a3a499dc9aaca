package bus_test

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"

	"ibu.dev/shared/bus"
)

func TestRideOutRetriesOnlyAPassingOutage(t *testing.T) {
	calls := 0
	err := bus.RideOut(t.Context(), func() error {
		if calls++; calls < 3 {
			return nats.ErrTimeout
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("two timeouts then success: %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	refused := errors.New("permissions violation")
	if err := bus.RideOut(t.Context(), func() error { calls++; return refused }); !errors.Is(err, refused) || calls != 1 {
		t.Errorf("a lasting failure: %v after %d calls, want it after 1", err, calls)
	}
}
