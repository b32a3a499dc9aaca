package sim_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"ibu.dev/node-agent/host/sim"
	"ibu.dev/shared/seedimage/seedsim"
	"ibu.dev/shared/testkit/registrytest"
)

func pushSet(t *testing.T, reg *registrytest.Registry, set seedsim.ImageSet) seedsim.ImageSetResult {
	t.Helper()
	res, err := set.Push(t.Context(), reg.Host, "ocp", nil)
	if err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	reg.ResetStats()
	return res
}

func layersOf(t *testing.T, image string) []v1.Hash {
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
	out := []v1.Hash{m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// Images pulled at the same time share their base layer: the registry
// serves every blob once, and the node's byte count is its unique layers.
func TestOCIImagesFetchEverySharedBlobOnce(t *testing.T) {
	reg := registrytest.Start(t)
	set := pushSet(t, reg, seedsim.ImageSet{Count: 6, BaseSize: 256 << 10, GroupSize: 3, GroupBytes: 64 << 10, OwnBytes: 16 << 10, Seed: 2})
	dir := t.TempDir()
	cache, err := sim.NewBlobCache(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := sim.NewOCIImages(cache, filepath.Join(dir, "node"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
	)
	for _, img := range set.Images {
		wg.Go(func() {
			n, err := node.Pull(t.Context(), img)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, g := range reg.BlobGets() {
		if n := reg.BlobGetCount(g); n != 1 {
			t.Errorf("blob %s fetched %d times", g, n)
		}
	}
	inv, _ := node.Inventory(t.Context())
	if want := slices.Sorted(slices.Values(set.Images)); !slices.Equal(inv, want) {
		t.Errorf("inventory %v", inv)
	}
	if total < set.UniqueBytes || total > set.UniqueBytes+int64(len(set.Images))*4096 { // + configs
		t.Errorf("node added %d bytes; unique layers are %d", total, set.UniqueBytes)
	}
	// A second node of the same process fetches nothing from the registry.
	before := reg.BlobStats().BytesServed
	other, _ := sim.NewOCIImages(cache, filepath.Join(dir, "node2"))
	for _, img := range set.Images {
		if _, err := other.Pull(t.Context(), img); err != nil {
			t.Fatal(err)
		}
	}
	if served := reg.BlobStats().BytesServed - before; served != 0 {
		t.Errorf("second node made the registry serve %d bytes", served)
	}
	// Remove frees the node's blobs of that image only.
	if err := other.Remove(t.Context(), set.Images[0]); err != nil {
		t.Fatal(err)
	}
	inv, _ = other.Inventory(t.Context())
	if slices.Contains(inv, set.Images[0]) || len(inv) != len(set.Images)-1 {
		t.Errorf("after remove %v", inv)
	}
	if _, err := other.Pull(t.Context(), set.Images[0]); err != nil {
		t.Fatal(err)
	}
}

// A pull cut short (the agent killed) leaves the finished blobs: pulling
// again fetches only what was missing.
func TestOCIImagesResumeKeepsFinishedBlobs(t *testing.T) {
	reg := registrytest.Start(t, registrytest.WithBlobRate(4<<20))
	set := pushSet(t, reg, seedsim.ImageSet{Count: 1, BaseSize: 512 << 10, OwnBytes: 2 << 20, Seed: 3})
	dir := t.TempDir()
	cache, _ := sim.NewBlobCache(filepath.Join(dir, "cache"))
	node, _ := sim.NewOCIImages(cache, filepath.Join(dir, "node"))
	layers := layersOf(t, set.Images[0])
	reg.Reset()
	ctx, cancel := context.WithCancel(t.Context())
	var got int64
	_, err := node.PullWithProgress(ctx, set.Images[0], func(n int64) {
		got += n
		if got > 512<<10+64<<10 { // the base layer is in; the big one is on its way
			cancel()
		}
	})
	if err == nil {
		t.Fatal("pull finished despite the cancel")
	}
	fetched := reg.BlobGets()
	reg.Reset()
	if _, err := node.Pull(t.Context(), set.Images[0]); err != nil {
		t.Fatal(err)
	}
	for _, d := range reg.BlobGets() {
		if d == layers[1].String() || d == layers[0].String() {
			t.Errorf("blob %s fetched again after the restart (first attempt fetched %v)", d, fetched)
		}
	}
	if !slices.Contains(reg.BlobGets(), layers[2].String()) {
		t.Errorf("the unfinished layer was not fetched on resume: %v", reg.BlobGets())
	}
}
