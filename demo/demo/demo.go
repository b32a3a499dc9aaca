package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"ibu.dev/cli/dashboard"
	"ibu.dev/demo/fleet"
	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/agent/simspoke"
	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/host/sim"
	"ibu.dev/services/scheduler/rollout"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/fingerprint"
	"ibu.dev/shared/natsembed"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/seedimage/seedsim"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/telemetry"
)

// The demo runs real parts end to end: an embedded JetStream hub, an
// in-process OCI registry with a seed image, and a node agent per cluster
// on a simulated host (package fleet). Before the scheduler takes over,
// the demo writes one cluster's desired stage itself, as the scheduler
// does.
type demo struct {
	out      io.Writer
	js       jetstream.JetStream
	nc       *nats.Conn
	pub      *bus.Publisher
	status   jetstream.KeyValue
	desired  jetstream.KeyValue
	log      *slog.Logger
	tracer   trace.TracerProvider
	seedAuth []seedimage.Option
	started  time.Time
	// dashboardURL is where the demo's dashboard serves, if it does.
	dashboardURL string

	mu  sync.Mutex
	gen map[string]int64

	images seedsim.ImageSetResult // the release's images, pushed with the seed
	blobs  *sim.BlobCache         // the simulated nodes' shared blob store
	reg    *fleet.Registry
}

const (
	demoSource = "/ibu-demo"
	demoPlan   = "demo-rollout"
)

// Run runs the demo and prints its account to cfg.Out; with
// cfg.KeepRunning it then leaves the hub up until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "ibu-demo-")
	if err != nil {
		return fmt.Errorf("create demo directory: %w", err)
	}
	defer os.RemoveAll(dir)

	// The consumers' own warnings about the malformed messages would
	// interleave with the demo's account of them; keep only errors.
	log := slog.New(slog.NewTextHandler(cfg.Err, &slog.HandlerOptions{Level: slog.LevelError}))
	d := &demo{out: cfg.Out, log: log, started: time.Now(), gen: map[string]int64{}}
	d.say("hub", "starting embedded nats-server with JetStream (file storage in %s)", dir)
	srv, err := natsembed.StartHub(ctx, natsembed.Config{StoreDir: filepath.Join(dir, "jetstream")})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	d.nc, d.js, err = fleet.Connect(srv.URL(), "ibu-demo")
	if err != nil {
		return err
	}
	defer d.nc.Close()
	d.pub = bus.NewPublisher(d.js)
	if d.status, err = d.js.KeyValue(ctx, bus.BucketStatus); err != nil {
		return fmt.Errorf("open %s: %w", bus.BucketStatus, err)
	}
	if d.desired, err = d.js.KeyValue(ctx, bus.BucketDesired); err != nil {
		return fmt.Errorf("open %s: %w", bus.BucketDesired, err)
	}
	d.say("hub", "ready at %s: streams %s, buckets %s", srv.URL(),
		strings.Join([]string{bus.StreamRequests, bus.StreamTasks, bus.StreamEvents, bus.StreamDLQ}, " "),
		strings.Join([]string{bus.BucketClusters, bus.BucketPlans, bus.BucketDesired, bus.BucketStatus}, " "))

	if cfg.Dashboard != "" {
		ln, err := listenDashboard(cfg.Dashboard)
		if err != nil {
			return err
		}
		dctx, stopDash := context.WithCancel(ctx)
		dashDone := make(chan error, 1)
		go func() { dashDone <- dashboard.Serve(dctx, d.js, ln, dashboard.Options{Logger: log}) }()
		defer func() { stopDash(); <-dashDone }()
		d.dashboardURL = "http://" + ln.Addr().String() + "/"
		d.say("hub", "dashboard: %s", d.dashboardURL)
	}

	audit := newAudit()
	sub, err := bus.Consume(ctx, d.js, bus.StreamEvents, "demo-audit", audit.handle,
		bus.ConsumeService("ibuctl"), bus.ConsumeConcurrency(4), bus.ConsumeLogger(log))
	if err != nil {
		return fmt.Errorf("start audit consumer: %w", err)
	}
	defer sub.Stop()

	d.reg = fleet.StartRegistry("ibu", "s3cret")
	defer d.reg.Close()
	seed, stopSeed, err := d.buildSeed(ctx, filepath.Join(dir, "seed"))
	if err != nil {
		return err
	}
	defer stopSeed()
	tf, err := os.Create(cfg.Traces)
	if err != nil {
		return fmt.Errorf("trace file: %w", err)
	}
	defer tf.Close()
	tp, err := telemetry.NewProvider(ctx, telemetry.Config{ServiceName: "ibu-demo", Exporter: "file", Writer: tf})
	if err != nil {
		return err
	}
	d.tracer = tp
	results, err := d.fleet(ctx, seed, fleetOptions{n: cfg.Clusters, dir: filepath.Join(dir, "spokes"),
		rebootDelay: cfg.RebootDelay, pullDelay: cfg.PullDelay, failureRate: cfg.FailureRate})
	if serr := tp.Shutdown(context.WithoutCancel(ctx)); serr != nil && err == nil {
		err = fmt.Errorf("flush traces: %w", serr)
	}
	if err != nil {
		return err
	}
	d.precacheSummary(cfg.Clusters)
	if err := d.badInput(ctx); err != nil {
		return err
	}
	stream, err := d.js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		return err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	if err := audit.waitFor(ctx, int(info.State.Msgs), 10*time.Second); err != nil {
		return err
	}
	d.summary(results, audit)
	if err := d.printTraces(cfg.Traces, demoPlan, results); err != nil {
		return err
	}
	if cfg.KeepRunning {
		fmt.Fprintf(d.out, "\nhub still running: NATS_URL=%s (Ctrl-C stops it)\n", srv.URL())
		if d.dashboardURL != "" {
			fmt.Fprintf(d.out, "dashboard: %s\n", d.dashboardURL)
		}
		<-ctx.Done()
	}
	return nil
}

// listenDashboard listens on addr, or on a free loopback port when addr's
// port is taken (the demo must not fail because 8080 is busy).
func listenDashboard(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		host, _, _ := net.SplitHostPort(addr)
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return nil, fmt.Errorf("dashboard listen on %s: %w", addr, err)
	}
	return ln, nil
}

func (d *demo) say(section, format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.2fs] %-8s %s\n", time.Since(d.started).Seconds(), section, fmt.Sprintf(format, args...))
}

// clusterResult is one simulated cluster's outcome.
type clusterResult struct {
	id       string
	from     string
	final    state.Status
	refused  []string
	failed   bool
	upgraded bool
}

// fleetOptions shape the simulated fleet.
type fleetOptions struct {
	n           int
	dir         string
	rebootDelay time.Duration
	pullDelay   time.Duration
	failureRate float64
}

// fleet starts a node agent on a simulated host for each of n clusters,
// shows one refusing a desired stage out of order, and has the scheduler
// drive them all through Prep, Upgrade and Finalize with one plan request;
// the agents do the work and report it.
func (d *demo) fleet(ctx context.Context, seed seedimage.Summary, o fleetOptions) ([]clusterResult, error) {
	n, dir := o.n, o.dir
	if err := d.startPrecache(ctx, filepath.Join(dir, "blob-store")); err != nil {
		return nil, err
	}
	failEvery := 0
	if o.failureRate > 0 {
		failEvery = max(1, int(1/o.failureRate+0.5))
	}
	results := make([]clusterResult, n)
	spokes, err := fleet.Start(ctx, fleet.Config{
		N: n, IDFormat: "sno-%02d", Dir: dir, Logger: d.log,
		JS: func(int, string) (jetstream.JetStream, error) { return d.js, nil },
		Agent: func(i int, id string) agent.Config {
			fp := seedsim.Fingerprint()
			version := "4.14.38"
			switch i {
			case 2: // a different machine with an extra operator
				fp.Architecture = "arm64"
				fp.Operators = append(fp.Operators, fingerprint.Operator{Name: "ptp-operator", Version: "4.14.0"})
			case 6: // already on a newer release than the seed
				version = "4.17.2"
			}
			results[i] = clusterResult{id: id, from: version}
			return agent.Config{
				Version: version, Fingerprint: fp, Labels: map[string]string{"site": "cell-" + id[len(id)-2:]},
				SeedOptions: d.seedAuth, HeartbeatInterval: time.Second, AgentVersion: "demo",
				Services: agent.Services{Precache: true}, ProgressInterval: 200 * time.Millisecond,
			}
		},
		Prepare: func(i int, id string, spoke *simspoke.Spoke) error {
			spoke.RebootDelay, spoke.Tracer = o.rebootDelay, d.tracer
			if failEvery > 0 && (i+1)%failEvery == 0 {
				// A cluster whose pulls fail: the counting store, one image refused.
				spoke.Images = sim.NewImages(o.pullDelay, 48<<20)
				spoke.Images.FailPull(seed.Images[i%len(seed.Images)], fmt.Errorf("simulated registry error: %w: manifest unknown", host.ErrImageNotFound))
				return nil
			}
			store, err := sim.NewOCIImages(d.blobs, filepath.Join(dir, id, "images"))
			spoke.Store = store
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	// The agents' errors once stopped are not the demo's: they ended as asked.
	defer func() { _ = spokes.Stop(30 * time.Second) }()
	if err := spokes.WaitIdle(ctx, d.js, 60*time.Second); err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	errs := make(chan error, 2)
	wg.Go(func() {
		select {
		case x := <-spokes.Exits():
			errs <- x.Lost()
		case <-ctx.Done():
		}
	})
	d.say("fleet", "%d node agents registered on simulated hosts", n)

	// Asking for Upgrade before Prep: the agent refuses, nothing changes.
	if err := d.desire(ctx, results[0].id, stages.Upgrade, seed); err != nil {
		return nil, err
	}
	st, err := d.waitStatus(ctx, results[0].id, errs, func(st state.Status) bool { return st.ObservedGeneration >= d.gen[results[0].id] })
	if err != nil {
		return nil, err
	}
	if c, ok := stages.FindCondition(st.Conditions, stages.CondUpgradeInProgress); ok && c.Reason == stages.ReasonInvalidTransition {
		results[0].refused = append(results[0].refused, "Upgrade before Prep refused: "+c.Message)
		d.say(results[0].id, "desired Upgrade while Idle refused by its agent: %s", c.Message)
	}

	// The scheduler takes over: one plan request for the whole fleet.
	sched := rollout.New(d.js, rollout.Config{Name: "demo", Tick: 100 * time.Millisecond, Telemetry: telemetry.Telemetry{Logger: d.log, Tracer: d.tracer}})
	wg.Go(func() {
		if err := sched.Run(ctx); err != nil {
			errs <- fmt.Errorf("scheduler: %w", err)
		}
	})
	ids := make([]string, n)
	for i := range results {
		ids[i] = results[i].id
	}
	req := events.PlanCreateRequested{
		PlanID: demoPlan, SeedImage: seed.Ref, SeedVersion: seed.Info.Version,
		Clusters: events.ClusterSelection{Selector: &events.LabelSelector{MatchExpressions: []events.LabelSelectorRequirement{
			{Key: "site", Operator: events.SelectorExists}}}},
		Canaries: []string{ids[1], ids[3]},
		Steps: []events.PlanStep{
			{Actions: []stages.Action{stages.ActionPrep}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 5}},
			{Actions: []stages.Action{stages.ActionUpgrade, stages.ActionFinalize}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 5}},
		},
		FailurePolicy: &events.FailurePolicy{MaxFailures: "20%", OnBreach: events.BreachPause},
	}
	e, err := events.New(demoSource, req.PlanID, req)
	if err != nil {
		return nil, err
	}
	subject, err := events.SubjectFor(e.Type(), "")
	if err != nil {
		return nil, err
	}
	if _, err := d.pub.Publish(ctx, subject, e); err != nil {
		return nil, err
	}
	d.say("plan", "published %s on %s: %d clusters by selector site, canaries %s and %s, window 5, pause past 20%% failures",
		req.PlanID, subject, n, ids[1], ids[3])
	plan, err := d.followPlan(ctx, req.PlanID, errs)
	if err != nil {
		return nil, err
	}
	for i := range results {
		st, err := d.waitStatus(ctx, results[i].id, errs, func(state.Status) bool { return true })
		if err != nil {
			return nil, err
		}
		results[i].final = st
		if j := plan.Cluster(results[i].id); j >= 0 && plan.Clusters[j].State.IsFailure() {
			results[i].refused = append(results[i].refused, events.ClipMarked(plan.Clusters[j].Message, 150))
		}
		results[i].upgraded = st.Position == stages.IdlePosition && st.BootedStateroot == seed.Info.Stateroot
	}
	return results, nil
}

// followPlan prints the plan's progress as the scheduler stores it, until
// it ends.
func (d *demo) followPlan(ctx context.Context, id string, errs <-chan error) (state.Plan, error) {
	plans, err := d.js.KeyValue(ctx, bus.BucketPlans)
	if err != nil {
		return state.Plan{}, err
	}
	w, err := plans.Watch(ctx, id)
	if err != nil {
		return state.Plan{}, err
	}
	defer w.Stop()
	deadline := time.After(60 * time.Second)
	last := ""
	failed := map[string]bool{}
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				continue
			}
			var p state.Plan
			if err := json.Unmarshal(e.Value(), &p); err != nil {
				return p, err
			}
			for _, c := range p.Clusters {
				if c.State.IsFailure() && !failed[c.ClusterID] {
					failed[c.ClusterID] = true
					d.say(c.ClusterID, "%s", events.ClipMarked(c.Message, 180))
				}
			}
			c, running := p.Counts, 0
			for _, pc := range p.Clusters {
				if pc.Busy() {
					running++
				}
			}
			line := fmt.Sprintf("%s, step %d/%d (%s): %d running, %d succeeded, %d failed of %d",
				p.Phase, p.CurrentStep+1, len(p.Spec.Steps), actionsOf(p.Spec.Steps[min(p.CurrentStep, len(p.Spec.Steps)-1)]),
				running, c.Succeeded, c.Failed, c.Total)
			if p.Reason != "" && !p.IsActive() || p.Phase == events.PlanPaused {
				line += " — " + p.Reason
			}
			if line != last {
				last = line
				if p.ETASeconds != nil {
					line += fmt.Sprintf(" (ETA %s)", time.Duration(*p.ETASeconds)*time.Second)
				}
				d.say("plan", "%s", line)
			}
			if !p.IsActive() || p.Phase == events.PlanPaused {
				return p, nil
			}
		case err := <-errs:
			return state.Plan{}, err
		case <-deadline:
			return state.Plan{}, fmt.Errorf("plan %s did not finish within 60s", id)
		case <-ctx.Done():
			return state.Plan{}, ctx.Err()
		}
	}
}

func actionsOf(s events.PlanStep) string {
	var out []string
	for _, a := range s.Actions {
		out = append(out, string(a))
	}
	return strings.Join(out, "+")
}

// desire writes the next generation of a cluster's desired stage.
func (d *demo) desire(ctx context.Context, id string, stage stages.Stage, seed seedimage.Summary) error {
	d.mu.Lock()
	d.gen[id]++
	gen := d.gen[id]
	d.mu.Unlock()
	want := state.Desired{ClusterID: id, Stage: stage, Generation: gen, PlanID: "demo"}
	if stage == stages.Prep || stage == stages.Upgrade {
		want.SeedImage, want.SeedVersion = seed.Ref, seed.Info.Version
	}
	b, err := state.EncodeDesired(want)
	if err != nil {
		return err
	}
	if _, err := d.desired.Put(ctx, id, b); err != nil {
		return fmt.Errorf("set desired stage of %s: %w", id, err)
	}
	return nil
}

// waitStatus waits for a cluster's status to satisfy cond.
func (d *demo) waitStatus(ctx context.Context, id string, errs <-chan error, cond func(state.Status) bool) (state.Status, error) {
	w, err := d.status.Watch(ctx, id)
	if err != nil {
		return state.Status{}, err
	}
	defer w.Stop()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				continue
			}
			var st state.Status
			if err := json.Unmarshal(e.Value(), &st); err != nil {
				return st, err
			}
			if cond(st) {
				return st, nil
			}
		case err := <-errs:
			return state.Status{}, err
		case <-deadline:
			return state.Status{}, fmt.Errorf("cluster %s did not reach the expected state within 30s", id)
		case <-ctx.Done():
			return state.Status{}, ctx.Err()
		}
	}
}

// badInput sends malformed messages, as a buggy client or a person with the
// nats CLI might, to a task consumer, and shows them dead-lettered with
// their reasons while the consumer goes on.
func (d *demo) badInput(ctx context.Context) error {
	handled := make(chan string, 8)
	sub, err := bus.Consume(ctx, d.js, bus.StreamTasks, "demo-health", func(_ context.Context, e cloudevents.Event) error {
		handled <- e.Type()
		return nil
	}, bus.ConsumeService(events.ServiceHealth), bus.ConsumeFilterSubjects("ibu.task.health.>"), bus.ConsumeLogger(d.log))
	if err != nil {
		return fmt.Errorf("start task consumer: %w", err)
	}
	defer sub.Stop()
	subject := "ibu.task.health.sno-01"
	bad := []struct{ what, body string }{
		{"wrong specversion", `{"specversion":"0.3","id":"b1","source":"/x","type":"dev.ibu.health.requested.v1","data":{}}`},
		{"unknown type", `{"specversion":"1.0","id":"b2","source":"/x","type":"dev.ibu.reboot.now.v1","data":{}}`},
		{"schema mismatch", `{"specversion":"1.0","id":"b3","source":"/x","type":"dev.ibu.health.requested.v1","data":{"clusterId":"SNO 01"}}`},
		{"not JSON", `specversion=1.0 please reboot`},
	}
	for _, b := range bad {
		msg := &nats.Msg{Subject: subject, Data: []byte(b.body), Header: nats.Header{"Content-Type": []string{"application/cloudevents+json"}}}
		if _, err := d.js.PublishMsg(ctx, msg); err != nil {
			return fmt.Errorf("publish bad input (%s): %w", b.what, err)
		}
	}
	good, err := events.New(demoSource, "sno-01", events.HealthCheckRequested{ClusterID: "sno-01", Generation: 1, Step: "PostPivot", StableForSeconds: 60})
	if err != nil {
		return err
	}
	if _, err := d.pub.Publish(ctx, subject, good); err != nil {
		return err
	}
	select {
	case typ := <-handled:
		d.say("dlq", "after %d malformed messages the consumer still handled a good %s", len(bad), typ)
	case <-time.After(10 * time.Second):
		return errors.New("the task consumer did not handle the good message within 10s")
	}
	dlq, err := d.js.Stream(ctx, bus.StreamDLQ)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := dlq.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs >= uint64(len(bad)) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("DLQ holds %d messages, want %d", info.State.Msgs, len(bad))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for seq := uint64(1); seq <= uint64(len(bad)); seq++ {
		m, err := dlq.GetMsg(ctx, seq)
		if err != nil {
			return err
		}
		d.say("dlq", "%s: %s (%s)", m.Subject, m.Header.Get("Ibu-Dlq-Reason"), events.ClipMarked(m.Header.Get("Ibu-Dlq-Error"), 90))
	}
	return nil
}

// audit counts the events that reach IBU_EVENTS, as a dashboard would.
type audit struct {
	mu     sync.Mutex
	byType map[string]int
	total  int
	seen   chan struct{}
}

func newAudit() *audit { return &audit{byType: map[string]int{}, seen: make(chan struct{}, 1)} }

func (a *audit) handle(_ context.Context, e cloudevents.Event) error {
	a.mu.Lock()
	a.byType[strings.TrimSuffix(strings.TrimPrefix(e.Type(), "dev.ibu."), ".v1")]++
	a.total++
	a.mu.Unlock()
	select {
	case a.seen <- struct{}{}:
	default:
	}
	return nil
}

func (a *audit) waitFor(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		a.mu.Lock()
		got := a.total
		a.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-a.seen:
		case <-deadline:
			return fmt.Errorf("audit consumer saw %d of %d events in %s", got, n, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (d *demo) summary(results []clusterResult, a *audit) {
	fmt.Fprintf(d.out, "\n%-8s %-9s %-13s %-34s %s\n", "CLUSTER", "FROM", "RUNNING", "STAGES (s)", "NOTES")
	upgraded := 0
	for _, r := range results {
		notes := r.refused
		if r.upgraded {
			upgraded++
			notes = append(notes, "upgraded to 4.16.9 and finalized")
		}
		var durs []string
		for _, h := range r.final.History {
			durs = append(durs, fmt.Sprintf("%s %.2f", h.Stage, h.Duration().Seconds()))
		}
		fmt.Fprintf(d.out, "%-8s %-9s %-13s %-34s %s\n", r.id, r.from, r.final.BootedStateroot, strings.Join(durs, ", "), strings.Join(notes, "; "))
	}
	a.mu.Lock()
	types := slices.Sorted(maps.Keys(a.byType))
	var parts []string
	for _, t := range types {
		parts = append(parts, fmt.Sprintf("%s=%d", t, a.byType[t]))
	}
	total := a.total
	a.mu.Unlock()
	fmt.Fprintf(d.out, "\n%d of %d clusters upgraded; %d events on %s (%s)\n", upgraded, len(results), total, bus.StreamEvents, strings.Join(parts, " "))
	fmt.Fprintf(d.out, "demo finished in %.2fs\n", time.Since(d.started).Seconds())
}
