package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/agent/simspoke"
	"ibu.dev/node-agent/host/sim"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/testkit/natstest"
	"ibu.dev/shared/testkit/registrytest"
)

// Environment knobs of BenchmarkFleetSim.
const (
	envAgents = "IBU_BENCH_AGENTS" // number of simulated spokes (default 1000)
	envConns  = "IBU_BENCH_CONNS"  // NATS connections the spokes share (default: one per spoke)
	envDir    = "IBU_BENCH_DIR"    // where the spokes' directories go (default: the test's temp dir)
)

// phaseTimeout bounds each phase of a fleet run.
const phaseTimeout = 10 * time.Minute

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// spokesDir makes the directory holding every spoke's files: under
// IBU_BENCH_DIR when set (e.g. a tmpfs, to take the shared disk's flushes
// out of the figures), else in the test's temp dir.
func spokesDir(tb testing.TB) string {
	tb.Helper()
	parent := os.Getenv(envDir)
	if parent == "" {
		return tb.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "ibu-fleet-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			tb.Error(err)
		}
	})
	return dir
}

type phase struct {
	name     string
	wall     time.Duration
	events   uint64 // IBU_EVENTS messages at the end of the phase, minus at its start
	writes   uint64 // IBU_STATUS writes
	blobGets int    // registry blob downloads
}

type fleetResult struct {
	agents, conns     int
	phases            []phase
	events            uint64 // IBU_EVENTS messages once every spoke stopped
	before, after     runtime.MemStats
	goroutinesBefore  int
	goroutinesRunning int
	boots             int
}

// runFleet runs agents simulated spokes over conns NATS connections to one
// embedded JetStream, with one seed in one registry, through start
// (registration), Prep, Upgrade and Finalize (Idle); only the phases are
// under tc's timer.
func runFleet(tb testing.TB, tc timerControl, agents, conns int) fleetResult {
	tb.Helper()
	tc.StopTimer()
	h := startHub(tb)
	bd := watchBoard(tb, h)
	reg := registrytest.Start(tb)
	ostreeTar := tarOf(tb, map[string]string{"repo/config": "[core]\nmode=archive-z2\n", "repo/objects/": "<dir>"})
	seedRef := pushSeed(tb, reg, seedimage.BytesOpener(ostreeTar), sim.Checksum(seedVersion), fakeImages(5))
	root := spokesDir(tb)

	r := fleetResult{agents: agents, conns: conns}
	runtime.GC()
	runtime.ReadMemStats(&r.before)
	r.goroutinesBefore = runtime.NumGoroutine()
	jss := make([]jetstream.JetStream, conns)
	for i := range jss {
		_, jss[i] = natstest.Connect(tb, h.url)
	}

	ids := make([]string, agents)
	spokes := make([]*simspoke.Spoke, agents)
	for i := range spokes {
		id := fmt.Sprintf("sno-%04d", i)
		ids[i] = id
		sp := simspoke.New(agent.Config{
			ClusterID: id, Version: oldVersion, Fingerprint: benchFingerprint(), Labels: map[string]string{"fleet": "bench"},
			HeartbeatInterval: time.Hour, ServiceTimeout: time.Minute,
		}, filepath.Join(root, id), oldStateroot)
		sp.Logger = discardLogger()
		// The running system's identity, which the new stateroot keeps.
		oldRoot, _, err := sp.Host.Stateroots().Paths(tb.Context(), oldStateroot)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(oldRoot, "etc", "hostname"), []byte(id+"\n"), 0o644); err != nil {
			tb.Fatal(err)
		}
		spokes[i] = sp
	}

	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, agents)
	stopped, launched := false, 0
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		deadline := time.NewTimer(time.Minute)
		defer deadline.Stop()
		for range launched {
			select {
			case err := <-errs:
				if err != nil {
					tb.Errorf("spoke: %v", err)
				}
			case <-deadline.C:
				tb.Errorf("spokes did not stop within a minute")
				return
			}
		}
	}
	tb.Cleanup(stop)

	run := func(name string, fn func()) {
		ev, gets, ws := h.eventCount(tb), len(reg.BlobGets()), h.statusWrites(tb)
		tc.StartTimer()
		start := time.Now()
		fn()
		wall := time.Since(start)
		tc.StopTimer()
		r.phases = append(r.phases, phase{name: name, wall: wall, events: h.eventCount(tb) - ev,
			blobGets: len(reg.BlobGets()) - gets, writes: h.statusWrites(tb) - ws})
	}
	run("start (register)", func() {
		for i, sp := range spokes {
			launched++
			go func() {
				err := sp.Run(ctx, jss[i%conns])
				if err != nil {
					err = fmt.Errorf("%s: %w", sp.Config.ClusterID, err)
				}
				errs <- err
			}()
		}
		bd.wait(tb, ids, stages.IdlePosition, 0, phaseTimeout)
	})
	for _, p := range []struct {
		name  string
		stage stages.Stage
		gen   int64
		want  stages.Position
	}{
		{"Prep", stages.Prep, 1, prepDone},
		{"Upgrade", stages.Upgrade, 2, upgradeDone},
		{"Finalize (Idle)", stages.Idle, 3, stages.IdlePosition},
	} {
		run(p.name, func() {
			h.desire(tb, ids, p.stage, p.gen, seedRef)
			bd.wait(tb, ids, p.want, p.gen, phaseTimeout)
		})
	}
	runtime.GC()
	runtime.ReadMemStats(&r.after)
	r.goroutinesRunning = runtime.NumGoroutine()
	stop()
	r.events = h.eventCount(tb)
	for _, sp := range spokes {
		r.boots += sp.Boots
	}
	return r
}

func (r fleetResult) print(w io.Writer) {
	fmt.Fprintf(w, "fleet: %d simulated spokes, %d NATS connection(s), one embedded JetStream, one registry, GOMAXPROCS %d\n",
		r.agents, r.conns, runtime.GOMAXPROCS(0))
	var total, work time.Duration
	for i, p := range r.phases {
		total += p.wall
		if i > 0 {
			work += p.wall
		}
		fmt.Fprintf(w, "  %-17s %8s  %7d events  %7d status writes  %5d blob GETs\n", p.name, fmtDur(p.wall), p.events, p.writes, p.blobGets)
	}
	fmt.Fprintf(w, "total: %s (Prep+Upgrade+Finalize %s); %d reboots\n", fmtDur(total), fmtDur(work), r.boots)
	fmt.Fprintf(w, "events published (IBU_EVENTS messages): %d, %.1f per agent\n", r.events, float64(r.events)/float64(r.agents))
	mb := func(v uint64) string { return fmt.Sprintf("%.1f MB", float64(v)/1e6) }
	kb := func(a, b uint64) string { return fmt.Sprintf("%.1f KB", (float64(b)-float64(a))/1e3/float64(r.agents)) }
	fmt.Fprintf(w, "memory: HeapInuse %s -> %s (%s per agent); Sys %s -> %s (%s per agent)\n",
		mb(r.before.HeapInuse), mb(r.after.HeapInuse), kb(r.before.HeapInuse, r.after.HeapInuse),
		mb(r.before.Sys), mb(r.after.Sys), kb(r.before.Sys, r.after.Sys))
	fmt.Fprintf(w, "goroutines: %d -> %d (%.1f per agent)\n", r.goroutinesBefore, r.goroutinesRunning,
		float64(r.goroutinesRunning-r.goroutinesBefore)/float64(r.agents))
}

// BenchmarkFleetSim runs IBU_BENCH_AGENTS (default 1,000) simulated spokes
// in one process against one embedded JetStream and one registry: all
// register, then all Prep, all Upgrade (a zero-delay simulated reboot) and
// all Finalize, each phase started by writing every cluster's desired
// state and finished when one WatchAll of IBU_STATUS has seen every
// cluster there. IBU_BENCH_CONNS sets how many NATS connections the
// spokes share (default one each, as real spokes); IBU_BENCH_DIR where
// the spokes' files go (default the test's temp dir: then every spoke's
// journal fsyncs hit this machine's one disk, which real spokes do not
// share; IBU_BENCH_DIR=/dev/shm shows the figures without that). Run it
// once:
//
//	go test -run '^$' -bench BenchmarkFleetSim -benchtime 1x ./bench/
//
// It prints the wall time per phase and in total, the events published,
// and the heap and process memory per agent (the embedded server's
// included).
func BenchmarkFleetSim(b *testing.B) {
	agents := envInt(b, envAgents, 1000)
	conns := min(envInt(b, envConns, agents), agents)
	for range b.N {
		r := runFleet(b, b, agents, conns)
		var total time.Duration
		for _, p := range r.phases {
			total += p.wall
		}
		b.ReportMetric(total.Seconds(), "total-s")
		b.ReportMetric(float64(r.events)/float64(agents), "events/agent")
		r.print(os.Stdout)
	}
}

// TestFleetSmoke runs three spokes through the fleet run, so that `go
// test` exercises its helpers.
func TestFleetSmoke(t *testing.T) {
	r := runFleet(t, noTimer{}, 3, 2)
	if len(r.phases) != 4 || r.boots != 3 || r.events == 0 {
		t.Fatalf("fleet run: %d phases, %d boots, %d events", len(r.phases), r.boots, r.events)
	}
	if testing.Verbose() {
		r.print(t.Output())
	}
}
