package state_test

import (
	"testing"

	"ibu.dev/shared/state"
)

func TestPrecacheSummary(t *testing.T) {
	for _, c := range []struct {
		p    state.Precache
		want string
	}{
		{state.Precache{Total: 125, Pulled: 40, BytesDone: 3328599654, BytesTotal: 10522669875, RateBytesPerSec: 85 << 20, ETASeconds: 80},
			"40/125 images, 3.1/9.8 GiB, 85 MiB/s, ETA 1m20s"},
		{state.Precache{Total: 3, Pulled: 1}, "1/3 images, ETA unknown"},
		{state.Precache{Total: 3, Pulled: 2, Failed: 1, BytesDone: 2048, BytesTotal: 4096}, "2/3 images (1 failed), 2.0/4.0 KiB"},
	} {
		if got := c.p.Summary(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.p, got, c.want)
		}
	}
}
