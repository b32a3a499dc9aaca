package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/cli/dashboard"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/testkit/natstest"
)

type hub struct {
	t      *testing.T
	js     jetstream.JetStream
	status jetstream.KeyValue
	plans  jetstream.KeyValue
	url    string
}

func start(t *testing.T, batch time.Duration) *hub {
	t.Helper()
	_, js := natstest.StartHub(t)
	h := &hub{t: t, js: js}
	var err error
	if h.status, err = js.KeyValue(t.Context(), bus.BucketStatus); err != nil {
		t.Fatal(err)
	}
	if h.plans, err = js.KeyValue(t.Context(), bus.BucketPlans); err != nil {
		t.Fatal(err)
	}
	h.putStatus(state.Status{ClusterID: "sno-1", Position: stages.IdlePosition})
	srv := dashboard.New(js, dashboard.Options{Batch: batch, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	web := httptest.NewServer(srv)
	t.Cleanup(func() {
		web.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	h.url = web.URL
	return h
}

func (h *hub) putStatus(st state.Status) {
	h.t.Helper()
	b, _ := json.Marshal(st)
	if _, err := h.status.Put(h.t.Context(), st.ClusterID, b); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hub) get(path string, v any) int {
	h.t.Helper()
	resp, err := http.Get(h.url + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			h.t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestPageAndReadOnly(t *testing.T) {
	h := start(t, 50*time.Millisecond)
	for _, path := range []string{"/", "/app.js", "/app.css"} {
		if code := h.get(path, nil); code != http.StatusOK {
			t.Errorf("GET %s: %d", path, code)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(m, h.url+"/api/snapshot", strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d, want 405", m, resp.StatusCode)
		}
	}
}

func TestClusterView(t *testing.T) {
	h := start(t, 50*time.Millisecond)
	now := time.Now().UTC()
	h.putStatus(state.Status{ClusterID: "sno-2", PlanID: "p1", Position: stages.Position{Stage: stages.Prep, State: stages.Failed},
		Message: "Prep failed: pull x: manifest unknown", UpdatedAt: now,
		History: []stages.StageRecord{{Stage: stages.Prep, Start: now.Add(-time.Second), End: now, State: stages.Failed}}})
	var v dashboard.ClusterView
	natstest.WaitFor(t, 10*time.Second, "cluster view of sno-2", func() bool {
		return h.get("/api/clusters/sno-2", &v) == http.StatusOK && v.Reason != ""
	})
	if v.TraceID != dashboard.TraceID("p1", "sno-2") || len(v.TraceID) != 32 {
		t.Errorf("trace id %q", v.TraceID)
	}
	if v.Reason != "Prep failed: pull x: manifest unknown" || len(v.Status.History) != 1 {
		t.Errorf("view %+v", v)
	}
	if code := h.get("/api/clusters/nope", nil); code != http.StatusNotFound {
		t.Errorf("unknown cluster: %d", code)
	}
	if code := h.get("/api/clusters/Bad%20Id", nil); code != http.StatusBadRequest {
		t.Errorf("invalid id: %d", code)
	}
}

// The event stream starts with a snapshot; a cluster that changes several
// times within one batch arrives once, as its latest row.
func TestEventsAreBatched(t *testing.T) {
	h := start(t, 400*time.Millisecond)
	resp, err := http.Get(h.url + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	name, data := next(t, r)
	var snap dashboard.Snapshot
	if err := json.Unmarshal(data, &snap); err != nil || name != "snapshot" || len(snap.Clusters) != 1 {
		t.Fatalf("first event %s %s (%v)", name, data, err)
	}
	for _, step := range []string{"PullSeed", "ApplyVar", "Precache"} {
		h.putStatus(state.Status{ClusterID: "sno-1", PlanID: "p1", Position: stages.Position{Stage: stages.Prep, State: stages.InProgress}, Step: step})
	}
	p := state.Plan{Spec: events.PlanCreateRequested{PlanID: "p1", Steps: []events.PlanStep{{Actions: []stages.Action{stages.ActionPrep}}}},
		Phase: events.PlanRunning, Clusters: []state.PlanCluster{{ClusterID: "sno-1", State: state.ClusterInProgress}}}
	b, _ := json.Marshal(p)
	if _, err := h.plans.Put(t.Context(), "p1", b); err != nil {
		t.Fatal(err)
	}
	var rows []dashboard.Row
	var plans []dashboard.PlanRow
	for len(rows) == 0 || rows[len(rows)-1].Step != "Precache" || len(plans) == 0 {
		name, data := next(t, r)
		var d dashboard.Delta
		if err := json.Unmarshal(data, &d); err != nil || name != "delta" {
			t.Fatalf("event %s %s (%v)", name, data, err)
		}
		rows = append(rows, d.Clusters...)
		plans = append(plans, d.Plans...)
	}
	if len(rows) > 2 {
		t.Errorf("3 changes within a batch sent %d rows, want the latest once (or twice across a batch boundary)", len(rows))
	}
	if plans[0].ID != "p1" || len(plans[0].Steps) != 1 || plans[0].Steps[0].Actions != "Prep" {
		t.Errorf("plan row %+v", plans[0])
	}
}

func next(t *testing.T, r *bufio.Reader) (string, []byte) {
	t.Helper()
	var name string
	var data []byte
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read event stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && name != "":
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = []byte(line[len("data: "):])
		}
	}
}
