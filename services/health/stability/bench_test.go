package stability_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"

	"ibu.dev/services/health/stability"
)

type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// BenchmarkRound is one full check round (every check, both tiers) against
// the real API server holding 50 ClusterOperators and 200 CSVs. It reports
// the time per round and the API requests per round: one LIST per resource
// type, whatever the number of objects.
func BenchmarkRound(b *testing.B) {
	s := newSpoke(b)
	s.healthy("")
	for i := range 48 {
		s.create(gvrCO, false, fmt.Sprintf("operator-%02d", i), nil, operatorOK)
	}
	for i := range 199 {
		s.create(gvrCSV, true, fmt.Sprintf("operator-%03d.v1.0.0", i), nil, map[string]any{"phase": "Succeeded"})
	}
	var n atomic.Int64
	cfg := kube.Config()
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt, &n} })
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rs, err := stability.Round(s.ctx, dc, stability.Selection{})
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range rs {
		if !r.Passed {
			b.Fatalf("%s failed: %s", r.Name, r.Message)
		}
	}
	n.Store(0)
	b.ResetTimer()
	for b.Loop() {
		if _, err := stability.Round(s.ctx, dc, stability.Selection{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perRound := float64(n.Load()) / float64(b.N)
	b.ReportMetric(perRound, "requests/round")
	b.ReportMetric(float64(len(stability.Names())), "checks/round")
	b.Logf("50 ClusterOperators, 200 CSVs: %.1f API requests per round for %d checks (target: one LIST per resource type, 8 types); %s per round (target < 200ms)",
		perRound, len(stability.Names()), (b.Elapsed() / time.Duration(b.N)).Round(time.Microsecond))
}
