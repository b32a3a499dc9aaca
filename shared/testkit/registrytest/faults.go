package registrytest

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Traffic shaping and fault injection for precache tests: a per-request
// (hence per-connection) byte rate on blob downloads, injected error
// statuses, and counters of what the registry served.

// WithBlobRate throttles every blob download to bytesPerSec, the way a
// registry or WAN link with a per-connection limit behaves.
func WithBlobRate(bytesPerSec int64) Option {
	return func(r *Registry) { r.faults().rate = bytesPerSec }
}

// WithInFlightPaths counts only blob downloads whose path contains
// pathContains in BlobStats' InFlight and PeakInFlight (e.g. one
// repository's, leaving out a seed the same test pulls from another).
func WithInFlightPaths(pathContains string) Option {
	return func(r *Registry) { r.faults().inFlightPaths = pathContains }
}

type faults struct {
	rate          int64
	inFlightPaths string

	mu       sync.Mutex
	failures []*failure
	inFlight int
	peak     int
	served   int64
	getsBy   map[string]int
	log      []Request
}

// Request is one request the registry answered.
type Request struct {
	Time   time.Time
	Method string
	Path   string
	Status int // the injected status, or 0 when the registry handled it
}

// Requests returns every request so far whose path contains pathContains
// ("" for all), in arrival order.
func (r *Registry) Requests(pathContains string) []Request {
	f := r.faults()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Request
	for _, q := range f.log {
		if strings.Contains(q.Path, pathContains) {
			out = append(out, q)
		}
	}
	return out
}

type failure struct {
	pathContains string
	status       int
	left         int
}

func (r *Registry) faults() *faults {
	if r.f == nil {
		r.f = &faults{getsBy: map[string]int{}}
	}
	return r.f
}

// FailNext makes the next n requests whose path contains pathContains
// (e.g. a digest, or "/manifests/") answer status with an error body.
func (r *Registry) FailNext(pathContains string, n, status int) {
	f := r.faults()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, &failure{pathContains: pathContains, status: status, left: n})
}

// BlobStats is what the registry served as blob downloads.
type BlobStats struct {
	BytesServed  int64 // body bytes of blob GETs
	PeakInFlight int   // most blob GETs in progress at once
	InFlight     int
}

// BlobStats returns the download counters.
func (r *Registry) BlobStats() BlobStats {
	f := r.faults()
	f.mu.Lock()
	defer f.mu.Unlock()
	return BlobStats{BytesServed: f.served, PeakInFlight: f.peak, InFlight: f.inFlight}
}

// BlobGetCount is how many times the blob with digest was downloaded.
func (r *Registry) BlobGetCount(digest string) int {
	n := 0
	for _, d := range r.BlobGets() {
		if d == digest {
			n++
		}
	}
	return n
}

// ResetStats zeroes BlobStats' counters (not the injected failures).
func (r *Registry) ResetStats() {
	f := r.faults()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served, f.peak, f.log = 0, f.inFlight, nil
}

// shape wraps next with the injected failures, the throttle and counters.
func (f *faults) shape(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		st := f.injected(req.URL.Path)
		f.mu.Lock()
		f.log = append(f.log, Request{Time: time.Now(), Method: req.Method, Path: req.URL.Path, Status: st})
		f.mu.Unlock()
		if st != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(st)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}`))
			return
		}
		_, isBlob := blobDigest(req.URL.Path)
		if !isBlob || req.Method != http.MethodGet {
			next.ServeHTTP(w, req)
			return
		}
		if !strings.Contains(req.URL.Path, f.inFlightPaths) {
			next.ServeHTTP(&meteredWriter{ResponseWriter: w, f: f, start: time.Now(), end: func() {}, length: -1}, req)
			return
		}
		f.mu.Lock()
		f.inFlight++
		f.peak = max(f.peak, f.inFlight)
		f.mu.Unlock()
		var once sync.Once
		// A download ends as its last bytes are written (the client may
		// start the next one before this handler returns), or with the
		// handler.
		end := func() {
			once.Do(func() {
				f.mu.Lock()
				f.inFlight--
				f.mu.Unlock()
			})
		}
		defer end()
		next.ServeHTTP(&meteredWriter{ResponseWriter: w, f: f, start: time.Now(), end: end, length: -1}, req)
	})
}

func (f *faults) injected(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fl := range f.failures {
		if fl.left > 0 && strings.Contains(path, fl.pathContains) {
			fl.left--
			return fl.status
		}
	}
	return 0
}

// meteredWriter counts body bytes and paces them to the rate.
type meteredWriter struct {
	http.ResponseWriter
	f       *faults
	start   time.Time
	written int64
	length  int64 // Content-Length, -1 until known
	end     func()
}

func (w *meteredWriter) Write(p []byte) (int, error) {
	if w.length < 0 {
		w.length = 0
		if n, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64); err == nil {
			w.length = n
		}
	}
	const chunk = 32 << 10
	total := 0
	for len(p) > 0 {
		n := min(len(p), chunk)
		if w.length > 0 && w.written+int64(n) >= w.length {
			// The download ends before its last bytes go out: the client
			// cannot start its next download (after it has them) before
			// this one stops counting, so the peak never counts one
			// download twice however the goroutines are scheduled.
			w.end()
		}
		m, err := w.ResponseWriter.Write(p[:n])
		total += m
		w.written += int64(m)
		w.f.mu.Lock()
		w.f.served += int64(m)
		w.f.mu.Unlock()
		if err != nil {
			return total, err
		}
		p = p[n:]
		if w.f.rate > 0 {
			// Pace: the bytes written so far may not arrive before
			// written/rate seconds after the start.
			due := w.start.Add(time.Duration(float64(w.written) / float64(w.f.rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				if fl, ok := w.ResponseWriter.(http.Flusher); ok {
					fl.Flush()
				}
				time.Sleep(d)
			}
		}
	}
	return total, nil
}

func (w *meteredWriter) Flush() {
	if fl, ok := w.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}
