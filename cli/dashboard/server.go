package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
)

//go:embed static
var static embed.FS

// Options tune a Server.
type Options struct {
	// Batch is how often changes are sent to browsers; every change of a
	// cluster within one batch is sent once, as its latest row (default
	// 250ms, so the page lags a change by well under a second).
	Batch time.Duration
	// ClientBuffer is how many batches may wait for a slow browser before
	// it is disconnected (it reconnects and gets a fresh snapshot).
	ClientBuffer int
	Logger       *slog.Logger
}

// Server relays the hub's KV buckets to browsers. It is read-only: it
// only watches and reads.
type Server struct {
	js  jetstream.JetStream
	o   Options
	log *slog.Logger

	status jetstream.KeyValue

	mu      sync.Mutex
	m       *model
	clients map[chan []byte]struct{}
	ready   chan struct{} // closed once the initial values are in
	mux     *http.ServeMux
}

// New returns a server over js; call Run to start following the hub.
func New(js jetstream.JetStream, o Options) *Server {
	if o.Batch <= 0 {
		o.Batch = 250 * time.Millisecond
	}
	if o.ClientBuffer <= 0 {
		o.ClientBuffer = 64
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{js: js, o: o, log: o.Logger, m: newModel(), clients: map[chan []byte]struct{}{}, ready: make(chan struct{})}
	sub, _ := fs.Sub(static, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(sub))
	mux.HandleFunc("GET /api/snapshot", s.handleSnapshot)
	mux.HandleFunc("GET /api/events", s.handleEvents)
	mux.HandleFunc("GET /api/clusters/{id}", s.handleCluster)
	s.mux = mux
	return s
}

// ServeHTTP serves the page and its API; anything but GET and HEAD is
// refused.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the dashboard is read-only", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// Run follows the plans, clusters and status buckets and sends batches to
// the connected browsers until ctx ends (then it returns nil).
func (s *Server) Run(ctx context.Context) error {
	if err := s.run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

func (s *Server) run(ctx context.Context) error {
	var err error
	if s.status, err = s.js.KeyValue(ctx, bus.BucketStatus); err != nil {
		return fmt.Errorf("open %s: %w", bus.BucketStatus, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	synced := make(chan error, 3)
	lost := make(chan error, 3)
	for _, b := range []struct {
		bucket string
		apply  func(jetstream.KeyValueEntry)
	}{{bus.BucketPlans, s.applyPlan}, {bus.BucketClusters, s.applyCluster}, {bus.BucketStatus, s.applyStatus}} {
		kv, err := s.js.KeyValue(ctx, b.bucket)
		if err != nil {
			return fmt.Errorf("open %s: %w", b.bucket, err)
		}
		w, err := kv.WatchAll(ctx)
		if err != nil {
			return fmt.Errorf("watch %s: %w", b.bucket, err)
		}
		wg.Go(func() { s.follow(ctx, w, b.apply, synced, lost) })
	}
	for range 3 {
		select {
		case err := <-synced:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
	s.mu.Lock()
	s.m.takeDelta() // the snapshot carries the initial values
	close(s.ready)
	s.mu.Unlock()
	t := time.NewTicker(s.o.Batch)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.closeClients()
			return nil
		case err := <-lost:
			s.closeClients()
			return err
		case <-t.C:
			s.flush()
		}
	}
}

func (s *Server) follow(ctx context.Context, w jetstream.KeyWatcher, apply func(jetstream.KeyValueEntry), synced, lost chan<- error) {
	defer w.Stop()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				if initial {
					synced <- errors.New("watch closed before its initial values")
				} else if ctx.Err() == nil {
					lost <- errors.New("a KV watch ended: the dashboard would go stale")
				}
				return
			}
			if e == nil {
				if initial {
					initial = false
					synced <- nil
				}
				continue
			}
			apply(e)
		}
	}
}

func (s *Server) applyPlan(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	var p state.Plan
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		s.log.Warn("unreadable plan record", "plan", e.Key(), "error", err)
		return
	}
	s.mu.Lock()
	s.m.putPlan(p)
	s.mu.Unlock()
}

func (s *Server) applyCluster(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(s.m.clusters, e.Key())
		s.m.refresh(e.Key())
		return
	}
	var c state.Cluster
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		s.log.Warn("unreadable cluster record", "cluster", e.Key(), "error", err)
		return
	}
	c.ClusterID = e.Key()
	s.m.putCluster(c)
}

func (s *Server) applyStatus(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		s.m.delete(e.Key())
		return
	}
	var st state.Status
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		s.log.Warn("unreadable status", "cluster", e.Key(), "error", err)
		return
	}
	st.ClusterID = e.Key()
	s.m.putStatus(st)
}

// flush sends what changed since the last batch to every browser; a
// browser that cannot keep up is disconnected.
func (s *Server) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.m.takeDelta()
	if b == nil {
		return
	}
	for c := range s.clients {
		select {
		case c <- b:
		default:
			delete(s.clients, c)
			close(c)
		}
	}
}

func (s *Server) closeClients() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.clients {
		delete(s.clients, c)
		close(c)
	}
}

func (s *Server) waitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	if err := s.waitReady(r.Context()); err != nil {
		http.Error(w, "dashboard not ready", http.StatusServiceUnavailable)
		return
	}
	s.mu.Lock()
	snap := s.m.snapshot()
	s.mu.Unlock()
	writeJSON(w, snap)
}

// handleEvents streams server-sent events: a "snapshot" first, then a
// "delta" per batch with the latest rows of what changed.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	if err := s.waitReady(r.Context()); err != nil {
		http.Error(w, "dashboard not ready", http.StatusServiceUnavailable)
		return
	}
	c := make(chan []byte, s.o.ClientBuffer)
	s.mu.Lock()
	snap, err := json.Marshal(s.m.snapshot())
	s.clients[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if _, ok := s.clients[c]; ok {
			delete(s.clients, c)
			close(c)
		}
		s.mu.Unlock()
	}()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	if err := writeEvent(w, "snapshot", snap); err != nil {
		return
	}
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case b, ok := <-c:
			if !ok {
				return // too slow, or shutting down: the browser reconnects
			}
			if err := writeEvent(w, "delta", b); err != nil {
				return
			}
			fl.Flush()
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

func writeEvent(w http.ResponseWriter, name string, data []byte) error {
	if _, err := fmt.Fprintf(w, "event: %s\ndata: ", name); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	_, err := w.Write([]byte("\n\n"))
	return err
}

// ClusterView is what the cluster view shows.
type ClusterView struct {
	Status  state.Status   `json:"status"`
	Cluster *state.Cluster `json:"cluster,omitempty"`
	TraceID string         `json:"traceId,omitempty"`
	Reason  string         `json:"reason,omitempty"`
}

func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := events.ValidID(id); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.waitReady(r.Context()); err != nil {
		http.Error(w, "dashboard not ready", http.StatusServiceUnavailable)
		return
	}
	v := ClusterView{Status: state.Status{ClusterID: id}}
	e, err := s.status.Get(r.Context(), id)
	switch {
	case err == nil:
		if err := json.Unmarshal(e.Value(), &v.Status); err != nil {
			http.Error(w, fmt.Sprintf("status of %s: %v", id, err), http.StatusBadGateway)
			return
		}
	case errors.Is(err, jetstream.ErrKeyNotFound):
	default:
		http.Error(w, fmt.Sprintf("read status of %s: %v", id, err), http.StatusBadGateway)
		return
	}
	s.mu.Lock()
	v.Cluster = s.m.clusters[id]
	row, known := s.m.rows[id]
	s.mu.Unlock()
	if !known && v.Status.UpdatedAt.IsZero() {
		http.Error(w, "no cluster "+id, http.StatusNotFound)
		return
	}
	v.Reason = row.Reason
	v.TraceID = TraceID(v.Status.PlanID, id)
	writeJSON(w, v)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_ = json.NewEncoder(w).Encode(v)
}

// Serve serves the dashboard on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		s.closeClients() // end the event streams, or Shutdown waits for them
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}
