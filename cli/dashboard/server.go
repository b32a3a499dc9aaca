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

	"ibu.dev/shared/buckets"
	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
	"ibu.dev/shared/store"
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

	status *store.Bucket[state.Status]

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
	plans, err := store.Open(ctx, s.js, buckets.Plans)
	if err != nil {
		return err
	}
	clusters, err := store.Open(ctx, s.js, buckets.Clusters)
	if err != nil {
		return err
	}
	if s.status, err = store.Open(ctx, s.js, buckets.Status); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	caches := store.NewSet()
	defer func() {
		cancel()
		caches.Wait()
	}()
	if _, err := store.Follow(ctx, caches, plans, store.CacheOptions[state.Plan]{OnEvent: s.applyPlan}); err != nil {
		return err
	}
	if _, err := store.Follow(ctx, caches, clusters, store.CacheOptions[state.Cluster]{OnEvent: s.applyCluster}); err != nil {
		return err
	}
	if _, err := store.Follow(ctx, caches, s.status, store.CacheOptions[state.Status]{OnEvent: s.applyStatus}); err != nil {
		return err
	}
	if err := caches.WaitForSync(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
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
		case err := <-caches.Lost():
			s.closeClients()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("the dashboard would go stale: %w", err)
		case <-t.C:
			s.flush()
		}
	}
}

func (s *Server) applyPlan(e store.Event[state.Plan]) {
	if e.Op != store.Put {
		return
	}
	if e.Err != nil {
		s.log.Warn("unreadable plan record", "plan", e.Key, "error", e.Err)
		return
	}
	s.mu.Lock()
	s.m.putPlan(e.Value)
	s.mu.Unlock()
}

func (s *Server) applyCluster(e store.Event[state.Cluster]) {
	if e.Op == store.Synced {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Op != store.Put {
		delete(s.m.clusters, e.Key)
		s.m.refresh(e.Key)
		return
	}
	if e.Err != nil {
		s.log.Warn("unreadable cluster record", "cluster", e.Key, "error", e.Err)
		return
	}
	c := e.Value
	c.ClusterID = e.Key
	s.m.putCluster(c)
}

func (s *Server) applyStatus(e store.Event[state.Status]) {
	if e.Op == store.Synced {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Op != store.Put {
		s.m.delete(e.Key)
		return
	}
	if e.Err != nil {
		s.log.Warn("unreadable status", "cluster", e.Key, "error", e.Err)
		return
	}
	st := e.Value
	st.ClusterID = e.Key
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
	st, _, err := s.status.Get(r.Context(), id)
	switch {
	case err == nil:
		if st.ClusterID == "" {
			st.ClusterID = id
		}
		v.Status = st
	case errors.Is(err, store.ErrNotFound):
	case errors.Is(err, store.ErrDecode):
		http.Error(w, fmt.Sprintf("status of %s: %v", id, err), http.StatusBadGateway)
		return
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
