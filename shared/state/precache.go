package state

import (
	"fmt"
	"strings"
	"time"
)

// Summary renders progress for a condition message with bytes, rate and
// ETA: "40/125 images, 3.1/9.8 GiB, 85 MiB/s, ETA 1m20s". Images done
// counts those the node had before. The typed fields stay the source of
// truth; this is for people.
func (p Precache) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d images", p.Pulled, p.Total)
	if p.Failed > 0 {
		fmt.Fprintf(&b, " (%d failed)", p.Failed)
	}
	if p.BytesTotal > 0 {
		unit, div := byteUnit(p.BytesTotal)
		fmt.Fprintf(&b, ", %.1f/%.1f %s", float64(p.BytesDone)/div, float64(p.BytesTotal)/div, unit)
	}
	if p.RateBytesPerSec > 0 {
		unit, div := byteUnit(int64(p.RateBytesPerSec))
		fmt.Fprintf(&b, ", %.0f %s/s", p.RateBytesPerSec/div, unit)
	}
	if p.Pulled+p.Failed < p.Total {
		if p.ETASeconds > 0 {
			fmt.Fprintf(&b, ", ETA %s", time.Duration(p.ETASeconds)*time.Second)
		} else {
			b.WriteString(", ETA unknown")
		}
	}
	return b.String()
}

func byteUnit(n int64) (string, float64) {
	switch {
	case n >= 1<<30:
		return "GiB", 1 << 30
	case n >= 1<<20:
		return "MiB", 1 << 20
	case n >= 1<<10:
		return "KiB", 1 << 10
	}
	return "B", 1
}
