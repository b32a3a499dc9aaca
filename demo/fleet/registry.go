package fleet

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Registry serves the OCI distribution protocol in-process on loopback
// (go-containerregistry's registry), behind HTTP basic auth, so a fleet
// pushes and pulls through the same code a real registry would see.
type Registry struct {
	srv        *httptest.Server
	User, Pass string
}

// StartRegistry starts a registry that admits user with pass. Close stops it.
func StartRegistry(user, pass string) *Registry {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r := &Registry{User: user, Pass: pass}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != r.User || p != r.Pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="ibu-demo"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, req)
	}))
	return r
}

// Host is the registry's host:port.
func (r *Registry) Host() string { return r.srv.Listener.Addr().String() }

// Close stops the registry.
func (r *Registry) Close() { r.srv.Close() }

// Transport adds the registry's credentials to every request (for pushing
// images with a plain HTTP client).
func (r *Registry) Transport() http.RoundTripper { return basicAuth{user: r.User, pass: r.Pass} }

type basicAuth struct{ user, pass string }

func (b basicAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.SetBasicAuth(b.user, b.pass)
	return http.DefaultTransport.RoundTrip(req)
}
