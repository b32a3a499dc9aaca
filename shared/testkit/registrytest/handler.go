package registrytest

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// wrap puts basic auth (if configured) and blob accounting in front of the
// registry handler; go-containerregistry's registry has neither.
func (r *Registry) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.user != "" && !r.authorized(req) {
			w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
			return
		}
		if req.Method == http.MethodGet {
			if d, ok := blobDigest(req.URL.Path); ok {
				r.record(&r.gets, d)
			}
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, req)
		// An upload is complete when the client sends the final PUT (or a
		// monolithic POST) carrying the digest and the registry accepts it.
		if d := req.URL.Query().Get("digest"); d != "" && sw.status == http.StatusCreated &&
			(req.Method == http.MethodPut || req.Method == http.MethodPost) &&
			strings.Contains(req.URL.Path, "/blobs/uploads/") {
			r.record(&r.uploads, d)
		}
	})
}

func (r *Registry) authorized(req *http.Request) bool {
	user, pass, ok := req.BasicAuth()
	return ok &&
		subtle.ConstantTimeCompare([]byte(user), []byte(r.user)) == 1 &&
		subtle.ConstantTimeCompare([]byte(pass), []byte(r.password)) == 1
}

func (r *Registry) record(list *[]string, digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*list = append(*list, digest)
}

// blobDigest returns the digest of a /v2/<name>/blobs/<digest> path.
func blobDigest(path string) (string, bool) {
	i := strings.LastIndex(path, "/blobs/")
	if !strings.HasPrefix(path, "/v2/") || i < 0 {
		return "", false
	}
	d := path[i+len("/blobs/"):]
	if !strings.HasPrefix(d, "sha256:") {
		return "", false
	}
	return d, true
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}
