package ibuctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/fingerprint"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/stages"
)

// The demo of the foundation: the event contract, the stage machine and the
// seed image format, end to end on a real embedded JetStream and a real
// in-process OCI registry. The fleet services (scheduler, node agent, ...)
// join it as they land; until then the demo walks each cluster's stages
// itself, through the same stage machine, KV compare-and-set and events
// that the node agent will use.
type demo struct {
	io      IO
	js      jetstream.JetStream
	nc      *nats.Conn
	pub     *bus.Publisher
	status  jetstream.KeyValue
	log     *slog.Logger
	started time.Time

	mu        sync.Mutex
	published int
}

const demoSource = "/ibuctl/demo"

func runDemo(ctx context.Context, io IO, args []string) error {
	fs := newFlags("demo", io)
	clusters := fs.Int("clusters", 12, "number of simulated clusters")
	keep := fs.Bool("keep-running", false, "leave the hub running after the demo and print its URL")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *clusters < 3 || *clusters > 500 {
		return fmt.Errorf("%w: --clusters must be between 3 and 500", ErrUsage)
	}
	dir, err := os.MkdirTemp("", "ibu-demo-")
	if err != nil {
		return fmt.Errorf("create demo directory: %w", err)
	}
	defer os.RemoveAll(dir)

	// The consumers' own warnings about the malformed messages would
	// interleave with the demo's account of them; keep only errors.
	log := slog.New(slog.NewTextHandler(io.Err, &slog.HandlerOptions{Level: slog.LevelError}))
	d := &demo{io: io, log: log, started: time.Now()}
	d.say("hub", "starting embedded nats-server with JetStream (file storage in %s)", dir)
	srv, err := startHub(ctx, filepath.Join(dir, "jetstream"), 0)
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	d.nc, d.js, err = connect(srv.URL())
	if err != nil {
		return err
	}
	defer d.nc.Close()
	d.pub = bus.NewPublisher(d.js)
	if d.status, err = d.js.KeyValue(ctx, bus.BucketStatus); err != nil {
		return fmt.Errorf("open %s: %w", bus.BucketStatus, err)
	}
	d.say("hub", "ready at %s: streams %s, buckets %s", srv.URL(),
		strings.Join([]string{bus.StreamRequests, bus.StreamTasks, bus.StreamEvents, bus.StreamDLQ}, " "),
		strings.Join([]string{bus.BucketClusters, bus.BucketPlans, bus.BucketDesired, bus.BucketStatus}, " "))

	audit := newAudit()
	sub, err := bus.Consume(ctx, d.js, bus.StreamEvents, "demo-audit", audit.handle,
		bus.ConsumeService("ibuctl"), bus.ConsumeConcurrency(4), bus.ConsumeLogger(log))
	if err != nil {
		return fmt.Errorf("start audit consumer: %w", err)
	}
	defer sub.Stop()

	seed, err := d.seed(ctx)
	if err != nil {
		return err
	}
	results, err := d.fleet(ctx, seed, *clusters)
	if err != nil {
		return err
	}
	if err := d.badInput(ctx); err != nil {
		return err
	}
	if err := audit.waitFor(ctx, d.count(), 10*time.Second); err != nil {
		return err
	}
	d.summary(results, audit)
	if *keep {
		fmt.Fprintf(io.Out, "\nhub still running: NATS_URL=%s (Ctrl-C stops it)\n", srv.URL())
		<-ctx.Done()
	}
	return nil
}

func (d *demo) say(section, format string, args ...any) {
	fmt.Fprintf(d.io.Out, "[%5.2fs] %-8s %s\n", time.Since(d.started).Seconds(), section, fmt.Sprintf(format, args...))
}

func (d *demo) publish(ctx context.Context, subjectID string, data events.Data) error {
	e, err := events.New(demoSource, subjectID, data)
	if err != nil {
		return err
	}
	subject, err := events.SubjectFor(e.Type(), subjectID)
	if err != nil {
		return err
	}
	if _, err := d.pub.Publish(ctx, subject, e); err != nil {
		return err
	}
	d.mu.Lock()
	d.published++
	d.mu.Unlock()
	return nil
}

func (d *demo) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.published
}

// seed builds a synthetic seed image, shows that a wrong password is
// refused, pushes it, and reads its metadata back without pulling a layer.
func (d *demo) seed(ctx context.Context) (seedimage.Summary, error) {
	reg := startRegistry("ibu", "s3cret")
	info, images, content, err := syntheticSeed("4.16.9", 125)
	if err != nil {
		return seedimage.Summary{}, err
	}
	img, err := seedimage.Build(info, images, content)
	if err != nil {
		return seedimage.Summary{}, err
	}
	ref := reg.host() + "/telco/sno-seed:4.16.9"
	wrong := &staticAuth{user: "ibu", pass: "guess"}
	if _, err := seedimage.Push(ctx, ref, img, seedimage.WithAuth(wrong)); errors.Is(err, seedimage.ErrUnauthorized) {
		d.say("seed", "push with a wrong password refused: %v", err)
	} else {
		return seedimage.Summary{}, fmt.Errorf("push with a wrong password: want ErrUnauthorized, got %v", err)
	}
	good := seedimage.WithAuth(&staticAuth{user: reg.user, pass: reg.pass})
	pinned, err := seedimage.Push(ctx, ref, img, good)
	if err != nil {
		return seedimage.Summary{}, err
	}
	sum, err := seedimage.Inspect(ctx, pinned, good)
	if err != nil {
		return seedimage.Summary{}, err
	}
	d.say("seed", "pushed %s", pinned)
	d.say("seed", "inspected from manifest and config only: version %s, %d precache images, stateroot %s",
		sum.Info.Version, len(sum.Images), sum.Info.Stateroot)
	return sum, nil
}

// clusterResult is one simulated cluster's outcome.
type clusterResult struct {
	id       string
	from     string
	final    stages.Position
	refused  []string
	upgraded bool
	duration time.Duration
}

// fleet registers n simulated clusters, checks each against the seed, and
// walks the compatible ones through Prep, Upgrade and Finalize.
func (d *demo) fleet(ctx context.Context, seed seedimage.Summary, n int) ([]clusterResult, error) {
	results := make([]clusterResult, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		id := fmt.Sprintf("sno-%02d", i+1)
		ci := seedimage.ClusterInfo{Version: "4.14.38", Fingerprint: demoFingerprint()}
		switch i {
		case 2: // a different machine and an extra operator
			ci.Architecture = "arm64"
			ci.Operators = append(ci.Operators, fingerprint.Operator{Name: "ptp-operator", Version: "4.14.0"})
		case 6: // already on a newer release than the seed
			ci.Version = "4.17.2"
		}
		results[i] = clusterResult{id: id, from: ci.Version}
		wg.Go(func() { errs[i] = d.cluster(ctx, seed, ci, &results[i], i == 0) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return results, nil
}

func (d *demo) cluster(ctx context.Context, seed seedimage.Summary, ci seedimage.ClusterInfo, r *clusterResult, showRefusal bool) error {
	start := time.Now()
	defer func() { r.duration = time.Since(start) }()
	if err := d.publish(ctx, r.id, events.ClusterRegistered{
		ClusterID: r.id, Version: ci.Version, BootedStateroot: "rhcos", AgentVersion: "demo",
		Labels: map[string]string{"site": "cell-" + r.id[len(r.id)-2:]}, Stateroots: []events.Stateroot{{Name: "rhcos", Version: ci.Version}},
		Fingerprint: ci.Fingerprint,
	}); err != nil {
		return fmt.Errorf("register %s: %w", r.id, err)
	}
	pos := stages.IdlePosition
	if err := d.setStatus(ctx, r.id, pos, nil, "cluster registered"); err != nil {
		return err
	}
	if showRefusal {
		// Asking for Upgrade before Prep: the stage machine refuses, nothing changes.
		if _, err := stages.Decide(pos, stages.Upgrade); err != nil {
			var te *stages.TransitionError
			errors.As(err, &te)
			rej := events.RejectionOf("node-agent", "IBU_DESIRED."+r.id, nil, err)
			rej.ClusterID = r.id
			if err := d.publish(ctx, r.id, rej); err != nil {
				return err
			}
			r.refused = append(r.refused, fmt.Sprintf("desired Upgrade refused: %s", te.Message))
			d.say(r.id, "desired Upgrade while Idle refused: %s (valid next: %v)", te.Message, te.Valid)
		}
	}
	if err := seedimage.Compatible(seed.Info, ci); err != nil {
		var inc *seedimage.IncompatibleError
		errors.As(err, &inc)
		var codes []string
		for _, reason := range inc.Reasons {
			codes = append(codes, string(reason.Code))
		}
		rej := events.RejectionOf("node-agent", "IBU_DESIRED."+r.id, nil, err)
		rej.ClusterID, rej.Reason = r.id, "IncompatibleSeed"
		if err := d.publish(ctx, r.id, rej); err != nil {
			return err
		}
		r.refused = append(r.refused, "seed incompatible: "+strings.Join(codes, ", "))
		d.say(r.id, "seed %s refused before any pull: %s", seed.Info.Version, err)
		r.final = pos
		return nil
	}
	// Prep, Upgrade (pivot), Finalize: every move through the stage machine.
	walk := []struct {
		to       stages.Stage
		end      stages.Position
		progress string
	}{
		{stages.Prep, stages.Position{Stage: stages.Prep, State: stages.Completed}, "stateroot " + seed.Info.Stateroot + " deployed; precache total: 125 (pulled: 125, failed: 0)"},
		{stages.Upgrade, stages.Position{Stage: stages.Upgrade, State: stages.Completed, AfterPivot: true}, "pivoted to " + seed.Info.Stateroot + ", rebooted, healthy"},
		{stages.Idle, stages.IdlePosition, "finalized: old stateroot removed"},
	}
	var conds []stages.Condition
	for gen, step := range walk {
		if _, err := stages.Decide(pos, step.to); err != nil {
			return fmt.Errorf("%s: %w", r.id, err)
		}
		running := stages.Position{Stage: step.to, State: stages.InProgress, AfterPivot: pos.AfterPivot}
		if step.to == stages.Idle {
			running.AfterPivot = false
		}
		for _, next := range []struct {
			p   stages.Position
			msg string
		}{{running, string(step.to) + " in progress"}, {step.end, step.progress}} {
			conds = stages.ConditionsFor(conds, next.p, next.msg, time.Now())
			if err := d.transition(ctx, r.id, int64(gen+1), pos, next.p, conds, next.msg); err != nil {
				return err
			}
			pos = next.p
		}
	}
	r.final, r.upgraded = pos, true
	return nil
}

func (d *demo) transition(ctx context.Context, id string, gen int64, from, to stages.Position, conds []stages.Condition, msg string) error {
	if err := d.setStatus(ctx, id, to, conds, msg); err != nil {
		return err
	}
	return d.publish(ctx, id, events.StageChanged{
		ClusterID: id, Generation: gen, Stage: to.Stage, State: to.State,
		PreviousStage: from.Stage, PreviousState: from.State, AfterPivot: to.AfterPivot,
		Conditions: conds, ValidNextStages: stages.ValidNextStages(to),
	})
}

// demoStatus is the slice of IBU_STATUS the demo writes.
type demoStatus struct {
	Position        stages.Position    `json:"position"`
	Conditions      []stages.Condition `json:"conditions,omitempty"`
	ValidNextStages []stages.Stage     `json:"validNextStages"`
	Message         string             `json:"message"`
}

func (d *demo) setStatus(ctx context.Context, id string, p stages.Position, conds []stages.Condition, msg string) error {
	_, _, err := bus.UpdateJSON(ctx, d.status, id, func(s *demoStatus, _ bool) error {
		*s = demoStatus{Position: p, Conditions: conds, ValidNextStages: stages.ValidNextStages(p), Message: msg}
		return nil
	})
	if err != nil {
		return fmt.Errorf("status of %s: %w", id, err)
	}
	return nil
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
		d.say("dlq", "%s: %s (%s)", m.Subject, m.Header.Get("Ibu-Dlq-Reason"), clipText(m.Header.Get("Ibu-Dlq-Error"), 90))
	}
	return nil
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
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
	fmt.Fprintf(d.io.Out, "\n%-8s %-9s %-24s %s\n", "CLUSTER", "FROM", "FINAL", "NOTES")
	upgraded := 0
	for _, r := range results {
		notes := r.refused
		if r.upgraded {
			upgraded++
			notes = append(notes, "upgraded to 4.16.9 and finalized")
		}
		fmt.Fprintf(d.io.Out, "%-8s %-9s %-24s %s\n", r.id, r.from, r.final, strings.Join(notes, "; "))
	}
	a.mu.Lock()
	types := slices.Sorted(maps.Keys(a.byType))
	var parts []string
	for _, t := range types {
		parts = append(parts, fmt.Sprintf("%s=%d", t, a.byType[t]))
	}
	total := a.total
	a.mu.Unlock()
	fmt.Fprintf(d.io.Out, "\n%d of %d clusters upgraded; %d events on %s (%s)\n", upgraded, len(results), total, bus.StreamEvents, strings.Join(parts, " "))
	fmt.Fprintf(d.io.Out, "demo finished in %.2fs\n", time.Since(d.started).Seconds())
}
