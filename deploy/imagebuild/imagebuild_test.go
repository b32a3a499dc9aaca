package imagebuild_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"ibu.dev/deploy/imagebuild"
	"ibu.dev/shared/testkit/natstest"
)

const root = "../.."

func needGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to build images: %v (install Go 1.26)", err)
	}
}

// Every image, built twice into OCI layouts, has the same digest; the
// images are what the issue asks (platforms, media types, user, labels,
// no shell).
func TestImagesAreReproducible(t *testing.T) {
	needGo(t)
	bins, err := imagebuild.Discover(root)
	if err != nil {
		t.Fatal(err)
	}
	o := imagebuild.Options{Dir: root, Epoch: time.Unix(1700000000, 0), Source: "https://example.com/ibu", Version: "v0.0.0-test", Revision: "abc123"}
	out1, out2 := t.TempDir(), t.TempDir()
	for _, b := range bins {
		t.Run(b.Name, func(t *testing.T) {
			var digests []v1.Hash
			for _, out := range []string{out1, out2} {
				idx, err := imagebuild.Build(t.Context(), b, o)
				if err != nil {
					t.Fatal(err)
				}
				if err := imagebuild.WriteLayout(imagebuild.LayoutPath(out, b.Name), idx); err != nil {
					t.Fatal(err)
				}
				lp, err := layout.FromPath(imagebuild.LayoutPath(out, b.Name))
				if err != nil {
					t.Fatal(err)
				}
				ii, err := lp.ImageIndex()
				if err != nil {
					t.Fatal(err)
				}
				im, err := ii.IndexManifest()
				if err != nil || len(im.Manifests) != 1 {
					t.Fatalf("layout index: %v %v", im, err)
				}
				digests = append(digests, im.Manifests[0].Digest)
			}
			if digests[0] != digests[1] {
				t.Fatalf("two builds of %s: %s and %s", b.Name, digests[0], digests[1])
			}
			idx := readIndex(t, imagebuild.LayoutPath(out1, b.Name))
			checkIndex(t, b.Name, idx)
		})
	}
}

func readIndex(t *testing.T, dir string) v1.ImageIndex {
	t.Helper()
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	outer, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := outer.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := outer.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func checkIndex(t *testing.T, name string, idx v1.ImageIndex) {
	t.Helper()
	mt, _ := idx.MediaType()
	if mt != types.OCIImageIndex {
		t.Errorf("index media type %s", mt)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var archs []string
	for _, d := range im.Manifests {
		archs = append(archs, d.Platform.OS+"/"+d.Platform.Architecture)
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
			t.Errorf("%s: manifest media type %s", d.Platform.Architecture, mt)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != d.Platform.Architecture || cf.OS != "linux" {
			t.Errorf("config platform %s/%s, descriptor %s", cf.OS, cf.Architecture, d.Platform.Architecture)
		}
		if cf.Config.User != "65532:65532" {
			t.Errorf("user %q", cf.Config.User)
		}
		for _, k := range []string{imagebuild.LabelSource, imagebuild.LabelVersion, imagebuild.LabelRevision} {
			if cf.Config.Labels[k] == "" {
				t.Errorf("label %s missing", k)
			}
		}
		files := imageFiles(t, img)
		for _, must := range []string{"etc/passwd", "etc/ssl/certs/ca-certificates.crt", "usr/local/bin/" + name} {
			if _, ok := files[must]; !ok {
				t.Errorf("%s lacks %s", d.Platform.Architecture, must)
			}
		}
		for _, mustNot := range []string{"bin/sh", "usr/bin/sh", "bin/bash"} {
			if _, ok := files[mustNot]; ok {
				t.Errorf("%s carries a shell: %s", d.Platform.Architecture, mustNot)
			}
		}
		if !strings.Contains(string(files["etc/passwd"]), ":65532:65532:") {
			t.Errorf("passwd lacks the non-root user:\n%s", files["etc/passwd"])
		}
	}
	if strings.Join(archs, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("platforms %v", archs)
	}
}

// imageFiles reads every regular file of img's layers (later layers win).
func imageFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				files[h.Name] = b
			}
		}
		rc.Close()
	}
	return files
}

// The scheduler image's binary, unpacked from the layout, becomes ready
// against an embedded NATS.
func TestSchedulerImageRunsReady(t *testing.T) {
	needGo(t)
	idx, err := imagebuild.Build(t.Context(), imagebuild.Binary{Name: "scheduler", Package: "./services/scheduler/cmd/scheduler"},
		imagebuild.Options{Dir: root, Platforms: []v1.Platform{{OS: "linux", Architecture: runtime.GOARCH}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	if err := imagebuild.WriteLayout(dir, idx); err != nil {
		t.Fatal(err)
	}
	img, err := readIndex(t, dir).Image(mustFirst(t, readIndex(t, dir)))
	if err != nil {
		t.Fatal(err)
	}
	rootfs := t.TempDir()
	for name, b := range imageFiles(t, img) {
		p := filepath.Join(rootfs, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	srv := natstest.Start(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(rootfs, "usr/local/bin/scheduler"), "--nats-url", srv.URL(), "--health-addr", addr)
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	natstest.WaitFor(t, 30*time.Second, "/readyz 200 from the image's scheduler", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func mustFirst(t *testing.T, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) == 0 {
		t.Fatalf("index: %v", err)
	}
	return im.Manifests[0].Digest
}
