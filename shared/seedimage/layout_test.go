package seedimage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func TestLayoutRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "seeds")
	img, c := buildTestSeed(t, "1")
	if err := WriteLayout(dir, img, "4.16.3"); err != nil {
		t.Fatal(err)
	}
	next, _ := buildTestSeed(t, "2")
	if err := WriteLayout(dir, next); err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(dir, next); err != nil { // idempotent
		t.Fatal(err)
	}
	d, _ := img.Digest()
	for _, ref := range []string{"4.16.3", d.String()} {
		s, err := ReadLayout(dir, ref)
		if err != nil {
			t.Fatalf("ReadLayout(%s): %v", ref, err)
		}
		if got, _ := s.Digest(); got != d {
			t.Errorf("ReadLayout(%s) = %s, want %s", ref, got, d)
		}
		if err := Verify(ctx, s); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if !bytes.Equal(readLayer(t, s, RoleEtc), c.etc) || !bytes.Equal(readLayer(t, s, RoleVar), c.vars) {
			t.Error("layer content differs from input")
		}
	}
	if _, err := ReadLayout(dir, "4.99.0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown tag: %v", err)
	}

	// Moving the tag replaces the entry instead of adding one.
	if err := WriteLayout(dir, next, "4.16.3"); err != nil {
		t.Fatal(err)
	}
	s, err := ReadLayout(dir, "4.16.3")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Digest(); got == d {
		t.Error("tag did not move")
	}
}

func TestLayoutTamperedLayer(t *testing.T) {
	dir := t.TempDir()
	img, _ := buildTestSeed(t, "1")
	if err := WriteLayout(dir, img, "seed"); err != nil {
		t.Fatal(err)
	}
	s, err := ReadLayout(dir, "seed")
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Layer(RoleEtc)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := l.Digest()
	blob := filepath.Join(dir, "blobs", d.Algorithm, d.Hex)
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff // same size, different content
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	err = Verify(context.Background(), s)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Verify = %v, want ErrDigestMismatch", err)
	}

	// Copying the tampered seed to another layout refuses the bad blob.
	other := t.TempDir()
	if err := WriteLayout(other, s); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("WriteLayout(tampered) = %v, want ErrDigestMismatch", err)
	}
	if _, err := os.Stat(filepath.Join(other, "blobs", d.Algorithm, d.Hex)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tampered blob was kept: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(other, "blobs", "sha256", "*.partial-*"))
	if len(left) > 0 {
		t.Errorf("partial files left: %v", left)
	}
}

// withLabels rebuilds img's config labels through change.
func withLabels(t *testing.T, img v1.Image, change func(map[string]string)) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := *cf.Config.DeepCopy()
	change(cfg.Labels)
	out, err := mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLayoutBadSeeds(t *testing.T) {
	ctx := context.Background()
	img, _ := buildTestSeed(t, "1")
	for _, tc := range []struct {
		name              string
		labels            func(map[string]string)
		readErr, checkErr error
	}{
		{name: "no format label", labels: func(l map[string]string) { delete(l, LabelFormatVersion) }, readErr: ErrMissingLabel},
		{name: "no info label", labels: func(l map[string]string) { delete(l, LabelInfo) }, readErr: ErrMissingLabel},
		{name: "no images label", labels: func(l map[string]string) { delete(l, LabelImages) }, readErr: ErrMissingLabel},
		{name: "info not JSON", labels: func(l map[string]string) { l[LabelInfo] = "{" }, readErr: ErrBadInfo},
		{name: "format 3", labels: func(l map[string]string) { l[LabelFormatVersion] = "3" }, checkErr: ErrFormatVersion},
		{name: "bad image", labels: func(l map[string]string) { l[LabelImages] = `["quay.io/a/b:latest"]` }, checkErr: ErrBadImageRef},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteLayout(dir, withLabels(t, img, tc.labels), "bad"); err != nil {
				t.Fatal(err)
			}
			s, err := ReadLayout(dir, "bad")
			if tc.readErr != nil {
				if !errors.Is(err, tc.readErr) {
					t.Fatalf("ReadLayout = %v, want %v", err, tc.readErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(ctx, s); !errors.Is(err, tc.checkErr) {
				t.Fatalf("Verify = %v, want %v", err, tc.checkErr)
			}
		})
	}
}

func TestVerifyLayerRoles(t *testing.T) {
	img, _ := buildTestSeed(t, "1")
	m, _ := img.Manifest()
	ls, _ := img.Layers()

	// Drop the etc layer, and add the var layer a second time.
	var adds []mutate.Addendum
	for i, d := range m.Layers {
		if Role(d.Annotations[AnnotationRole]) == RoleEtc {
			continue
		}
		adds = append(adds, mutate.Addendum{Layer: ls[i], Annotations: d.Annotations, MediaType: d.MediaType})
		if Role(d.Annotations[AnnotationRole]) == RoleVar {
			adds = append(adds, mutate.Addendum{Layer: ls[i], Annotations: d.Annotations, MediaType: d.MediaType})
		}
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs, cf.History = nil, nil
	base, err := mutate.ConfigFile(mutate.ConfigMediaType(mutate.MediaType(empty.Image, m.MediaType), m.Config.MediaType), cf)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := mutate.Append(base, adds...)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Layer(RoleEtc); !errors.Is(err, ErrMissingLayer) {
		t.Errorf("Layer(etc) = %v", err)
	}
	err = Verify(context.Background(), s)
	if !errors.Is(err, ErrMissingLayer) || !errors.Is(err, ErrBadLayer) {
		t.Fatalf("Verify = %v, want ErrMissingLayer and ErrBadLayer", err)
	}
}
