package seedimage

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestBuildDeterministic(t *testing.T) {
	a, _ := buildTestSeed(t, "1")
	b, _ := buildTestSeed(t, "1")
	da, err := a.Digest()
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if da != db {
		t.Errorf("same input, digests %s and %s", da, db)
	}

	// Image order does not matter; a changed /etc changes only its layer.
	c := newTestContent(t, "2")
	imgs := testImages()
	slices.Reverse(imgs)
	other, err := Build(testInfo(), imgs, c.content())
	if err != nil {
		t.Fatal(err)
	}
	ma, _ := a.Manifest()
	mo, _ := other.Manifest()
	for i, role := range Roles() {
		same := ma.Layers[i].Digest == mo.Layers[i].Digest
		if same != (role != RoleEtc) {
			t.Errorf("layer %s: same digest = %v", role, same)
		}
	}
}

func TestBuildStructure(t *testing.T) {
	img, c := buildTestSeed(t, "1")
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %s, %s", m.MediaType, m.Config.MediaType)
	}
	for i, role := range Roles() {
		d := m.Layers[i]
		if d.Annotations[AnnotationRole] != string(role) || d.MediaType != role.MediaType() {
			t.Errorf("layer %d: %v %s", i, d.Annotations, d.MediaType)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "amd64" || cf.OS != "linux" || cf.Config.Labels[LabelFormatVersion] != "1" {
		t.Errorf("config %+v", cf)
	}

	s, err := New(img)
	if err != nil {
		t.Fatal(err)
	}
	want := testInfo()
	want.FormatVersion = FormatVersion
	if got := s.Info(); got.Version != want.Version || got.FormatVersion != "1" || !slices.Equal(got.Operators, want.Operators) || !got.BuildTime.Equal(want.BuildTime) {
		t.Errorf("Info = %+v", got)
	}
	wantImgs := testImages()
	slices.Sort(wantImgs)
	if !slices.Equal(s.PrecacheImages(), wantImgs) {
		t.Errorf("images = %v", s.PrecacheImages())
	}
	if err := Verify(context.Background(), s); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !bytes.Equal(readLayer(t, s, RoleOstree), c.ostree) {
		t.Error("ostree layer differs from input")
	}
	md, err := s.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(md.EtcDeletions, slices.Sorted(slices.Values(c.deletions))) || string(md.Extra["ostree.origin"]) == "" {
		t.Errorf("metadata %+v", md)
	}
}

func TestBuildRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*SeedInfo, *[]string, *Content)
		want   error
	}{
		{"format", func(i *SeedInfo, _ *[]string, _ *Content) { i.FormatVersion = "2" }, ErrFormatVersion},
		{"version", func(i *SeedInfo, _ *[]string, _ *Content) { i.Version = "4.16" }, ErrBadInfo},
		{"release image", func(i *SeedInfo, _ *[]string, _ *Content) { i.ReleaseImage = "quay.io/a/b:4.16" }, ErrBadImageRef},
		{"ip family", func(i *SeedInfo, _ *[]string, _ *Content) { i.IPFamily = "ipv4" }, ErrBadInfo},
		{"commit", func(i *SeedInfo, _ *[]string, _ *Content) { i.OstreeCommit = "abc" }, ErrBadInfo},
		{"stateroot", func(i *SeedInfo, _ *[]string, _ *Content) { i.Stateroot = "../x" }, ErrBadInfo},
		{"image", func(_ *SeedInfo, im *[]string, _ *Content) { *im = append(*im, "quay.io/a/b:latest") }, ErrBadImageRef},
		{"no var", func(_ *SeedInfo, _ *[]string, c *Content) { c.Var = nil }, ErrMissingLayer},
		{"deletion", func(_ *SeedInfo, _ *[]string, c *Content) { c.EtcDeletions = []string{"/var/x"} }, ErrBadMetadata},
		{"deletion dots", func(_ *SeedInfo, _ *[]string, c *Content) { c.EtcDeletions = []string{"/etc/../x"} }, ErrBadMetadata},
		{"extra name", func(_ *SeedInfo, _ *[]string, c *Content) { c.Extra = map[string][]byte{EtcDeletionsFile: nil} }, ErrBadMetadata},
		{"opener fails", func(_ *SeedInfo, _ *[]string, c *Content) { c.Etc = FileOpener("/nonexistent/etc.tar") }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, imgs, c := testInfo(), testImages(), newTestContent(t, "1").content()
			tc.change(&info, &imgs, &c)
			_, err := Build(info, imgs, c)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Build = %v, want %v", err, tc.want)
			}
		})
	}
}
