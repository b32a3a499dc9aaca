package imagebuild

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// OCI label keys the images carry.
const (
	LabelSource   = "org.opencontainers.image.source"
	LabelVersion  = "org.opencontainers.image.version"
	LabelRevision = "org.opencontainers.image.revision"
	LabelTitle    = "org.opencontainers.image.title"
)

// DefaultPlatforms are the platforms of every image.
var DefaultPlatforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// Binary is one image to build: a main package and the name of its binary
// (and image).
type Binary struct {
	Name    string // e.g. scheduler, ibu-agent
	Package string // Go package path or ./dir, built from Options.Dir
}

// Options are what every image of one build shares.
type Options struct {
	// Dir is where `go build` runs (the workspace root).
	Dir       string
	Platforms []v1.Platform // default DefaultPlatforms
	// Epoch is every time stamp in the images (SOURCE_DATE_EPOCH); zero
	// means the Unix epoch.
	Epoch    time.Time
	Source   string // org.opencontainers.image.source
	Version  string // org.opencontainers.image.version
	Revision string // org.opencontainers.image.revision (the commit)
	// CABundle is the CA certificates file (default DefaultCACertificates).
	CABundle string
	// Go is the go command (default "go").
	Go string
	// Log receives one line per binary built (nil: none).
	Log io.Writer
}

// Build compiles b for every platform and returns its image index.
func Build(ctx context.Context, b Binary, o Options) (v1.ImageIndex, error) {
	if len(o.Platforms) == 0 {
		o.Platforms = DefaultPlatforms
	}
	ca, err := readCABundle(o.CABundle)
	if err != nil {
		return nil, err
	}
	epoch := o.Epoch
	if epoch.IsZero() {
		epoch = time.Unix(0, 0)
	}
	epoch = epoch.UTC().Truncate(time.Second)
	baseTar, err := tarFiles(baseFiles(ca), epoch)
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	base, err := layer(baseTar)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		bin, err := goBuild(ctx, b, p, o)
		if err != nil {
			return nil, err
		}
		appTar, err := tarFiles([]file{
			{name: "usr", dir: true, mode: 0o755},
			{name: "usr/local", dir: true, mode: 0o755},
			{name: "usr/local/bin", dir: true, mode: 0o755},
			{name: "usr/local/bin/" + b.Name, mode: 0o755, data: bin},
		}, epoch)
		if err != nil {
			return nil, err
		}
		app, err := layer(appTar)
		if err != nil {
			return nil, err
		}
		img, err := image(b, p, o, epoch, base, app)
		if err != nil {
			return nil, fmt.Errorf("image %s for %s/%s: %w", b.Name, p.OS, p.Architecture, err)
		}
		plat := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &plat}})
	}
	return idx, nil
}

// layer gzips a tar deterministically (no name or time in the gzip
// header) as an OCI layer.
func layer(tarBytes []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression))
}

func image(b Binary, p v1.Platform, o Options, epoch time.Time, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	created := v1.Time{Time: epoch}
	for i, l := range layers {
		what := "base: CA certificates, passwd with nonroot 65532"
		if i == 1 {
			what = "binary " + b.Name
		}
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{Created: created, CreatedBy: "ibu imagebuild: " + what}})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = created
	cf.Author = ""
	cf.Config.User = fmt.Sprintf("%d:%d", NonRootUID, NonRootUID)
	cf.Config.WorkingDir = "/home/nonroot"
	cf.Config.Entrypoint = []string{"/usr/local/bin/" + b.Name}
	cf.Config.Env = []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cf.Config.Labels = map[string]string{LabelTitle: b.Name}
	for k, v := range map[string]string{LabelSource: o.Source, LabelVersion: o.Version, LabelRevision: o.Revision} {
		if v != "" {
			cf.Config.Labels[k] = v
		}
	}
	return mutate.ConfigFile(img, cf)
}

// goBuild compiles a static binary for p, reproducibly.
func goBuild(ctx context.Context, b Binary, p v1.Platform, o Options) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "ibu-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, b.Name)
	goCmd := o.Go
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -buildid=", "-o", out, b.Package)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOFLAGS=-buildvcs=false")
	if p.Variant != "" && p.Architecture == "arm" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		if _, lerr := exec.LookPath(goCmd); lerr != nil {
			return nil, fmt.Errorf("build %s: the go command is missing (%v): install Go 1.26", b.Name, lerr)
		}
		return nil, fmt.Errorf("go build %s for %s/%s: %w\n%s", b.Package, p.OS, p.Architecture, err, msg)
	}
	if o.Log != nil {
		fmt.Fprintf(o.Log, "built %s for %s/%s\n", b.Name, p.OS, p.Architecture)
	}
	return os.ReadFile(out)
}
