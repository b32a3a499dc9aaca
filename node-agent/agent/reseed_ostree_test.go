package agent_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/node-agent/capture"
	"ibu.dev/node-agent/host/ostree"
	"ibu.dev/node-agent/host/ostreetest"
	"ibu.dev/node-agent/seedapply"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/testkit/natstest"
)

// A re-seed as the seed-builder makes it when the tag already holds a
// seed: the ostree and /var roles are the first capture's layers plus a
// delta (changed and new entries, whiteouts for deleted paths) computed
// against a second capture of the same real ostree host, which has booted
// a new commit and changed, added and deleted files in /var. Another
// cluster's agent lays it in Prep: the new commit deploys (`ostree
// rev-parse`), /var is the second capture's, and the ostree repository the
// chain extracts to is the second capture's, file for file (objects of the
// old commit gone, refs updated).
func TestReseedDeltaDeploysOnRealOstree(t *testing.T) {
	ctx := t.Context()
	seedSys := ostreetest.NewSysroot(t)
	_, hub := natstest.StartHub(t)
	obs, err := hub.ObjectStore(ctx, bus.ObjectStoreSeedArtifacts)
	if err != nil {
		t.Fatal(err)
	}
	h := &capture.OstreeHost{Sysroot: seedSys.Dir, Command: seedSys.Command, Stateroots: seedSys.Stateroots(),
		Cluster: capture.StaticCluster{Healthy: true}, Base: seedimage.SeedInfo{Version: seedVersion, Stateroot: newRoot},
		Stop: [][]string{{"true"}}, Start: [][]string{{"true"}}}
	_, seedVar, err := seedSys.Stateroots().Paths(ctx, ostreetest.InitialStateroot)
	if err != nil {
		t.Fatal(err)
	}
	put := func(files map[string]string) {
		for name, body := range files {
			p := filepath.Join(seedVar, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(map[string]string{"lib/app/keep": "k", "lib/app/change": "v1", "lib/app/gone": "g", "lib/gonedir/x": "x"})
	first, err := capture.Run(ctx, h, obs, capture.Request{BuildID: "b1", WorkDir: t.TempDir(), Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}

	// The seed host moves on: a new commit, booted; /var changes.
	tree := filepath.Join(t.TempDir(), "tree")
	ostreetest.WriteTree(t, tree, "4.16.10", "reseed")
	commit := strings.TrimSpace(seedSys.Ostree("commit", "--repo="+seedSys.Repo, "--orphan", "--tree=dir="+tree,
		"--subject=os reseed", "--add-metadata-string=version=4.16.10"))
	seedSys.Ostree("admin", "deploy", "--sysroot="+seedSys.Dir, "--os="+ostreetest.InitialStateroot, "--karg-none",
		"--karg-append=root=UUID=0000", "--karg-append=rw", commit)
	seedSys.Boot()
	put(map[string]string{"lib/app/change": "v2", "lib/app/new": "n"})
	for _, p := range []string{"lib/app/gone", "lib/gonedir"} {
		if err := os.RemoveAll(filepath.Join(seedVar, p)); err != nil {
			t.Fatal(err)
		}
	}
	second, err := capture.Run(ctx, h, obs, capture.Request{BuildID: "b2", WorkDir: t.TempDir(), Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if second.Inventory.OstreeCommit != commit {
		t.Fatalf("second capture has commit %s, want %s", second.Inventory.OstreeCommit, commit)
	}

	os1, var1 := artifactTar(t, obs, first, seedimage.RoleOstree), artifactTar(t, obs, first, seedimage.RoleVar)
	os2, var2 := artifactTar(t, obs, second, seedimage.RoleOstree), artifactTar(t, obs, second, seedimage.RoleVar)
	etc2 := artifactTar(t, obs, second, seedimage.RoleEtc)
	osDelta, osWhiteouts := reseedDelta(t, os1, os2)
	varDelta, varWhiteouts := reseedDelta(t, var1, var2)
	if osWhiteouts == 0 || varWhiteouts != 2 {
		t.Fatalf("whiteouts: ostree %d (want some: the old commit's objects), var %d (want 2)", osWhiteouts, varWhiteouts)
	}
	if len(osDelta) >= len(os2) {
		t.Fatalf("ostree delta is %d bytes, the full layer %d", len(osDelta), len(os2))
	}
	content := []seedimage.RoleLayer{
		{Role: seedimage.RoleOstree, Layer: reseedLayer(t, seedimage.RoleOstree, os1)},
		{Role: seedimage.RoleOstree, Layer: reseedLayer(t, seedimage.RoleOstree, osDelta)},
		{Role: seedimage.RoleVar, Layer: reseedLayer(t, seedimage.RoleVar, var1)},
		{Role: seedimage.RoleVar, Layer: reseedLayer(t, seedimage.RoleVar, varDelta)},
		{Role: seedimage.RoleEtc, Layer: reseedLayer(t, seedimage.RoleEtc, etc2)},
	}

	f := newFixture(t)
	info, _, _, _ := buildSeed(t, func(i *seedimage.SeedInfo) { i.OstreeCommit = commit }, nil)
	img, err := seedimage.Assemble(info, seedImages(), content, seedimage.Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seedimage.Push(ctx, f.seedRef, img, seedimage.WithAuthFile(f.auth)); err != nil {
		t.Fatal(err)
	}
	target := ostreetest.NewSysroot(t)
	ostreeAgent(t, f, target)
	f.waitPosition(prepDone, f.desire(stages.Prep))

	got := strings.TrimSpace(target.Ostree("rev-parse", "--repo="+target.Repo, ostree.RefPrefix+newRoot))
	if got != commit {
		t.Fatalf("rev-parse: target %s, re-seed commit %s", got, commit)
	}
	if rel := target.Ostree("cat", "--repo="+target.Repo, commit, "/usr/lib/os-release"); !strings.Contains(rel, `VARIANT="reseed"`) {
		t.Fatalf("deployed os-release: %q", rel)
	}
	wantStatus(t, target, "Prep", "rhcos@"+target.Commit[:8]+" "+newRoot+"@"+commit[:8])

	_, newVar, err := target.Stateroots().Paths(ctx, newRoot)
	if err != nil {
		t.Fatal(err)
	}
	gotVar, wantVar := treeOfDir(t, newVar), treeOfTar(t, var2, "var")
	for rel := range gotVar {
		if _, ok := wantVar[rel]; !ok && !strings.HasPrefix(rel, "lib/app") && !strings.HasPrefix(rel, "lib/gonedir") {
			delete(gotVar, rel) // what the target's ostree made in the new /var itself
		}
	}
	if d := treeDiff(wantVar, gotVar); d != "" {
		t.Fatalf("the new stateroot's /var is not the second capture's:\n%s", d)
	}

	seed, err := seedimage.Pull(ctx, f.seedRef, seedimage.WithAuthFile(f.auth))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := seedapply.ExtractOstree(ctx, seed, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if d := treeDiff(treeOfTar(t, os2, "repo"), treeOfDir(t, repo)); d != "" {
		t.Fatalf("the chain's ostree repository is not the second capture's:\n%s", d)
	}
	target.Ostree("fsck", "--repo="+repo)
}

// artifactTar returns the uncompressed tar of the capture's layer of role.
func artifactTar(t *testing.T, obs jetstream.ObjectStore, res capture.Result, role seedimage.Role) []byte {
	t.Helper()
	i := slices.IndexFunc(res.Artifacts, func(a events.SeedArtifact) bool { return a.Role == string(role) })
	if i < 0 {
		t.Fatalf("no %s artifact", role)
	}
	blob, err := obs.GetBytes(t.Context(), res.Artifacts[i].Object)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reseedDelta is the delta layer (uncompressed) the seed-builder's planner
// makes from prev to next, and its number of whiteouts.
func reseedDelta(t *testing.T, prev, next []byte) ([]byte, int) {
	t.Helper()
	ix, err := seedimage.IndexChain(t.Context(), []v1.Layer{reseedLayer(t, seedimage.RoleVar, prev)})
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
	return buf.Bytes(), plan.Deleted()
}

func reseedLayer(t *testing.T, role seedimage.Role, b []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(tarball.Opener(seedimage.BytesOpener(b)), tarball.WithMediaType(role.MediaType()))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// treeOfTar describes each entry under prefix/ (stripped): type and, for
// files, a content digest; for symlinks the target.
func treeOfTar(t *testing.T, b []byte, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		rel, ok := strings.CutPrefix(strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/"), prefix+"/")
		if !ok {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			out[rel] = "dir"
		case tar.TypeSymlink:
			out[rel] = "-> " + hdr.Linkname
		default:
			body, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[rel] = fmt.Sprintf("file %x", sha256.Sum256(body))
		}
	}
}

func treeOfDir(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.IsDir():
			out[rel] = "dir"
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "-> " + l
		default:
			body, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %x", sha256.Sum256(body))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func treeDiff(want, got map[string]string) string {
	var d []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			d = append(d, "missing "+k)
		} else if g != want[k] {
			d = append(d, fmt.Sprintf("%s: %s, want %s", k, g, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			d = append(d, "extra "+k)
		}
	}
	return strings.Join(d, "\n")
}
