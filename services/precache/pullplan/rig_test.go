package pullplan_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/agent/simspoke"
	"ibu.dev/node-agent/host/sim"
	"ibu.dev/services/precache/pullplan"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/seedimage/seedsim"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/testkit/natstest"
	"ibu.dev/shared/testkit/registrytest"
)

// rig is the whole precache path on real parts: an embedded JetStream hub,
// a loopback registry holding a synthetic release (images sharing layers)
// and a seed listing it, the precache service, and node agents on
// simulated hosts whose image stores pull those images for real.
type rig struct {
	t        testing.TB
	js       jetstream.JetStream
	reg      *registrytest.Registry
	set      seedsim.ImageSetResult
	seedRef  string
	dir      string
	cache    *sim.BlobCache // shared by spokes made with shared=true
	desired  jetstream.KeyValue
	statuses jetstream.KeyValue
}

type rigOptions struct {
	registry []registrytest.Option
	set      seedsim.ImageSet
	service  pullplan.Config
	extra    []string // images in the seed's list beyond the set (e.g. absent ones)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newRig(t testing.TB, o rigOptions) *rig {
	t.Helper()
	ctx := context.Background()
	_, js := natstest.StartHub(t)
	reg := registrytest.Start(t, o.registry...)
	set, err := o.set.Push(ctx, reg.Host, "ocp", nil)
	if err != nil {
		t.Fatal(err)
	}
	synth, err := seedsim.New("4.16.9", 0)
	if err != nil {
		t.Fatal(err)
	}
	synth.Images = append([]string(nil), set.Images...)
	for _, x := range o.extra {
		synth.Images = append(synth.Images, strings.Replace(x, "REGISTRY", reg.Host, 1))
	}
	img, err := synth.Build()
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := seedimage.Push(ctx, reg.Ref("telco/seed:4.16.9"), img)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cache, err := sim.NewBlobCache(filepath.Join(dir, "shared-cache"))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, js: js, reg: reg, set: set, seedRef: pinned, dir: dir, cache: cache}
	if r.desired, err = js.KeyValue(ctx, "IBU_DESIRED"); err != nil {
		t.Fatal(err)
	}
	if r.statuses, err = js.KeyValue(ctx, "IBU_STATUS"); err != nil {
		t.Fatal(err)
	}
	if o.service.Telemetry.Logger == nil {
		o.service.Telemetry.Logger = quiet()
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pullplan.New(js, o.service).Run(sctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("precache service: %v", err)
		}
	})
	// Start counting after the pushes.
	reg.Reset()
	reg.ResetStats()
	return r
}

// node is one simulated spoke whose agent can be started and killed.
type node struct {
	r     *rig
	id    string
	spoke *simspoke.Spoke
	store *sim.OCIImages
	cache *sim.BlobCache
	stop  context.CancelFunc
	done  chan error
	gen   int64
}

// node makes a spoke; shared puts its blobs in the rig's shared cache,
// else it gets a cache of its own (a separate machine).
func (r *rig) node(id string, shared bool, cfg func(*agent.Config)) *node {
	r.t.Helper()
	c := agent.Config{ClusterID: id, Version: "4.14.38", Fingerprint: seedsim.Fingerprint(), HeartbeatInterval: time.Hour,
		Services: agent.Services{Precache: true}, ServiceTimeout: time.Minute,
		PullBackoff: 20 * time.Millisecond, ProgressInterval: 50 * time.Millisecond}
	if cfg != nil {
		cfg(&c)
	}
	dir := filepath.Join(r.dir, id)
	cache := r.cache
	if !shared {
		var err error
		if cache, err = sim.NewBlobCache(filepath.Join(dir, "cache")); err != nil {
			r.t.Fatal(err)
		}
	}
	store, err := sim.NewOCIImages(cache, filepath.Join(dir, "images"))
	if err != nil {
		r.t.Fatal(err)
	}
	s := simspoke.New(c, dir, "rhcos")
	s.Store, s.Logger = store, quiet()
	n := &node{r: r, id: id, spoke: s, store: store, cache: cache}
	r.t.Cleanup(n.kill)
	return n
}

// start runs the agent until kill.
func (n *node) start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.stop, n.done = cancel, make(chan error, 1)
	go func() { n.done <- n.spoke.Run(ctx, n.r.js) }()
}

// kill stops the agent the way a crash would: mid-step, nothing flushed.
func (n *node) kill() {
	if n.stop == nil {
		return
	}
	n.stop()
	if err := <-n.done; err != nil {
		n.r.t.Errorf("agent %s: %v", n.id, err)
	}
	n.stop = nil
}

// prep sets the desired stage to Prep.
func (n *node) prep() {
	n.r.t.Helper()
	n.gen++
	d := state.Desired{ClusterID: n.id, Stage: stages.Prep, Generation: n.gen, PlanID: "plan-1",
		SeedImage: n.r.seedRef, SeedVersion: "4.16.9"}
	b, err := state.EncodeDesired(d)
	if err != nil {
		n.r.t.Fatal(err)
	}
	if _, err := n.r.desired.Put(context.Background(), n.id, b); err != nil {
		n.r.t.Fatal(err)
	}
}

func (n *node) status() state.Status {
	var st state.Status
	e, err := n.r.statuses.Get(context.Background(), n.id)
	if err != nil {
		return st
	}
	_ = json.Unmarshal(e.Value(), &st)
	return st
}

// wait waits until the node's status satisfies cond.
func (n *node) wait(timeout time.Duration, what string, cond func(state.Status) bool) state.Status {
	n.r.t.Helper()
	var st state.Status
	natstest.WaitFor(n.r.t, timeout, fmt.Sprintf("%s: %s", n.id, what), func() bool {
		st = n.status()
		return st.ObservedGeneration >= n.gen && cond(st)
	})
	return st
}

func prepEnded(st state.Status) bool {
	return st.Stage == stages.Prep && (st.State == stages.Completed || st.State == stages.Failed)
}

// lastEvent returns the node's last event of type T.
func lastEvent[T events.Data](n *node) (T, bool) {
	n.r.t.Helper()
	var zero T
	subject, err := events.SubjectFor(zero.EventType(), n.id)
	if err != nil {
		n.r.t.Fatal(err)
	}
	st, err := n.r.js.Stream(context.Background(), bus.StreamEvents)
	if err != nil {
		n.r.t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		return zero, false
	}
	e, err := bus.FromHeaders(msg.Header, msg.Data)
	if err != nil {
		n.r.t.Fatal(err)
	}
	d, err := events.DataAs[T](e)
	if err != nil {
		n.r.t.Fatal(err)
	}
	return d, true
}
