package seedapply

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"ibu.dev/shared/seedimage"
)

func tarLayer(t testing.TB, role seedimage.Role, b []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(tarball.Opener(seedimage.BytesOpener(b)), tarball.WithMediaType(role.MediaType()))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// chainSeed assembles a seed whose ostree and var roles carry the given
// chains (uncompressed tars, full first), read back through an OCI layout
// as the agent does.
func chainSeed(t testing.TB, ostree, vars [][]byte) *seedimage.Seed {
	t.Helper()
	var content []seedimage.RoleLayer
	for _, b := range ostree {
		content = append(content, seedimage.RoleLayer{Role: seedimage.RoleOstree, Layer: tarLayer(t, seedimage.RoleOstree, b)})
	}
	for _, b := range vars {
		content = append(content, seedimage.RoleLayer{Role: seedimage.RoleVar, Layer: tarLayer(t, seedimage.RoleVar, b)})
	}
	content = append(content, seedimage.RoleLayer{Role: seedimage.RoleEtc, Layer: tarLayer(t, seedimage.RoleEtc, tarOf(t, reg("etc/x", "x")))})
	img, err := seedimage.Assemble(testInfo(), nil, content, seedimage.Metadata{})
	if err != nil {
		t.Fatalf("Assemble: %v", err)
	}
	s, err := seedimage.New(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := seedimage.Verify(context.Background(), s); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	out, _ := viaLayout(t, s)
	return out
}

// delta makes, with the planner the seed-builder uses, the delta layer
// that takes the chain prev to the full tar next.
func delta(t testing.TB, role seedimage.Role, prev [][]byte, next []byte) []byte {
	t.Helper()
	var ls []v1.Layer
	for _, b := range prev {
		ls = append(ls, tarLayer(t, role, b))
	}
	ix, err := seedimage.IndexChain(t.Context(), ls)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := seedimage.PlanDelta(t.Context(), ix, bytes.NewReader(next))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := plan.WriteDelta(t.Context(), &buf, bytes.NewReader(next)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A chain (full layer + deltas with changed, added and deleted entries)
// extracts to exactly what the last full capture does, for /var and for
// the ostree repository.
func TestChainExtractsLikeTheFullLayer(t *testing.T) {
	ctx := context.Background()
	var1 := tarOf(t, dir("var/"), dir("var/lib/"), reg("var/lib/a", "a1"), reg("var/lib/b", "b1"), reg("var/lib/c", "c1"),
		dir("var/lib/gone/"), reg("var/lib/gone/x", "x"), symlink("var/lib/l", "a"))
	var2 := tarOf(t, dir("var/"), dir("var/lib/"), reg("var/lib/a", "a2"), reg("var/lib/b", "b1"),
		reg("var/lib/l", "was a symlink"), dir("var/lib/new/"), reg("var/lib/new/n", "n"))
	var3 := tarOf(t, dir("var/"), dir("var/lib/"), reg("var/lib/a", "a3"), dir("var/lib/c/"), reg("var/lib/c/d", "dir now"),
		reg("var/lib/l", "was a symlink"), dir("var/lib/new/"))
	os1 := tarOf(t, dir("repo/"), reg("repo/config", "[core]\nmode=archive-z2\n"), dir("repo/objects/"),
		dir("repo/objects/ab/"), reg("repo/objects/ab/old.filez", "old"), reg("repo/objects/ab/keep.filez", "keep"),
		dir("repo/refs/"), dir("repo/refs/heads/"), reg("repo/refs/heads/seed", "c1"))
	os2 := tarOf(t, dir("repo/"), reg("repo/config", "[core]\nmode=archive-z2\n"), dir("repo/objects/"),
		dir("repo/objects/ab/"), reg("repo/objects/ab/keep.filez", "keep"), dir("repo/objects/cd/"), reg("repo/objects/cd/new.filez", "new"),
		dir("repo/refs/"), dir("repo/refs/heads/"), reg("repo/refs/heads/seed", "c2"))

	varChain := [][]byte{var1, delta(t, seedimage.RoleVar, [][]byte{var1}, var2)}
	varChain = append(varChain, delta(t, seedimage.RoleVar, varChain, var3))
	osChain := [][]byte{os1, delta(t, seedimage.RoleOstree, [][]byte{os1}, os2)}
	chained := chainSeed(t, osChain, varChain)
	full := chainSeed(t, [][]byte{os2}, [][]byte{var3})
	if v := chained.Info().FormatVersion; v != seedimage.FormatVersionChained {
		t.Fatalf("format %q, want %q", v, seedimage.FormatVersionChained)
	}
	if v := full.Info().FormatVersion; v != seedimage.FormatVersion {
		t.Fatalf("one layer per role: format %q, want %q", v, seedimage.FormatVersion)
	}

	gotVar, wantVar := t.TempDir(), t.TempDir()
	if err := ApplyVar(ctx, chained, gotVar); err != nil {
		t.Fatal(err)
	}
	if err := ApplyVar(ctx, full, wantVar); err != nil {
		t.Fatal(err)
	}
	if d := diffSnap(snapshot(t, wantVar), snapshot(t, gotVar)); d != "" {
		t.Fatalf("var from the chain differs from the full layer:\n%s", d)
	}
	for _, gone := range []string{"lib/gone", "lib/new/n"} {
		if exists(filepath.Join(gotVar, gone)) {
			t.Errorf("%s was deleted by the re-seed but is there", gone)
		}
	}

	gotRepo, err := ExtractOstree(ctx, chained, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wantRepo, err := ExtractOstree(ctx, full, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if d := diffSnap(snapshot(t, wantRepo), snapshot(t, gotRepo)); d != "" {
		t.Fatalf("ostree repo from the chain differs from the full layer:\n%s", d)
	}
	if exists(filepath.Join(gotRepo, "objects/ab/old.filez")) || readFile(t, filepath.Join(gotRepo, "refs/heads/seed")) != "c2" {
		t.Fatal("the delta's deletion or ref change did not arrive")
	}
}

// A whiteout in a delta layer removes only inside the target directory:
// names that climb out, absolute names, whiteouts through a symlinked
// parent, opaque and empty whiteouts are refused; a whiteout of a symlink
// removes the link, never what it points to. In a chain's first layer a
// ".wh." name is an ordinary file, as in a format 1 seed.
func TestWhiteoutCannotEscape(t *testing.T) {
	ctx := context.Background()
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"victim": "keep me", "dir/victim": "keep me"})
	base := tarOf(t, dir("var/"), dir("var/lib/"), reg("var/lib/a", "a"), symlink("var/lib/link", filepath.Join(outside, "dir")),
		reg("var/lib/.wh.plain", "a file in a full layer"))
	for _, tc := range []struct {
		name   string
		delta  []byte
		refuse bool
	}{
		{"parent reference", tarOf(t, reg("var/../.wh."+filepath.Base(outside), "")), true},
		{"parent reference deep", tarOf(t, reg("var/lib/../../.wh.victim", "")), true},
		{"absolute", tarOf(t, reg(filepath.Join(outside, ".wh.victim"), "")), true},
		{"through a symlinked parent", tarOf(t, reg("var/lib/link/.wh.victim", "")), true},
		{"opaque", tarOf(t, reg("var/lib/.wh..wh..opq", "")), true},
		{"empty", tarOf(t, reg("var/lib/.wh.", "")), true},
		{"the target directory", tarOf(t, reg(".wh.var", "")), true},
		{"a symlink to outside", tarOf(t, reg("var/lib/.wh.link", "")), false},
		{"a missing path", tarOf(t, reg("var/lib/.wh.nothing", "")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed := chainSeed(t, [][]byte{defaultOstree(t)}, [][]byte{base, tc.delta})
			varDir := t.TempDir()
			err := ApplyVar(ctx, seed, varDir)
			switch {
			case tc.refuse && !errors.Is(err, ErrUnsafeEntry):
				t.Fatalf("ApplyVar = %v, want %v", err, ErrUnsafeEntry)
			case !tc.refuse && err != nil:
				t.Fatalf("ApplyVar: %v", err)
			}
			for _, p := range []string{"victim", "dir/victim"} {
				if readFile(t, filepath.Join(outside, p)) != "keep me" {
					t.Fatalf("%s outside the target changed", p)
				}
			}
			if _, err := os.Stat(outside); err != nil {
				t.Fatal(err)
			}
			if !tc.refuse {
				if readFile(t, filepath.Join(varDir, "lib/.wh.plain")) != "a file in a full layer" {
					t.Fatal("a .wh. name in the first layer is not an ordinary file")
				}
				if tc.name == "a symlink to outside" && exists(filepath.Join(varDir, "lib/link")) {
					t.Fatal("the whiteout left the symlink")
				}
			}
		})
	}
}
