package pullplan_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"ibu.dev/node-agent/agent"
	"ibu.dev/services/precache/pullplan"
	"ibu.dev/shared/events"
	"ibu.dev/shared/pullbudget"
	"ibu.dev/shared/seedimage/seedsim"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/testkit/natstest"
	"ibu.dev/shared/testkit/registrytest"
)

// Ten images: a base layer in all, a layer per group of five, one each.
var smallSet = seedsim.ImageSet{Count: 10, BaseSize: 128 << 10, GroupSize: 5, GroupBytes: 32 << 10, OwnBytes: 16 << 10, Seed: 7}

func digestOf(image string) string { return image[strings.LastIndex(image, "@")+1:] }

func TestNodeWithHalfTheImagesPullsOnlyTheOtherHalf(t *testing.T) {
	r := newRig(t, rigOptions{set: smallSet})
	n := r.node("sno-half", false, nil)
	for _, img := range r.set.Images[:5] {
		if _, err := n.store.Pull(t.Context(), img); err != nil {
			t.Fatal(err)
		}
	}
	r.reg.Reset()
	r.reg.ResetStats()
	n.start()
	n.prep()
	st := n.wait(30*time.Second, "Prep ended", prepEnded)
	if st.State != stages.Completed {
		t.Fatalf("Prep %s: %s", st.State, st.Message)
	}
	// Neither the service nor the agent asked for the first half again.
	for _, q := range r.reg.Requests("/manifests/") {
		for _, img := range r.set.Images[:5] {
			if strings.HasSuffix(q.Path, digestOf(img)) {
				t.Errorf("manifest of an image the node had was read: %s", q.Path)
			}
		}
	}
	done, ok := lastEvent[events.PrecacheCompleted](n)
	if !ok || done.AlreadyPresent != 5 || done.Total != 10 || done.Pulled != 10 {
		t.Errorf("completed event %+v", done)
	}
	if inv, _ := n.store.Inventory(t.Context()); len(inv) != 10 {
		t.Errorf("inventory has %d images", len(inv))
	}
	// The base layer was on the node: only the second group's layer and
	// the five own layers (and configs) crossed the wire.
	if served, max := r.reg.BlobStats().BytesServed, int64(32<<10+5*(16<<10)+5*4096); served > max {
		t.Errorf("registry served %d bytes, want at most %d", served, max)
	}
}

func TestSharedLayerIsFetchedOncePerNode(t *testing.T) {
	r := newRig(t, rigOptions{set: smallSet})
	n := r.node("sno-shared", false, nil)
	n.start()
	n.prep()
	if st := n.wait(30*time.Second, "Prep ended", prepEnded); st.State != stages.Completed {
		t.Fatalf("Prep %s: %s", st.State, st.Message)
	}
	for _, img := range r.set.Images { // (the seed's own blobs are not precache's business)
		for _, d := range blobsOf(t, img) {
			if c := r.reg.BlobGetCount(d); c != 1 {
				t.Errorf("blob %s of %s fetched %d times", d, img, c)
			}
		}
	}
	if served := r.reg.BlobStats().BytesServed; served > r.set.UniqueBytes+int64(len(r.set.Images))*4096 {
		t.Errorf("served %d bytes for %d of unique layers", served, r.set.UniqueBytes)
	}
	st := n.status()
	if st.Precache == nil || st.Precache.Pulled != 10 || st.Precache.BytesDone != st.Precache.BytesTotal || st.Precache.BytesTotal < r.set.UniqueBytes {
		t.Errorf("progress %#v (unique layers %d)", *st.Precache, r.set.UniqueBytes)
	}
}

// Four nodes (each its own machine: no shared cache), four pulls each at
// a time, a fleet limit of two for the registry: the registry never sees
// more than two blob downloads of the release at once. (The seed, which
// each agent's Prep pulls from its own repository before precache, is not
// precache's business and is not counted.)
func TestFleetBudgetIsNeverExceeded(t *testing.T) {
	r := newRig(t, rigOptions{set: smallSet, registry: []registrytest.Option{registrytest.WithBlobRate(2 << 20),
		registrytest.WithInFlightPaths("/v2/ocp/")},
		service: pullplan.Config{Name: "budget", DefaultFleetLimit: 2}})
	var nodes []*node
	for _, id := range []string{"sno-a", "sno-b", "sno-c", "sno-d"} {
		n := r.node(id, false, func(c *agent.Config) { c.PrecacheConcurrency = 4 })
		n.start()
		n.prep()
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if st := n.wait(60*time.Second, "Prep ended", prepEnded); st.State != stages.Completed {
			t.Fatalf("%s: Prep %s: %s", n.id, st.State, st.Message)
		}
	}
	stats := r.reg.BlobStats()
	if stats.PeakInFlight > 2 {
		t.Errorf("registry saw %d concurrent blob downloads; the fleet limit is 2", stats.PeakInFlight)
	}
	if stats.PeakInFlight < 2 {
		t.Errorf("peak %d concurrent downloads: the budget was never used in full, the test proves nothing", stats.PeakInFlight)
	}
}

// An agent killed in the middle of a pull, started again, finishes Prep
// without downloading again any blob that was complete.
func TestAgentKilledMidPullResumesWithoutRefetching(t *testing.T) {
	set := seedsim.ImageSet{Count: 6, BaseSize: 512 << 10, GroupSize: 3, GroupBytes: 256 << 10, OwnBytes: 256 << 10, Seed: 9}
	r := newRig(t, rigOptions{set: set, registry: []registrytest.Option{registrytest.WithBlobRate(2 << 20)}})
	n := r.node("sno-kill", false, func(c *agent.Config) { c.PrecacheConcurrency = 2 })
	n.start()
	n.prep()
	n.wait(30*time.Second, "two images pulled", func(st state.Status) bool {
		return st.Precache != nil && st.Precache.Pulled >= 2
	})
	n.kill()
	entries, err := os.ReadDir(filepath.Join(r.dir, "sno-kill", "cache", "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var complete []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			complete = append(complete, "sha256:"+e.Name())
		}
	}
	if st := n.status(); st.Stage != stages.Prep || st.State != stages.InProgress || st.Precache.Pulled == 10 {
		t.Fatalf("killed at %s/%s %+v: not mid-pull", st.Stage, st.State, st.Precache)
	}
	n.start()
	if st := n.wait(30*time.Second, "Prep ended", prepEnded); st.State != stages.Completed {
		t.Fatalf("Prep %s: %s", st.State, st.Message)
	}
	once := 0
	for _, d := range complete { // (manifests, cached beside blobs, come through /manifests/: 0 blob GETs)
		switch c := r.reg.BlobGetCount(d); {
		case c > 1:
			t.Errorf("blob %s, complete before the kill, fetched %d times", d, c)
		case c == 1:
			once++
		}
	}
	if once < 3 {
		t.Errorf("only %d blobs were complete at the kill: the test proves little", once)
	}
	if inv, _ := n.store.Inventory(t.Context()); len(inv) != 6 {
		t.Errorf("inventory %d images", len(inv))
	}
}

func TestMissingImageFailsPrepWithItsName(t *testing.T) {
	absent := "REGISTRY/ocp/gone@sha256:" + strings.Repeat("d", 64)
	for _, bestEffort := range []bool{false, true} {
		t.Run(map[bool]string{false: "strict", true: "bestEffort"}[bestEffort], func(t *testing.T) {
			// The seed names an image that is not in the registry.
			r := newRig(t, rigOptions{set: seedsim.ImageSet{Count: 3, BaseSize: 8 << 10, OwnBytes: 4 << 10, Seed: 4}, extra: []string{absent}})
			missing := strings.Replace(absent, "REGISTRY", r.reg.Host, 1)
			n := r.node("sno-miss", false, func(c *agent.Config) { c.PrecacheBestEffort = bestEffort })
			n.start()
			n.prep()
			st := n.wait(30*time.Second, "Prep ended", prepEnded)
			if !bestEffort {
				if st.State != stages.Failed || !strings.Contains(st.Message, missing) || !strings.Contains(st.Message, "NotFound") {
					t.Fatalf("Prep %s: %q, want Failed naming %s", st.State, st.Message, missing)
				}
				f, ok := lastEvent[events.PrecacheFailed](n)
				if !ok || len(f.FailedImages) != 1 || f.FailedImages[0].Image != missing {
					t.Errorf("failed event %+v", f)
				}
				return
			}
			if st.State != stages.Completed || st.Precache.Failed != 1 || st.Precache.Pulled != 3 {
				t.Fatalf("Prep %s, progress %+v: %s", st.State, st.Precache, st.Message)
			}
			done, ok := lastEvent[events.PrecacheCompleted](n)
			if !ok || len(done.FailedImages) != 1 || done.FailedImages[0].Image != missing || done.FailedImages[0].Reason != "NotFound" {
				t.Errorf("completed event %+v", done)
			}
			// A missing image is not retried.
			if q := r.reg.Requests(digestOf(missing)); len(q) > 2 { // the service's read and the node's
				t.Errorf("%d requests for the missing image", len(q))
			}
		})
	}
}

// A registry that answers 500 twice then serves the blob: the agent
// retries with growing pauses, and Prep completes.
func TestServerErrorsAreRetriedWithBackoff(t *testing.T) {
	r := newRig(t, rigOptions{set: seedsim.ImageSet{Count: 2, BaseSize: 8 << 10, OwnBytes: 4 << 10, Seed: 5}})
	n := r.node("sno-500", false, func(c *agent.Config) { c.PullBackoff = 100 * time.Millisecond })
	layer := own(t, r.set.Images[1])
	r.reg.FailNext(layer, 2, 500)
	n.start()
	n.prep()
	if st := n.wait(30*time.Second, "Prep ended", prepEnded); st.State != stages.Completed {
		t.Fatalf("Prep %s: %s", st.State, st.Message)
	}
	var tries []time.Time
	for _, q := range r.reg.Requests(layer) {
		if q.Method == "GET" {
			tries = append(tries, q.Time)
		}
	}
	if len(tries) != 3 {
		t.Fatalf("%d GETs of the failing blob, want 3 (two 500s, one success)", len(tries))
	}
	// Backoff 100ms then 200ms, each ±20%.
	if d := tries[1].Sub(tries[0]); d < 80*time.Millisecond {
		t.Errorf("first retry after %s, want ≥ 80ms", d)
	}
	if d := tries[2].Sub(tries[1]); d < 160*time.Millisecond {
		t.Errorf("second retry after %s, want ≥ 160ms (doubled)", d)
	}
}

// blobsOf returns the digests of image's config and layers.
func blobsOf(t *testing.T, image string) []string {
	t.Helper()
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{m.Config.Digest.String()}
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// own returns the digest of image's last layer (its own, in an ImageSet).
func own(t *testing.T, image string) string {
	t.Helper()
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Layers[len(m.Layers)-1].Digest.String()
}

// The plan's byte rate caps the node's downloads.
func TestMaxBytesPerSecPacesTheNode(t *testing.T) {
	const limit = 2 << 20
	r := newRig(t, rigOptions{set: seedsim.ImageSet{Count: 4, BaseSize: 256 << 10, OwnBytes: 256 << 10, Seed: 6},
		service: pullplan.Config{Name: "paced", MaxBytesPerSec: limit}})
	n := r.node("sno-paced", false, nil)
	n.start()
	n.prep()
	if st := n.wait(30*time.Second, "Prep ended", prepEnded); st.State != stages.Completed {
		t.Fatalf("Prep %s: %s", st.State, st.Message)
	}
	done, ok := lastEvent[events.PrecacheCompleted](n)
	if !ok {
		t.Fatal("no completed event")
	}
	// ~1.3 MiB at 2 MiB/s cannot take less than ~0.6s (the first chunk is free).
	if min := time.Duration(float64(r.set.UniqueBytes-(64<<10)) / limit * float64(time.Second)); time.Duration(done.DurationMs)*time.Millisecond < min {
		t.Errorf("pulled %d bytes in %dms: faster than %d B/s", r.set.UniqueBytes, done.DurationMs, limit)
	}
}

// The seed is Prep's largest download: it holds a slot of the fleet budget
// for its registry (here the same registry as the release), like every
// precache pull.
func TestSeedPullHoldsABudgetSlot(t *testing.T) {
	r := newRig(t, rigOptions{set: smallSet, registry: []registrytest.Option{registrytest.WithBlobRate(128 << 10)}})
	ctx := t.Context()
	if err := pullbudget.Ensure(ctx, r.js, 1); err != nil {
		t.Fatal(err)
	}
	pool, err := pullbudget.Open(ctx, r.js, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.SetLimit(ctx, r.reg.Host, 1); err != nil {
		t.Fatal(err)
	}
	n := r.node("sno-seed", false, nil)
	n.start()
	n.prep()
	natstest.WaitFor(t, 60*time.Second, "the seed pull holding the registry's slot", func() bool {
		held, err := pool.Held(ctx, r.reg.Host)
		return err == nil && len(held) == 1 && held[0].Holder == "sno-seed" && held[0].What == r.seedRef
	})
	if st := n.wait(120*time.Second, "Prep ended", prepEnded); st.State != stages.Completed {
		t.Fatalf("Prep %s: %s", st.State, st.Message)
	}
	if held, err := pool.Held(ctx, r.reg.Host); err != nil || len(held) != 0 {
		t.Errorf("slots still held after Prep: %v (%v)", held, err)
	}
}
