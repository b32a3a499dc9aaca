package registrytest

import (
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestBasicAuthChallenge(t *testing.T) {
	r := Start(t, WithBasicAuth("u", "p"))
	for _, tc := range []struct {
		user, pass string
		want       int
	}{
		{"", "", http.StatusUnauthorized},
		{"u", "wrong", http.StatusUnauthorized},
		{"u", "p", http.StatusOK},
	} {
		req, err := http.NewRequest(http.MethodGet, "http://"+r.Host+"/v2/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%q/%q: status %d, want %d", tc.user, tc.pass, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != `Basic realm="registrytest"` {
			t.Errorf("challenge %q", resp.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestCountsBlobs(t *testing.T) {
	r := Start(t, WithBasicAuth("u", "p"))
	auth := remote.WithAuth(&authn.Basic{Username: "u", Password: "p"})
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(r.Ref("test/img:1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, auth); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Uploads()); n != 3 {
		t.Errorf("uploads %v, want 2 layers + config", r.Uploads())
	}
	r.Reset()
	if err := remote.Write(ref, img, auth); err != nil {
		t.Fatal(err)
	}
	if n := len(r.Uploads()); n != 0 {
		t.Errorf("second write uploaded %v", r.Uploads())
	}

	got, err := remote.Image(ref, auth)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	d, _ := ls[0].Digest()
	if !slices.Contains(r.BlobGets(), d.String()) {
		t.Errorf("blob gets %v lack %s", r.BlobGets(), d)
	}
}

func TestAuthFile(t *testing.T) {
	r := Start(t, WithBasicAuth("u", "p"))
	b, err := os.ReadFile(r.AuthFile(t))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if a := cfg.Auths[r.Host]; a.Username != "u" || a.Password != "p" {
		t.Errorf("auth file %s", b)
	}
}
