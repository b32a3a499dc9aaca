package seedimage

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func roleLayer(t *testing.T, role Role, b []byte) RoleLayer {
	t.Helper()
	l, err := tarball.LayerFromOpener(tarball.Opener(BytesOpener(b)), tarball.WithMediaType(role.MediaType()))
	if err != nil {
		t.Fatal(err)
	}
	return RoleLayer{Role: role, Layer: l}
}

func TestChainedSeed(t *testing.T) {
	ctx := context.Background()
	content := []RoleLayer{
		roleLayer(t, RoleOstree, tarOf(t, "repo/config", "c")),
		roleLayer(t, RoleVar, tarOf(t, "var/a", "1")),
		roleLayer(t, RoleVar, tarOf(t, "var/a", "2", "var/.wh.b", "")),
		roleLayer(t, RoleEtc, tarOf(t, "etc/x", "x")),
	}
	img, err := Assemble(testInfo(), testImages(), content, Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(img)
	if err != nil {
		t.Fatal(err)
	}
	if v := s.Info().FormatVersion; v != FormatVersionChained {
		t.Fatalf("format %q", v)
	}
	if err := Verify(ctx, s); err != nil {
		t.Fatal(err)
	}
	chain, err := s.Chain(RoleVar)
	if err != nil || len(chain) != 2 {
		t.Fatalf("Chain = %v, %v", chain, err)
	}
	for i, l := range chain {
		want, _ := content[1+i].Layer.DiffID()
		if l.DiffID != want || l.Descriptor.Annotations[AnnotationLayerIndex] != strconv.Itoa(i) {
			t.Errorf("layer %d: diff ID %s (want %s), annotations %v", i, l.DiffID, want, l.Descriptor.Annotations)
		}
	}
	if c, err := s.Chain(RoleEtc); err != nil || len(c) != 1 || c[0].Descriptor.Annotations[AnnotationLayerIndex] != "" {
		t.Errorf("etc chain %v, %v", c, err)
	}

	// Too long a chain is refused when assembled.
	long := append([]RoleLayer(nil), content...)
	for range MaxChain {
		long = append(long, roleLayer(t, RoleVar, tarOf(t, "var/a", "n")))
	}
	if _, err := Assemble(testInfo(), testImages(), long, Metadata{}); !errors.Is(err, ErrBadLayer) {
		t.Errorf("Assemble with %d var layers = %v", MaxChain+2, err)
	}
}

// Verify refuses chains a format 1 seed may not have, and chains whose
// layers are out of order or apart.
func TestVerifyBadChains(t *testing.T) {
	ctx := context.Background()
	layer := func(role Role, body, index string) mutate.Addendum {
		ann := map[string]string{AnnotationRole: string(role)}
		if index != "" {
			ann[AnnotationLayerIndex] = index
		}
		return mutate.Addendum{Layer: roleLayer(t, role, tarOf(t, "x", body)).Layer, MediaType: role.MediaType(), Annotations: ann}
	}
	md, err := Metadata{}.tar()
	if err != nil {
		t.Fatal(err)
	}
	meta := mutate.Addendum{Layer: roleLayer(t, RoleMetadata, md).Layer, MediaType: RoleMetadata.MediaType(),
		Annotations: map[string]string{AnnotationRole: string(RoleMetadata)}}
	for _, tc := range []struct {
		name    string
		version string
		layers  []mutate.Addendum
	}{
		{"two layers in format 1", FormatVersion, []mutate.Addendum{layer(RoleOstree, "o", ""), layer(RoleVar, "1", ""), layer(RoleVar, "2", ""), layer(RoleEtc, "e", ""), meta}},
		{"indexes out of order", FormatVersionChained, []mutate.Addendum{layer(RoleOstree, "o", ""), layer(RoleVar, "1", "1"), layer(RoleVar, "2", "0"), layer(RoleEtc, "e", ""), meta}},
		{"no index", FormatVersionChained, []mutate.Addendum{layer(RoleOstree, "o", ""), layer(RoleVar, "1", ""), layer(RoleVar, "2", ""), layer(RoleEtc, "e", ""), meta}},
		{"apart", FormatVersionChained, []mutate.Addendum{layer(RoleOstree, "o", ""), layer(RoleVar, "1", "0"), layer(RoleEtc, "e", ""), layer(RoleVar, "2", "1"), meta}},
		{"two metadata layers", FormatVersionChained, []mutate.Addendum{layer(RoleOstree, "o", ""), layer(RoleVar, "1", ""), layer(RoleEtc, "e", ""), meta, meta}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, _, err := seedBase(testInfo(), testImages(), tc.version)
			if err != nil {
				t.Fatal(err)
			}
			img, err := mutate.Append(base, tc.layers...)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(img)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(ctx, s); !errors.Is(err, ErrBadLayer) {
				t.Errorf("Verify = %v, want %v", err, ErrBadLayer)
			}
		})
	}
}

func TestPlanDelta(t *testing.T) {
	ctx := context.Background()
	prev := []v1.Layer{roleLayer(t, RoleVar, tarOf(t, "var/a", "1", "var/d/x", "x", "var/d/y", "y", "var/b", "b")).Layer}
	ix, err := IndexChain(ctx, prev)
	if err != nil {
		t.Fatal(err)
	}
	same := tarOf(t, "var/a", "1", "var/d/x", "x", "var/d/y", "y", "var/b", "b")
	if p, err := PlanDelta(ctx, ix, bytes.NewReader(same)); err != nil || !p.Empty() {
		t.Fatalf("unchanged: %+v, %v", p, err)
	}
	// tarOf writes no directory entries: var/d goes file by file.
	next := tarOf(t, "var/a", "2", "var/c", "c")
	p, err := PlanDelta(ctx, ix, bytes.NewReader(next))
	if err != nil {
		t.Fatal(err)
	}
	if p.ChangedEntries != 2 || p.Deleted() != 3 || p.Entries != 2 {
		t.Fatalf("plan %+v, deleted %v", p, p.deleted)
	}
	var buf bytes.Buffer
	if err := p.WriteDelta(ctx, &buf, bytes.NewReader(next)); err != nil {
		t.Fatal(err)
	}
	// The delta applied over the chain is the new tar.
	ix2, err := IndexChain(ctx, append(prev, roleLayer(t, RoleVar, buf.Bytes()).Layer))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := PlanDelta(ctx, ix2, bytes.NewReader(next)); err != nil || !p.Empty() {
		t.Fatalf("chain + delta differs from the new tar: %+v, %v", p, err)
	}
	if _, err := PlanDelta(ctx, ix, bytes.NewReader(tarOf(t, "var/.wh.a", ""))); !errors.Is(err, ErrNoDelta) {
		t.Errorf("a new entry named like a whiteout: %v, want %v", err, ErrNoDelta)
	}
}
