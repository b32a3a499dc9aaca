package pullplan_test

import (
	"fmt"
	"testing"
	"time"

	"ibu.dev/node-agent/agent"
	"ibu.dev/services/precache/pullplan"
	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage/seedsim"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/testkit/registrytest"
)

// benchSet is the node: 20 images of ~20 MB (an 8 MB base layer in
// all, a 4 MB layer per group of five, 8 MB of their own).
var benchSet = seedsim.ImageSet{Count: 20, BaseSize: 8 << 20, GroupSize: 5, GroupBytes: 4 << 20, OwnBytes: 8 << 20, Seed: 42}

// benchRate is the registry's per-connection download rate.
const benchRate = 40 << 20

func prepDone(b *testing.B, n *node) time.Duration {
	b.Helper()
	start := time.Now()
	n.prep()
	st := n.wait(10*time.Minute, "Prep ended", prepEnded)
	if st.State != stages.Completed {
		b.Fatalf("%s: Prep %s: %s", n.id, st.State, st.Message)
	}
	return time.Since(start)
}

// BenchmarkPrecacheNode (a): one node pulls the release through the
// precache service's plan (10 at a time, shared layers first) from a
// registry throttled per connection, against a sequential pull of the same
// list into the same kind of store, in the same run. Prints speedup: the
// sequential time over the planned time, and bytes: what the registry
// served for the planned node over the release's unique layers.
func BenchmarkPrecacheNode(b *testing.B) {
	for range b.N {
		r := newRig(b, rigOptions{set: benchSet, registry: []registrytest.Option{registrytest.WithBlobRate(benchRate)},
			service: pullplan.Config{Name: "bench"}})
		seq := r.node("sno-sequential", false, func(c *agent.Config) {
			c.Services = agent.Services{}
			c.PrecacheConcurrency = 1
		})
		seq.start()
		tSeq := prepDone(b, seq)
		seqServed := r.reg.BlobStats().BytesServed

		r.reg.ResetStats()
		planned := r.node("sno-planned", false, nil)
		planned.start()
		tPlan := prepDone(b, planned)
		served := r.reg.BlobStats().BytesServed
		st := planned.status()

		if d, ok := lastEvent[events.PrecacheCompleted](seq); ok {
			fmt.Printf("sequential precache step: %dms\n", d.DurationMs)
		}
		if d, ok := lastEvent[events.PrecacheCompleted](planned); ok {
			fmt.Printf("planned precache step: %dms\n", d.DurationMs)
		}
		speedup := tSeq.Seconds() / tPlan.Seconds()
		ratio := float64(served) / float64(r.set.UniqueBytes)
		b.ReportMetric(speedup, "speedup")
		b.ReportMetric(ratio, "bytes-ratio")
		fmt.Printf("images: %d, naive sum %.1f MiB, unique layers %.1f MiB, registry %d MiB/s per connection\n",
			len(r.set.Images), mib(r.set.NaiveBytes), mib(r.set.UniqueBytes), benchRate>>20)
		fmt.Printf("sequential Prep: %s (registry served %.1f MiB); planned Prep: %s (served %.1f MiB); %s\n",
			tSeq.Round(time.Millisecond), mib(seqServed), tPlan.Round(time.Millisecond), mib(served), progressLine(st))
		fmt.Printf("speedup: %.2f\n", speedup)
		fmt.Printf("bytes: %.3f (vs naive sum %.3f)\n", ratio, float64(r.set.NaiveBytes)/float64(r.set.UniqueBytes))
	}
}

// BenchmarkPrecacheFleet (b): 50 simulated nodes in one process sharing
// the sim blob store Prep at once. Prints fleet-bytes: what the registry
// served over one node's unique layers.
func BenchmarkPrecacheFleet(b *testing.B) {
	const nodes = 50
	for range b.N {
		r := newRig(b, rigOptions{set: benchSet, service: pullplan.Config{Name: "bench"}})
		var ns []*node
		for i := range nodes {
			n := r.node(fmt.Sprintf("sno-%02d", i), true, nil)
			n.start()
			ns = append(ns, n)
		}
		start := time.Now()
		for _, n := range ns {
			n.prep()
		}
		for _, n := range ns {
			if st := n.wait(10*time.Minute, "Prep ended", prepEnded); st.State != stages.Completed {
				b.Fatalf("%s: Prep %s: %s", n.id, st.State, st.Message)
			}
		}
		took := time.Since(start)
		served := r.reg.BlobStats().BytesServed
		ratio := float64(served) / float64(r.set.UniqueBytes)
		b.ReportMetric(ratio, "fleet-bytes")
		fmt.Printf("%d nodes: Prep of all in %s; registry served %.1f MiB for %.1f MiB of unique layers per node (naive: %.1f MiB)\n",
			nodes, took.Round(time.Millisecond), mib(served), mib(r.set.UniqueBytes), mib(r.set.NaiveBytes*nodes))
		fmt.Printf("fleet-bytes: %.3f\n", ratio)
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func progressLine(st state.Status) string {
	if st.Precache == nil {
		return "no progress"
	}
	return "final progress: " + st.Precache.Summary()
}
