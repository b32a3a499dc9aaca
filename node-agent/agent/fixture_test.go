package agent_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/agent/simspoke"
	"ibu.dev/node-agent/host/sim"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/fingerprint"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/testkit/natstest"
	"ibu.dev/shared/testkit/registrytest"
)

const (
	cluster     = "sno-001"
	oldRoot     = "rhcos"
	seedVersion = "4.16.9"
	newRoot     = "rhcos_4.16.9"
)

func testFingerprint() fingerprint.Fingerprint {
	return fingerprint.Fingerprint{Architecture: "amd64", Platform: "None", NetworkType: "OVNKubernetes",
		IPFamily: fingerprint.IPv4, ContainerStorage: fingerprint.StorageSeparatePartition,
		Operators: []fingerprint.Operator{{Name: "lifecycle-agent", Version: "4.16.0"}}}
}

func tarOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}
		if body == "<dir>" {
			hdr = &tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeDir}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			io.WriteString(tw, body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// seedImages is the precache list of the test seed.
func seedImages() []string {
	var out []string
	for i := range 5 {
		d := sha256.Sum256(fmt.Appendf(nil, "img %d", i))
		out = append(out, "quay.io/ocp/art@sha256:"+hex.EncodeToString(d[:]))
	}
	return out
}

// buildSeed makes a seed image for the simulated host: the ostree layer is
// an archive-repo-shaped tree (the sim records the commit; the real-ostree
// test brings a real repository).
func buildSeed(t testing.TB, mutate func(*seedimage.SeedInfo), ostreeTar []byte) (seedimage.SeedInfo, []byte, []byte, []byte) {
	rel := sha256.Sum256([]byte("release"))
	info := seedimage.SeedInfo{
		Version: seedVersion, ReleaseImage: "quay.io/ocp/release@sha256:" + hex.EncodeToString(rel[:]),
		Fingerprint: testFingerprint(), OstreeCommit: sim.Checksum(seedVersion), Stateroot: newRoot,
		BuildTime: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	}
	if mutate != nil {
		mutate(&info)
	}
	if ostreeTar == nil {
		ostreeTar = tarOf(t, map[string]string{"repo/config": "[core]\nmode=archive-z2\n", "repo/objects/": "<dir>"})
	}
	return info, ostreeTar,
		tarOf(t, map[string]string{"var/lib/kubelet/seed-marker": seedVersion}),
		tarOf(t, map[string]string{"etc/hostname": "seed-host\n", "etc/seed-release": seedVersion + "\n", "etc/motd": "seed\n"})
}

type fixture struct {
	t       *testing.T
	js      jetstream.JetStream
	reg     *registrytest.Registry
	seedRef string
	auth    string
	spoke   *simspoke.Spoke
	desired jetstream.KeyValue
	status  jetstream.KeyValue
	gen     int64
	// oadp is the OADP content desire puts in Prep and Upgrade.
	oadp []events.ObjectRef
	// crash-point harness state
	armed   atomic.Bool
	crashes atomic.Int32
}

type fixtureOption func(*fixtureOpts)

type fixtureOpts struct {
	mutateSeed func(*seedimage.SeedInfo)
	ostreeTar  []byte
	services   agent.Services
}

func newFixture(t *testing.T, opts ...fixtureOption) *fixture {
	t.Helper()
	var o fixtureOpts
	for _, f := range opts {
		f(&o)
	}
	_, js := natstest.StartHub(t)
	ctx := t.Context()
	reg := registrytest.Start(t, registrytest.WithBasicAuth("ibu", "s3cret"))
	info, ostreeTar, varTar, etcTar := buildSeed(t, o.mutateSeed, o.ostreeTar)
	img, err := seedimage.Build(info, seedImages(), seedimage.Content{
		Ostree: seedimage.BytesOpener(ostreeTar), Var: seedimage.BytesOpener(varTar), Etc: seedimage.BytesOpener(etcTar),
		EtcDeletions: []string{"/etc/motd"},
	})
	if err != nil {
		t.Fatal(err)
	}
	authFile := reg.AuthFile(t)
	ref := reg.Ref("telco/seed:" + seedVersion)
	if _, err := seedimage.Push(ctx, ref, img, seedimage.WithAuthFile(authFile)); err != nil {
		t.Fatal(err)
	}
	cfg := agent.Config{
		ClusterID: cluster, Version: "4.14.38", Fingerprint: testFingerprint(), Labels: map[string]string{"site": "a"},
		SeedOptions: []seedimage.Option{seedimage.WithAuthFile(authFile)}, HeartbeatInterval: time.Hour,
		Services: o.services, ServiceTimeout: 20 * time.Second, PullBackoff: 5 * time.Millisecond, ProgressInterval: 20 * time.Millisecond,
	}
	spoke := simspoke.New(cfg, t.TempDir(), oldRoot)
	spoke.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		spoke.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	// The running system's identity, which the new stateroot must keep.
	root, _, err := spoke.Host.Stateroots().Paths(ctx, oldRoot)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte(cluster+"\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "machine-id"), []byte("0123456789abcdef\n"), 0o444)
	f := &fixture{t: t, js: js, reg: reg, seedRef: ref, auth: authFile, spoke: spoke}
	if f.desired, err = js.KeyValue(ctx, bus.BucketDesired); err != nil {
		t.Fatal(err)
	}
	if f.status, err = js.KeyValue(ctx, bus.BucketStatus); err != nil {
		t.Fatal(err)
	}
	return f
}

// start runs the spoke (through its reboots) until the test ends.
func (f *fixture) start() <-chan error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.spoke.Run(ctx, f.js) }()
	f.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				f.t.Errorf("agent: %v", err)
			}
		case <-time.After(10 * time.Second):
			f.t.Error("agent did not stop within 10s")
		}
	})
	return done
}

// desire sets the desired stage with the next generation.
func (f *fixture) desire(stage stages.Stage) int64 {
	f.t.Helper()
	f.gen++
	d := state.Desired{ClusterID: cluster, Stage: stage, Generation: f.gen, PlanID: "plan-1"}
	if stage == stages.Prep || stage == stages.Upgrade {
		d.SeedImage, d.SeedVersion = f.seedRef, seedVersion
		d.OADPContent = f.oadp
	}
	b, err := state.EncodeDesired(d)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.desired.Put(f.t.Context(), cluster, b); err != nil {
		f.t.Fatal(err)
	}
	return f.gen
}

func (f *fixture) readStatus() state.Status {
	f.t.Helper()
	e, err := f.status.Get(f.t.Context(), cluster)
	if err != nil {
		return state.Status{}
	}
	var st state.Status
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		f.t.Fatal(err)
	}
	return st
}

// waitPosition waits until the status reaches p having observed gen.
func (f *fixture) waitPosition(p stages.Position, gen int64) state.Status {
	f.t.Helper()
	var st state.Status
	natstest.WaitFor(f.t, 20*time.Second, fmt.Sprintf("status %s (generation %d)", p, gen), func() bool {
		st = f.readStatus()
		return st.Position == p && st.ObservedGeneration >= gen
	})
	return st
}

func (f *fixture) deployments() []string {
	f.t.Helper()
	deps, err := f.spoke.Host.Stateroots().Deployments(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, d := range deps {
		s := d.Stateroot
		if d.Booted {
			s = "*" + s
		}
		out = append(out, s)
	}
	return out
}

// events returns the events about the cluster of the given types, in order.
func (f *fixture) events(types ...string) []cloudevents.Event {
	f.t.Helper()
	ctx := f.t.Context()
	cons, err := f.js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"ibu.event." + cluster + ".>"}})
	if err != nil {
		f.t.Fatal(err)
	}
	want := map[string]bool{}
	for _, t := range types {
		want[t] = true
	}
	var out []cloudevents.Event
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(300 * time.Millisecond))
		if err != nil {
			return out
		}
		e, err := bus.FromHeaders(msg.Headers(), msg.Data())
		if err != nil {
			f.t.Fatalf("agent published an invalid event: %v", err)
		}
		if len(want) == 0 || want[e.Type()] {
			out = append(out, e)
		}
	}
}

// stepRuns counts successful step.finished events per step name.
func (f *fixture) stepRuns() map[string]int {
	out := map[string]int{}
	for _, e := range f.events(events.TypeStepFinished) {
		sf, err := events.DataAs[events.StepFinished](e)
		if err != nil {
			f.t.Fatal(err)
		}
		if sf.Result == events.StepSucceeded {
			out[string(sf.Stage)+"/"+sf.Step]++
		}
	}
	return out
}

func natstestWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	natstest.WaitFor(t, 20*time.Second, what, cond)
}

func simImagesSlow() *sim.Images { return sim.NewImages(time.Hour, 1) }

func simImagesWith(present ...string) *sim.Images { return sim.NewImages(0, 0, present...) }

func writeAuth(t *testing.T, host string) string {
	return registrytest.WriteAuthFile(t, host, "ibu", "s3cret")
}
