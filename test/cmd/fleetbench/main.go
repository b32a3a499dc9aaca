// Command fleetbench is the fleet simulation benchmark: it runs the whole
// system on this machine with zero simulated delays — the hub (`ibuctl
// hub`: nats-server with JetStream and ibu's topology) and the scheduler
// (cmd/scheduler) as processes of their own, built from this workspace,
// and N node agents on simulated hosts (simspoke) in this process, with a
// synthetic seed in an in-process OCI registry — and drives the fleet
// through one plan, [Prep] then [Upgrade, Finalize], with a sliding window
// of --max-concurrency. For each size it prints:
//
//   - the wall time from publishing the plan request to the plan's
//     terminal phase (as the scheduler reports it);
//   - the messages handled per second: IBU_EVENTS messages published
//     during the run plus IBU_DESIRED and IBU_STATUS writes, over the
//     wall time (and the plan record's writes, apart);
//   - the scheduler's CPU seconds per cluster, the hub's CPU and peak RSS
//     (VmHWM), read from /proc, and this process's CPU (the agents);
//   - unless --baseline=false, the same fleet (fresh hub, fresh agents)
//     driven with no scheduler: every desired stage written directly, all
//     clusters at once, the steps still barriers; and last the line
//     "ratio: <scheduler-driven wall ÷ direct-driven wall>", the
//     orchestration's cost (with --baseline=false: "ratio: <wall ÷
//     clusters> s/cluster").
//
// At 1,000 clusters it says whether the targets are met: done in under
// 60 s, hub peak RSS under 500 MiB. A missed target is a figure, not an
// error: the exit status is non-zero only when a run fails (a plan not
// Completed, an agent or a process that stops, a timeout).
//
// The agents share one NATS connection per --agents-per-conn agents (50:
// 20 connections at 1,000 clusters). Their files (journal, simulated
// stateroots) and the hub's store go under --dir: each agent fsyncs its
// journal at every step boundary, which on one shared disk dominates the
// run (real clusters have a disk each); --dir /dev/shm takes that out. The
// header shows the fsync time measured there.
//
//	go run ./test/cmd/fleetbench --clusters 100,1000 --dir /dev/shm
//
// --inproc runs the hub and the scheduler in this process instead (no
// per-process figures); with --cpuprofile that profiles all of it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/seedimage/seedsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "fleetbench:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "fleetbench:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

// The targets at 1,000 clusters.
const (
	targetClusters = 1000
	targetWall     = 60 * time.Second
	targetHubRSS   = 500 << 20
)

type config struct {
	sizes      []int
	window     int
	dir        string
	perConn    int
	baseline   bool
	inproc     bool
	timeout    time.Duration
	cpuprofile string
	ibuctl     string
	scheduler  string
	seedImages int
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("fleetbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("clusters", "100,1000", "fleet sizes to run, comma-separated")
	fs.IntVar(&c.window, "max-concurrency", 100, "the plan's sliding window, in both steps")
	fs.StringVar(&c.dir, "dir", "", "where the agents' files and the hub's store go (default: the system temp dir; /dev/shm takes the disk out)")
	fs.IntVar(&c.perConn, "agents-per-conn", 50, "agents sharing one NATS connection")
	fs.BoolVar(&c.baseline, "baseline", true, "also run each size driven directly, without the scheduler, for the ratio")
	fs.BoolVar(&c.inproc, "inproc", false, "run the hub and the scheduler in this process (no per-process CPU and RSS)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "bound on each run (registration, plan)")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of this process during each scheduler-driven run to this file (-<size> added when several sizes)")
	fs.StringVar(&c.ibuctl, "ibuctl", "", "ibuctl binary to run the hub (default: go build ibu.dev/cli/cmd/ibuctl)")
	fs.StringVar(&c.scheduler, "scheduler", "", "scheduler binary (default: go build ibu.dev/services/scheduler/cmd/scheduler)")
	fs.IntVar(&c.seedImages, "seed-images", 20, "precache images in the seed")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	for s := range strings.SplitSeq(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 9999 {
			return c, fmt.Errorf("%w: --clusters %q: want sizes from 1 to 9999, comma-separated", errUsage, *sizes)
		}
		c.sizes = append(c.sizes, n)
	}
	if c.window < 1 || c.perConn < 1 || c.timeout <= 0 || c.seedImages < 0 {
		return c, fmt.Errorf("%w: --max-concurrency, --agents-per-conn and --timeout must be positive, --seed-images not negative", errUsage)
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	b, err := newBench(ctx, cfg, stdout, stderr)
	if err != nil {
		return err
	}
	err = b.all(ctx)
	return errors.Join(err, b.close())
}

// bench is one invocation: the binaries, the registry with the seed, and
// a directory for the runs.
type bench struct {
	cfg      config
	out      io.Writer
	errw     io.Writer
	root     string
	ibuctl   string
	schedBin string
	reg      *httptest.Server
	seedRef  string
}

func newBench(ctx context.Context, cfg config, out, errw io.Writer) (b *bench, err error) {
	root, err := os.MkdirTemp(cfg.dir, "fleetbench-")
	if err != nil {
		return nil, fmt.Errorf("create the work directory: %w", err)
	}
	b = &bench{cfg: cfg, out: out, errw: errw, root: root, ibuctl: cfg.ibuctl, schedBin: cfg.scheduler}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.close())
			b = nil
		}
	}()
	if !cfg.inproc && (b.ibuctl == "" || b.schedBin == "") {
		bin := filepath.Join(root, "bin")
		ibuctl, sched, err := buildBinaries(ctx, bin, errw)
		if err != nil {
			return b, err
		}
		b.ibuctl, b.schedBin = cmp(b.ibuctl, ibuctl), cmp(b.schedBin, sched)
	}
	// The seed, in go-containerregistry's in-memory registry on loopback.
	b.reg = httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	synth, err := seedsim.New(seedVersion, cfg.seedImages)
	if err != nil {
		return b, fmt.Errorf("synthetic seed: %w", err)
	}
	img, err := synth.Build()
	if err != nil {
		return b, fmt.Errorf("build the seed: %w", err)
	}
	host := strings.TrimPrefix(b.reg.URL, "http://")
	if b.seedRef, err = seedimage.Push(ctx, host+"/telco/seed:"+seedVersion, img); err != nil {
		return b, err
	}
	return b, nil
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (b *bench) close() error {
	if b.reg != nil {
		b.reg.Close()
	}
	if err := os.RemoveAll(b.root); err != nil {
		return fmt.Errorf("remove %s: %w", b.root, err)
	}
	return nil
}

// all runs every size and prints as it goes.
func (b *bench) all(ctx context.Context) error {
	b.header()
	for _, n := range b.cfg.sizes {
		if err := b.size(ctx, n); err != nil {
			return fmt.Errorf("%d clusters: %w", n, err)
		}
	}
	return nil
}

func (b *bench) header() {
	w := b.out
	where := "hub and scheduler: processes of their own (ibuctl hub, cmd/scheduler)"
	if b.cfg.inproc {
		where = "hub and scheduler: in this process (--inproc)"
	}
	fmt.Fprintf(w, "fleetbench: %s, %d CPUs (GOMAXPROCS %d), load average %s\n",
		runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), loadavg())
	fmt.Fprintf(w, "%s; agents: simulated hosts with zero delays in this process, one NATS connection per %d agents; seed %s (%d precache images)\n",
		where, b.cfg.perConn, b.seedRef, b.cfg.seedImages)
	fsync, tmpfs, err := probeFsync(b.root)
	switch {
	case err != nil:
		fmt.Fprintf(w, "files: %s (fsync probe failed: %v)\n", b.root, err)
	case tmpfs:
		fmt.Fprintf(w, "files: %s (tmpfs: the agents' journal fsyncs cost nothing)\n", b.root)
	default:
		fmt.Fprintf(w, "files: %s (a disk: %s per fsync)\n", b.root, fmtDur(fsync))
		fmt.Fprintf(w, "  note: every agent fsyncs its journal at each step boundary, all on this one disk (a real cluster has its own),\n"+
			"  which can dominate the wall time; --dir /dev/shm takes the disk out\n")
	}
}

// size runs n clusters scheduler-driven and, with --baseline, directly,
// and prints the figures; the ratio line comes last.
func (b *bench) size(ctx context.Context, n int) error {
	w := b.out
	fmt.Fprintf(w, "\n== %s clusters: plan [Prep] then [Upgrade, Finalize], max concurrency %d ==\n", thousands(uint64(n)), b.cfg.window)
	fmt.Fprintln(w, titles[modeScheduler])
	s, err := b.runFleet(ctx, n, modeScheduler)
	if err != nil {
		return err
	}
	s.print(w)
	var d *result
	if b.cfg.baseline {
		fmt.Fprintln(w, titles[modeDirect])
		r, err := b.runFleet(ctx, n, modeDirect)
		if err != nil {
			return fmt.Errorf("direct-driven baseline: %w", err)
		}
		r.print(w)
		d = &r
	}
	if n == targetClusters {
		fmt.Fprintf(w, "target wall < %s: %s (%s)\n", fmtDur(targetWall), met(s.out.wall < targetWall), fmtDur(s.out.wall))
		if s.hubOK {
			fmt.Fprintf(w, "target hub peak RSS < %s: %s (%s)\n", mib(targetHubRSS), met(s.hub.peak < targetHubRSS), mib(s.hub.peak))
		} else {
			fmt.Fprintf(w, "target hub peak RSS < %s: not measured (--inproc)\n", mib(targetHubRSS))
		}
	}
	if d != nil {
		fmt.Fprintf(w, "ratio: %.2f (scheduler-driven %s ÷ direct-driven %s)\n",
			s.out.wall.Seconds()/d.out.wall.Seconds(), fmtDur(s.out.wall), fmtDur(d.out.wall))
	} else {
		fmt.Fprintf(w, "ratio: %.4f s/cluster (wall ÷ clusters)\n", s.out.wall.Seconds()/float64(n))
	}
	return nil
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

const (
	modeScheduler = "scheduler-driven"
	modeDirect    = "direct-driven"
)

var titles = map[string]string{
	modeScheduler: "scheduler-driven (one plan request; the scheduler writes every desired stage):",
	modeDirect:    "direct-driven baseline (no scheduler: every desired stage written directly, all clusters at once):",
}

// result is one run's figures.
type result struct {
	mode       string
	n, conns   int
	registered time.Duration
	out        outcome
	count      counters // during the run
	sched, hub usage    // CPU during the run; peak over the process's life
	schedOK    bool
	hubOK      bool
	self       time.Duration // this process's CPU during the run
	consumers  int           // consumers of KV_IBU_DESIRED at the end
}

// runFleet starts a hub, n agents and, scheduler-driven, the scheduler,
// waits until every agent registered, runs the driver, and tears it all
// down (and removes its files) whatever happened.
func (b *bench) runFleet(ctx context.Context, n int, mode string) (res result, err error) {
	res = result{mode: mode, n: n, conns: (n + b.cfg.perConn - 1) / b.cfg.perConn}
	dir, err := os.MkdirTemp(b.root, fmt.Sprintf("%s-%d-", strings.TrimSuffix(mode, "-driven"), n))
	if err != nil {
		return res, fmt.Errorf("create the run directory: %w", err)
	}
	var cleanups []func() error
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			err = errors.Join(err, cleanups[i]())
		}
		if rerr := os.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", dir, rerr))
		}
	}()

	var hub component
	var url string
	if b.cfg.inproc {
		hub, url, err = startHubInproc(ctx, filepath.Join(dir, "jetstream"))
	} else {
		var hp *hubProc
		if hp, err = startHubProc(ctx, b.ibuctl, filepath.Join(dir, "jetstream"), b.errw); err == nil {
			hub, url = hp, hp.url
		}
	}
	if err != nil {
		return res, err
	}
	cleanups = append(cleanups, func() error { return wrap("stop the hub", hub.Stop()) })
	nc, js, err := connect(url, "fleetbench")
	if err != nil {
		return res, err
	}
	cleanups = append(cleanups, func() error { nc.Close(); return nil })

	// The scheduler starts before the agents, as a hub's services do: its
	// start ensures the topology, which would undo the raised limit.
	var sched component
	drive := driveDirect
	if mode == modeScheduler {
		timeout := min(b.cfg.timeout, schedulerReadyTimeout)
		if b.cfg.inproc {
			sched, err = startSchedulerInproc(ctx, url, b.errw, timeout)
		} else {
			sched, err = startSchedulerProc(ctx, b.schedBin, url, b.errw, timeout)
		}
		if err != nil {
			return res, err
		}
		cleanups = append(cleanups, func() error { return wrap("stop the scheduler", sched.Stop()) })
		drive = driveScheduler
	}

	start := time.Now()
	f, err := startFleet(url, n, b.cfg.perConn, filepath.Join(dir, "agents"))
	if err != nil {
		return res, err
	}
	cleanups = append(cleanups, func() error { return wrap("stop the agents", f.stop()) })
	if err := waitRegistered(ctx, js, f, hub, b.cfg.timeout); err != nil {
		return res, fmt.Errorf("registration: %w", err)
	}
	res.registered = time.Since(start)

	var before counters
	var hub0, sched0 usage
	var self0 time.Duration
	var snapErr error
	profile := b.cfg.cpuprofile != "" && mode == modeScheduler
	stopProfile := func() error { return nil }
	defer func() { err = errors.Join(err, stopProfile()) }()
	env := &runEnv{js: js, fleet: f, hub: hub, sched: sched, seedRef: b.seedRef, window: b.cfg.window,
		timeout: b.cfg.timeout, progress: b.out}
	if sched != nil {
		if err := awaitInventory(ctx, env); err != nil {
			return res, err
		}
	}
	env.started = func() {
		if profile {
			stopProfile, snapErr = b.startProfile(n)
		}
		var cerr error
		before, cerr = readCounters(ctx, js)
		snapErr = errors.Join(snapErr, cerr)
		hub0, res.hubOK = hub.Usage()
		if sched != nil {
			sched0, res.schedOK = sched.Usage()
		}
		self0 = selfCPU()
	}
	env.ended = func() {
		res.self = selfCPU() - self0
		if u, ok := hub.Usage(); ok && res.hubOK {
			res.hub = usage{cpu: u.cpu - hub0.cpu, peak: u.peak}
		}
		if sched != nil {
			if u, ok := sched.Usage(); ok && res.schedOK {
				res.sched = usage{cpu: u.cpu - sched0.cpu, peak: u.peak}
			}
		}
		snapErr = errors.Join(snapErr, stopProfile())
		after, cerr := readCounters(ctx, js)
		snapErr = errors.Join(snapErr, cerr)
		res.count = after.minus(before)
		res.consumers = after.desiredConsumers
	}
	res.out, err = drive(ctx, env)
	if err != nil {
		return res, err
	}
	return res, wrap("read the hub's counters", snapErr)
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// startProfile starts the CPU profile of the run of n clusters; stop,
// which may be called more than once, ends it.
func (b *bench) startProfile(n int) (stop func() error, err error) {
	none := func() error { return nil }
	name := b.cfg.cpuprofile
	if len(b.cfg.sizes) > 1 {
		ext := filepath.Ext(name)
		name = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(name, ext), n, ext)
	}
	f, err := os.Create(name)
	if err != nil {
		return none, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return none, errors.Join(fmt.Errorf("cpu profile: %w", err), f.Close())
	}
	fmt.Fprintf(b.out, "  (CPU profile of this process: %s)\n", name)
	var once sync.Once
	var cerr error
	return func() error {
		once.Do(func() {
			pprof.StopCPUProfile()
			cerr = wrap("cpu profile", f.Close())
		})
		return cerr
	}, nil
}

func (r result) print(w io.Writer) {
	wall := r.out.wall.Seconds()
	perSec := func(v uint64) string { return thousands(uint64(float64(v)/wall + 0.5)) }
	c := r.count
	handled := c.events + c.desired + c.status
	fmt.Fprintf(w, "  registered:     %s agents on %d NATS connection%s in %s\n", thousands(uint64(r.n)), r.conns, plural(r.conns), fmtDur(r.registered))
	fmt.Fprintf(w, "  wall time:      %s (%.1f ms/cluster)\n", fmtDur(r.out.wall), 1000*wall/float64(r.n))
	fmt.Fprintf(w, "  events/s:       %s handled/s: %s IBU_EVENTS + %s desired writes + %s status writes = %s; IBU_EVENTS alone %s/s\n",
		perSec(handled), thousands(c.events), thousands(c.desired), thousands(c.status), thousands(handled), perSec(c.events))
	if r.mode == modeScheduler {
		fmt.Fprintf(w, "  plan record:    %s writes, %s at the end (≤ %s written)\n",
			thousands(c.plans), size(uint64(r.out.planBytes)), size(c.plans*uint64(r.out.planBytes)))
		if r.schedOK {
			fmt.Fprintf(w, "  scheduler CPU:  %.2f s during the run = %.4f s/cluster (peak RSS %s)\n",
				r.sched.cpu.Seconds(), r.sched.cpu.Seconds()/float64(r.n), mib(r.sched.peak))
		} else {
			fmt.Fprintf(w, "  scheduler CPU:  not measured (--inproc: counted in this process)\n")
		}
	}
	if r.hubOK {
		fmt.Fprintf(w, "  hub:            peak RSS %s; CPU %.2f s during the run; %s consumers on KV_IBU_DESIRED at the end\n",
			mib(r.hub.peak), r.hub.cpu.Seconds(), thousands(uint64(r.consumers)))
	} else {
		fmt.Fprintf(w, "  hub:            not measured (--inproc: counted in this process)\n")
	}
	avail := wall * float64(runtime.NumCPU())
	if !r.hubOK {
		parts := "agents, hub"
		if r.mode == modeScheduler {
			parts += ", scheduler"
		}
		fmt.Fprintf(w, "  CPU:            this process (%s) %.2f s of %.1f s available (%d CPUs × wall)\n",
			parts, r.self.Seconds(), avail, runtime.NumCPU())
		return
	}
	total := r.self + r.hub.cpu + r.sched.cpu
	fmt.Fprintf(w, "  CPU split:      agents (this process) %.2f s + hub %.2f s + scheduler %.2f s = %.1f s of %.1f s available (%d CPUs × wall)\n",
		r.self.Seconds(), r.hub.cpu.Seconds(), r.sched.cpu.Seconds(), total.Seconds(), avail, runtime.NumCPU())
}

// probeFsync measures fsync of a small write in dir, and whether dir is a
// tmpfs.
func probeFsync(dir string) (time.Duration, bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	const tmpfsMagic = 0x01021994
	if st.Type == tmpfsMagic {
		return 0, true, nil
	}
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return 0, false, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	const rounds = 20
	start := time.Now()
	for i := range rounds {
		if _, err := fmt.Fprintf(f, "probe %d\n", i); err != nil {
			return 0, false, err
		}
		if err := f.Sync(); err != nil {
			return 0, false, err
		}
	}
	return time.Since(start) / rounds, false, nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}

func mib(v uint64) string { return fmt.Sprintf("%.0f MiB", float64(v)/(1<<20)) }

// size is v bytes in KiB below a MiB, else in MiB.
func size(v uint64) string {
	if v < 1<<20 {
		return fmt.Sprintf("%.0f KiB", float64(v)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// thousands formats v with comma separators.
func thousands(v uint64) string {
	s := strconv.FormatUint(v, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
