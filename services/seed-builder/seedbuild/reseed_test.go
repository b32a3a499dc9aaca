package seedbuild_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ibu.dev/node-agent/seedapply"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/state"
)

// A re-seed to the tag that already holds a seed chains a delta onto the
// previous seed's /var layer (changed and new files, a whiteout for the
// deleted one), reuses the unchanged layers as they are, and uploads only
// the delta and the config; the chain lays the new /var. A change too
// large for a delta gets a full layer again.
func TestReseedChainsDeltas(t *testing.T) {
	r := newRig(t)
	ref := r.reg.Ref("seeds/sno:4.16")
	varDir := r.host.Source.VarDir
	write(t, map[string]string{varDir + "/lib/big": strings.Repeat("seed data ", 20000)})
	r.request(t, "b1", seedCluster, ref, r.authFile)
	if rec := r.result(t, "b1"); rec.State != state.SeedBuildCompleted {
		t.Fatalf("first build: %+v", rec)
	}
	first := pull(t, r, ref)
	firstVar, err := first.Chain(seedimage.RoleVar)
	if err != nil {
		t.Fatal(err)
	}

	write(t, map[string]string{varDir + "/lib/kubelet/config.json": `{"changed":true}`, varDir + "/lib/new": "new"})
	if err := os.RemoveAll(filepath.Join(varDir, "lib/etcd")); err != nil {
		t.Fatal(err)
	}
	r.reg.Reset()
	r.request(t, "b2", seedCluster, ref, r.authFile)
	rec := r.result(t, "b2")
	if rec.State != state.SeedBuildCompleted {
		t.Fatalf("re-seed: %+v", rec)
	}
	seed := pull(t, r, ref)
	if v := seed.Info().FormatVersion; v != seedimage.FormatVersionChained {
		t.Errorf("format %q, want %q", v, seedimage.FormatVersionChained)
	}
	chain, err := seed.Chain(seedimage.RoleVar)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || chain[0].Descriptor.Digest != firstVar[0].Descriptor.Digest {
		t.Fatalf("var chain %v, want the first seed's layer and a delta", chain)
	}
	if rec.Result.Layers != 5 || rec.Result.ReusedLayers != 4 || len(r.reg.Uploads()) != 2 { // the delta and the config
		t.Errorf("re-seed: %d layers, %d reused, %d blobs uploaded", rec.Result.Layers, rec.Result.ReusedLayers, len(r.reg.Uploads()))
	}
	// (Directories are in the delta when their times moved, which depends
	// on the clock's second: left out.)
	got := slices.DeleteFunc(layerNames(t, chain[1]), func(n string) bool { return strings.HasSuffix(n, "/") })
	if want := []string{"var/lib/.wh.etcd", "var/lib/kubelet/config.json", "var/lib/new"}; !slices.Equal(got, want) {
		t.Errorf("delta layer %v, want %v", got, want)
	}
	laid := t.TempDir()
	if err := seedapply.ApplyVar(t.Context(), seed, laid); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(laid, "lib/kubelet/config.json")); string(b) != `{"changed":true}` {
		t.Errorf("config.json %q", b)
	}
	if _, err := os.Stat(filepath.Join(laid, "lib/new")); err != nil {
		t.Error(err)
	}
	if _, err := os.Lstat(filepath.Join(laid, "lib/etcd")); !os.IsNotExist(err) {
		t.Errorf("lib/etcd was deleted on the seed host, the chain laid it: %v", err)
	}

	// Most of /var rewritten: a full layer again, not a third link.
	write(t, map[string]string{varDir + "/lib/big": strings.Repeat("new data! ", 20000)})
	r.request(t, "b3", seedCluster, ref, r.authFile)
	if rec := r.result(t, "b3"); rec.State != state.SeedBuildCompleted {
		t.Fatalf("third build: %+v", rec)
	}
	if chain, err := pull(t, r, ref).Chain(seedimage.RoleVar); err != nil || len(chain) != 1 {
		t.Errorf("after a large change the var role has %d layers (%v), want 1", len(chain), err)
	}
}

func pull(t *testing.T, r *rig, ref string) *seedimage.Seed {
	t.Helper()
	s, err := seedimage.Pull(t.Context(), ref, seedimage.WithAuthFile(r.authFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := seedimage.Verify(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

func layerNames(t *testing.T, l seedimage.ChainLayer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	return tarNames(t, rc)
}
