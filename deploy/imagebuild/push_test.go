package imagebuild_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"ibu.dev/deploy/imagebuild"
	"ibu.dev/shared/testkit/registrytest"
)

// Push sends the index to a registry that requires credentials, read from
// a docker config; what the registry holds has the built digest.
func TestPushWithDockerConfigCredentials(t *testing.T) {
	needGo(t)
	reg := registrytest.Start(t, registrytest.WithBasicAuth("ibu", "s3cret"))
	auth, err := os.ReadFile(reg.AuthFile(t))
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), auth, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfgDir)

	idx, err := imagebuild.Build(t.Context(), imagebuild.Binary{Name: "scheduler", Package: "./services/scheduler/cmd/scheduler"},
		imagebuild.Options{Dir: root, Platforms: []v1.Platform{{OS: "linux", Architecture: runtime.GOARCH}}})
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Ref("ibu/scheduler:test")
	if err := imagebuild.Push(ref, idx, true); err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Index(r, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := idx.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("registry holds %s, built %s", d, want)
	}
}
