package agent_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"

	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/stages"
)

// A registry that serves a layer whose bytes do not match its digest: Prep
// fails on verification and nothing is deployed.
func TestTamperedSeedLayerFailsPrep(t *testing.T) {
	f := newFixture(t)
	sum, err := seedimage.Inspect(t.Context(), f.seedRef, seedimage.WithAuthFile(f.auth))
	if err != nil {
		t.Fatal(err)
	}
	s, err := seedimage.Pull(t.Context(), sum.Ref, seedimage.WithAuthFile(f.auth))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := s.Layer(seedimage.RoleVar)
	dig, _ := l.Digest()
	target, _ := url.Parse("http://" + f.reg.Host)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method == http.MethodGet && strings.HasSuffix(r.Request.URL.Path, "/blobs/"+dig.String()) {
			b, _ := io.ReadAll(r.Body)
			b[len(b)/2] ^= 0xff
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	f.seedRef = strings.Replace(f.seedRef, f.reg.Host, host, 1)
	f.spoke.Config.SeedOptions = []seedimage.Option{seedimage.WithAuthFile(writeAuth(t, host))}
	f.start()
	st := f.waitPosition(prepFailed, f.desire(stages.Prep))
	if !strings.Contains(st.Message, "PullSeed") {
		t.Errorf("message %q does not name the failed step", st.Message)
	}
	if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot}) {
		t.Fatalf("deployments changed: %v", got)
	}
}

func TestUnreachableRegistryFailsPrep(t *testing.T) {
	f := newFixture(t)
	f.seedRef = "127.0.0.1:1/telco/seed:4.16.9"
	f.start()
	st := f.waitPosition(prepFailed, f.desire(stages.Prep))
	if !strings.Contains(st.Message, "127.0.0.1:1") || !strings.Contains(st.Message, "InspectSeed") {
		t.Errorf("message %q", st.Message)
	}
	if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot}) {
		t.Fatalf("deployments changed: %v", got)
	}
}
