package ibuctl

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/google/go-containerregistry/pkg/registry"
)

// localRegistry serves the OCI distribution protocol in-process on loopback
// (go-containerregistry's registry), behind HTTP basic auth, so the demo
// pushes and pulls through the same code a real registry would see.
type localRegistry struct {
	srv        *httptest.Server
	user, pass string
}

func startRegistry(user, pass string) *localRegistry {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r := &localRegistry{user: user, pass: pass}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != r.user || p != r.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="ibu-demo"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, req)
	}))
	return r
}

func (r *localRegistry) host() string { return r.srv.Listener.Addr().String() }
func (r *localRegistry) close()       { r.srv.Close() }
