// Package registrytest runs a real OCI registry (go-containerregistry's
// in-memory pkg/registry) on a loopback port for tests, optionally behind
// basic auth, and records which blobs clients upload and download so a test
// can assert what crossed the wire.
package registrytest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Registry is a running test registry. Its methods are safe for concurrent use.
type Registry struct {
	// Host is "127.0.0.1:port"; go-containerregistry talks plain HTTP to it
	// because it is a loopback address.
	Host string

	user, password string

	f *faults // traffic shaping and fault injection (faults.go)

	mu      sync.Mutex
	uploads []string // digests of completed blob uploads, in order
	gets    []string // digests of blob GETs, in order
}

// Option configures Start.
type Option func(*Registry)

// WithBasicAuth makes the registry answer 401 with a Basic challenge to any
// request that does not carry these credentials.
func WithBasicAuth(user, password string) Option {
	return func(r *Registry) { r.user, r.password = user, password }
}

// Start runs a registry until the test ends.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	r := &Registry{}
	for _, o := range opts {
		o(r)
	}
	// registry.Logger(nil) panics, so discard explicitly.
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(r.faults().shape(r.wrap(reg)))
	t.Cleanup(srv.Close)
	r.Host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// Ref returns a reference to repo (e.g. "seeds/sno:4.16.3") in this registry.
func (r *Registry) Ref(repo string) string { return r.Host + "/" + repo }

// AuthFile writes a docker config.json holding this registry's credentials
// (no entries when it has no auth) and returns its path.
func (r *Registry) AuthFile(t testing.TB) string {
	t.Helper()
	return WriteAuthFile(t, r.Host, r.user, r.password)
}

// WriteAuthFile writes a docker config.json with one basic-auth entry for
// host (none if user is empty) and returns its path.
func WriteAuthFile(t testing.TB, host, user, password string) string {
	t.Helper()
	type entry struct {
		Auth string `json:"auth"`
	}
	cfg := struct {
		Auths map[string]entry `json:"auths"`
	}{Auths: map[string]entry{}}
	if user != "" {
		cfg.Auths[host] = entry{Auth: base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("registrytest: marshal auth file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatalf("registrytest: write auth file: %v", err)
	}
	return path
}

// Uploads returns the digests of the blobs uploaded so far (layers and
// configs; blobs a client found already present are not uploaded).
func (r *Registry) Uploads() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.uploads...)
}

// BlobGets returns the digests of the blobs downloaded so far.
func (r *Registry) BlobGets() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.gets...)
}

// Reset forgets the recorded uploads and downloads.
func (r *Registry) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.uploads, r.gets = nil, nil
}
