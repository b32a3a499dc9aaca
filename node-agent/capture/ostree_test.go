package capture_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"ibu.dev/node-agent/capture"
	"ibu.dev/node-agent/host/ostreetest"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/seedimage/seedsim"
	"ibu.dev/shared/testkit/natstest"
)

// TestCaptureRealOstree captures a real ostree sysroot and imports the
// captured commit into another host's repository, as Prep's ImportCommit
// does: `ostree rev-parse` gives the same checksum on both sides, and the
// workloads were stopped and started again.
func TestCaptureRealOstree(t *testing.T) {
	seed := ostreetest.NewSysroot(t)
	_, js := natstest.StartHub(t)
	obs, err := js.ObjectStore(t.Context(), bus.ObjectStoreSeedArtifacts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := seedsim.New("4.16.3", 3)
	if err != nil {
		t.Fatal(err)
	}
	marks := t.TempDir()
	h := &capture.OstreeHost{
		Sysroot: seed.Dir, Command: seed.Command, Stateroots: seed.Stateroots(),
		Cluster: capture.StaticCluster{Namespaces: []string{"openshift-etcd"}, Healthy: true},
		Base:    s.Info,
		Stop:    [][]string{{"touch", filepath.Join(marks, "stopped")}},
		Start:   [][]string{{"touch", filepath.Join(marks, "started")}},
	}
	res, err := capture.Run(t.Context(), h, obs, capture.Request{BuildID: "b1", WorkDir: t.TempDir(), Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"stopped", "started"} {
		if _, err := os.Stat(filepath.Join(marks, m)); err != nil {
			t.Errorf("workloads not %s: %v", m, err)
		}
	}
	if res.Inventory.OstreeCommit != seed.Commit {
		t.Fatalf("captured commit %s, booted %s", res.Inventory.OstreeCommit, seed.Commit)
	}
	blob, err := obs.GetBytes(t.Context(), "b1/ostree")
	if err != nil {
		t.Fatal(err)
	}
	repo := untar(t, blob, t.TempDir())
	target := ostreetest.NewSysroot(t)
	if err := target.Stateroots().Import(context.Background(), filepath.Join(repo, "repo"), seed.Commit, "rhcos_4.16.3"); err != nil {
		t.Fatal(err)
	}
	got := strings.TrimSpace(target.Ostree("rev-parse", "--repo="+target.Repo, "ibu/rhcos_4.16.3"))
	want := strings.TrimSpace(seed.Ostree("rev-parse", "--repo="+seed.Repo, seed.Commit))
	if got != want {
		t.Errorf("rev-parse on the target %s, on the seed %s", got, want)
	}
	target.Ostree("fsck", "--repo="+target.Repo)
}

func untar(t *testing.T, gz []byte, dir string) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(tr)
			if err := os.WriteFile(p, b, os.FileMode(h.Mode)); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				t.Fatal(err)
			}
		}
	}
}
