package seedimage

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"ibu.dev/shared/testkit/registrytest"
)

func layerDigests(t *testing.T, img v1.Image) map[Role]string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[Role]string{}
	for _, d := range m.Layers {
		out[Role(d.Annotations[AnnotationRole])] = d.Digest.String()
	}
	out["config"] = m.Config.Digest.String()
	return out
}

func TestPushInspectPull(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.WithBasicAuth("ibu", "s3cret"))
	auth := WithAuthFile(reg.AuthFile(t))
	ref := reg.Ref("seeds/sno:4.16.3")
	img, c := buildTestSeed(t, "1")
	digests := layerDigests(t, img)

	pinned, err := Push(ctx, ref, img, auth)
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	d, _ := img.Digest()
	if pinned != reg.Ref("seeds/sno@"+d.String()) {
		t.Errorf("Push = %s", pinned)
	}
	if n := len(reg.Uploads()); n != 5 {
		t.Errorf("first push uploaded %d blobs, want 4 layers + config", n)
	}

	reg.Reset()
	sum, err := Inspect(ctx, ref, auth)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	if gets := reg.BlobGets(); !slices.Equal(gets, []string{digests["config"]}) {
		t.Errorf("Inspect fetched blobs %v, want only the config %s", gets, digests["config"])
	}
	if sum.Ref != pinned || sum.Info.Version != "4.16.3" || sum.Info.FormatVersion != FormatVersion || len(sum.Images) != 3 {
		t.Errorf("Inspect = %+v", sum)
	}
	cluster := compatibleCluster()
	if err := Compatible(sum.Info, cluster); err != nil {
		t.Errorf("Compatible: %v", err)
	}

	reg.Reset()
	s, err := Pull(ctx, sum.Ref, auth)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if err := Verify(ctx, s); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for role, want := range map[Role][]byte{RoleOstree: c.ostree, RoleVar: c.vars, RoleEtc: c.etc} {
		if !bytes.Equal(readLayer(t, s, role), want) {
			t.Errorf("pulled %s layer differs from input", role)
		}
	}
	for _, role := range Roles() {
		if !slices.Contains(reg.BlobGets(), digests[role]) {
			t.Errorf("layer %s was never fetched", role)
		}
	}
}

func TestRegistryErrors(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.WithBasicAuth("ibu", "s3cret"))
	good := WithAuth(&authn.Basic{Username: "ibu", Password: "s3cret"})
	img, _ := buildTestSeed(t, "1")
	ref := reg.Ref("seeds/sno:4.16.3")
	if _, err := Push(ctx, ref, img, good); err != nil {
		t.Fatal(err)
	}

	for name, opt := range map[string]Option{
		"wrong password": WithAuth(&authn.Basic{Username: "ibu", Password: "wrong"}),
		"anonymous":      WithAuth(authn.Anonymous),
		"other host":     WithAuthFile(registrytest.WriteAuthFile(t, "example.com", "ibu", "s3cret")),
	} {
		if _, err := Push(ctx, reg.Ref("seeds/sno:other"), img, opt); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: Push = %v, want ErrUnauthorized", name, err)
		}
		if _, err := Pull(ctx, ref, opt); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: Pull = %v, want ErrUnauthorized", name, err)
		} else if !strings.Contains(err.Error(), "pull seed "+ref) {
			t.Errorf("error lacks context: %v", err)
		}
		if _, err := Inspect(ctx, ref, opt); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: Inspect = %v, want ErrUnauthorized", name, err)
		}
	}

	if _, err := Inspect(ctx, reg.Ref("seeds/sno:4.99.0"), good); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing tag: %v", err)
	}
	if _, err := Pull(ctx, "Not A Ref", good); !errors.Is(err, ErrBadImageRef) {
		t.Errorf("bad ref: %v", err)
	}
	if _, err := Pull(ctx, ref, WithAuthFile("/nonexistent/auth.json")); err == nil {
		t.Error("missing auth file accepted")
	}

	// Not a seed: refused by Push, and by Inspect when pushed by other means.
	plain, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Push(ctx, reg.Ref("plain:1"), plain, good); !errors.Is(err, ErrMissingLabel) {
		t.Errorf("Push(non-seed) = %v", err)
	}
	r, _ := name.ParseReference(reg.Ref("plain:1"))
	if err := remote.Write(r, plain, remote.WithAuth(&authn.Basic{Username: "ibu", Password: "s3cret"})); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(ctx, reg.Ref("plain:1"), good); !errors.Is(err, ErrMissingLabel) {
		t.Errorf("Inspect(non-seed) = %v", err)
	}
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img})
	r, _ = name.ParseReference(reg.Ref("seeds/sno:index"))
	if err := remote.WriteIndex(r, idx, remote.WithAuth(&authn.Basic{Username: "ibu", Password: "s3cret"})); err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(ctx, reg.Ref("seeds/sno:index"), good); !errors.Is(err, ErrNotImage) {
		t.Errorf("Pull(index) = %v", err)
	}
}

// A seed whose /etc changed re-uploads only that layer and the config, and a
// layout that holds the old seed downloads only the new layer.
func TestLayerReuse(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t)
	opt := WithAuth(authn.Anonymous)
	old, _ := buildTestSeed(t, "1")
	next, _ := buildTestSeed(t, "2")
	want := layerDigests(t, next)

	if _, err := Push(ctx, reg.Ref("seeds/sno:4.16.3"), old, opt); err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	if _, err := Push(ctx, reg.Ref("seeds/sno:4.16.3-2"), next, opt); err != nil {
		t.Fatal(err)
	}
	got := reg.Uploads()
	slices.Sort(got)
	wantUploads := []string{want[RoleEtc], want["config"]}
	slices.Sort(wantUploads)
	if !slices.Equal(got, wantUploads) {
		t.Errorf("second push uploaded %v, want etc layer and config %v", got, wantUploads)
	}

	dir := t.TempDir()
	s, err := Pull(ctx, reg.Ref("seeds/sno:4.16.3"), opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(dir, s, "current"); err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	s, err = Pull(ctx, reg.Ref("seeds/sno:4.16.3-2"), opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(dir, s, "next"); err != nil {
		t.Fatal(err)
	}
	var layerGets []string
	for _, g := range reg.BlobGets() {
		if g != want["config"] {
			layerGets = append(layerGets, g)
		}
	}
	if !slices.Equal(layerGets, []string{want[RoleEtc]}) {
		t.Errorf("layout write fetched layers %v, want only etc %s", layerGets, want[RoleEtc])
	}
	local, err := ReadLayout(dir, "next")
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, local); err != nil {
		t.Fatal(err)
	}
}
