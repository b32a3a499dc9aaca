package pullplan_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/services/precache/pullplan"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/pullbudget"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/seedimage/seedsim"
	"ibu.dev/shared/testkit/natstest"
	"ibu.dev/shared/testkit/registrytest"
)

type env struct {
	t    *testing.T
	js   jetstream.JetStream
	reg  *registrytest.Registry
	set  seedsim.ImageSetResult
	seed string // pinned seed ref
}

// newEnv pushes ten images (base layer in all, a group layer per five, one
// of their own) and a seed listing them, and starts the service.
func newEnv(t *testing.T, cfg pullplan.Config) *env {
	t.Helper()
	_, js := natstest.StartHub(t)
	reg := registrytest.Start(t)
	set, err := seedsim.ImageSet{Count: 10, BaseSize: 64 << 10, GroupSize: 5, GroupBytes: 16 << 10, OwnBytes: 4 << 10, Seed: 1}.
		Push(t.Context(), reg.Host, "ocp", nil)
	if err != nil {
		t.Fatal(err)
	}
	synth, err := seedsim.New("4.16.9", 0)
	if err != nil {
		t.Fatal(err)
	}
	synth.Images = set.Images
	img, err := synth.Build()
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := seedimage.Push(t.Context(), reg.Ref("telco/seed:4.16.9"), img)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pullplan.New(js, cfg).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service: %v", err)
		}
	})
	return &env{t: t, js: js, reg: reg, set: set, seed: pinned}
}

func (e *env) request(req events.PrecacheRequested) {
	e.t.Helper()
	ev, err := events.New("/clusters/"+req.ClusterID+"/node-agent", req.ClusterID, req)
	if err != nil {
		e.t.Fatal(err)
	}
	subject, _ := events.TaskSubject(events.ServicePrecache, req.ClusterID)
	if _, err := bus.NewPublisher(e.js).Publish(e.t.Context(), subject, ev); err != nil {
		e.t.Fatal(err)
	}
}

// next returns the first event on subject in stream, waiting up to 20s.
func (e *env) next(stream, subject string) cloudevents.Event {
	e.t.Helper()
	var (
		c   jetstream.Consumer
		err error
	)
	if stream == bus.StreamTasks { // a work queue: one durable, acked
		c, err = e.js.CreateOrUpdateConsumer(e.t.Context(), stream, jetstream.ConsumerConfig{
			Durable: "test-agent", FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy})
	} else {
		c, err = e.js.OrderedConsumer(e.t.Context(), stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	}
	if err != nil {
		e.t.Fatal(err)
	}
	msg, err := c.Next(jetstream.FetchMaxWait(20 * time.Second))
	if err != nil {
		e.t.Fatalf("nothing on %s: %v", subject, err)
	}
	_ = msg.Ack()
	ev, err := bus.FromHeaders(msg.Headers(), msg.Data())
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

func (e *env) plan(cluster string) events.PrecachePlanned {
	e.t.Helper()
	answer, _ := events.SubjectFor(events.TypePrecachePlanned, cluster)
	p, err := events.DataAs[events.PrecachePlanned](e.next(bus.StreamEvents, answer))
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func TestPlanHasOnlyWhatTheNodeLacksSharedLayersFirst(t *testing.T) {
	e := newEnv(t, pullplan.Config{Name: "t", DefaultFleetLimit: 7})
	present := []string{e.set.Images[5], e.set.Images[6], "quay.io/other/thing@sha256:" + strings.Repeat("a", 64)}
	e.request(events.PrecacheRequested{ClusterID: "sno-1", Generation: 3, SeedImage: e.seed, PresentImages: present, BestEffort: true})
	p := e.plan("sno-1")
	if p.Generation != 3 || !p.BestEffort || p.Concurrency != 10 {
		t.Errorf("plan header %+v", p)
	}
	var got []string
	for _, img := range p.Images {
		got = append(got, img.Image)
		if len(img.Layers) != 3 || img.SizeBytes < (64+16+4)<<10 {
			t.Errorf("%s: %d layers, %d bytes", img.Image, len(img.Layers), img.SizeBytes)
		}
	}
	want := slices.DeleteFunc(slices.Clone(e.set.Images), func(s string) bool { return slices.Contains(present, s) })
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Fatalf("planned %v\nwant %v", got, want)
	}
	// Group 0 (images 0-4) has five images to pull, group 1 three: the
	// images of the larger group share more bytes and come first.
	for i, img := range p.Images[:5] {
		if idx := slices.Index(e.set.Images, img.Image); idx >= 5 {
			t.Errorf("position %d: image %d, want group 0 first", i, idx)
		}
	}
	pool, err := pullbudget.Open(t.Context(), e.js, "test")
	if err != nil {
		t.Fatal(err)
	}
	if n, ok, err := pool.Limit(t.Context(), e.reg.Host); err != nil || !ok || n != 7 {
		t.Errorf("fleet limit of %s in the budget: %d %v %v", e.reg.Host, n, ok, err)
	}
}

func TestPlanRewritesRegistriesToTheMirror(t *testing.T) {
	e := newEnv(t, pullplan.Config{Name: "t"})
	e.request(events.PrecacheRequested{ClusterID: "sno-2", Generation: 1, SeedImage: e.seed,
		RegistryMappings: []events.RegistryMapping{{From: e.reg.Host + "/ocp", To: "127.0.0.1:1/ocp4"}}})
	p := e.plan("sno-2")
	if len(p.Images) != 10 {
		t.Fatalf("%d images planned", len(p.Images))
	}
	for _, img := range p.Images {
		if !strings.HasPrefix(img.Image, "127.0.0.1:1/ocp4/img-") {
			t.Errorf("not mirrored: %s", img.Image)
		}
	}
}

func TestUnreadableSeedFailsWithAnEvent(t *testing.T) {
	e := newEnv(t, pullplan.Config{Name: "t"})
	e.request(events.PrecacheRequested{ClusterID: "sno-3", Generation: 2, SeedImage: e.reg.Ref("telco/absent:1")})
	failed, _ := events.SubjectFor(events.TypePrecacheFailed, "sno-3")
	ev := e.next(bus.StreamEvents, failed)
	f, err := events.DataAs[events.PrecacheFailed](ev)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Source() != pullplan.Source || f.Reason != "SeedUnreadable" || f.Generation != 2 || !strings.Contains(f.Message, "absent") {
		t.Errorf("failure %s %+v", ev.Source(), f)
	}
}

func TestMirrorAndMissing(t *testing.T) {
	maps := []events.RegistryMapping{{From: "quay.io", To: "m.local/q"}, {From: "quay.io/ocp", To: "m.local/ocp"}}
	for _, c := range []struct{ in, want string }{
		{"quay.io/ocp/x@sha256:1", "m.local/ocp/x@sha256:1"},
		{"quay.io/other/y@sha256:2", "m.local/q/other/y@sha256:2"},
		{"quay.io.evil/z@sha256:3", "quay.io.evil/z@sha256:3"},
		{"quay.io/ocpx@sha256:4", "m.local/q/ocpx@sha256:4"},
	} {
		if got := pullplan.Mirror(c.in, maps); got != c.want {
			t.Errorf("Mirror(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	miss, have := pullplan.Missing([]string{"quay.io/ocp/a@1", "quay.io/ocp/b@2", "quay.io/ocp/a@1"},
		[]string{"m.local/ocp/b@2"}, maps)
	if !slices.Equal(miss, []string{"m.local/ocp/a@1"}) || have != 1 {
		t.Errorf("Missing: %v, %d present", miss, have)
	}
}
