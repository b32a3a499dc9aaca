package observability

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/cli/dashboard"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/testkit/natstest"
)

// BenchmarkDashboard measures the dashboard's server with a simulated
// fleet in the KV (IBU_BENCH_DASHBOARD_CLUSTERS, default 10,000): the time
// from a browser's connect to its first full render (the whole snapshot
// received and decoded, then in Chromium), and, while 1,000 clusters change
// stage and step three times each, the bytes sent per second and against
// the size of the changes: batching sends each cluster's latest row once
// per batch, so the browser gets no more than the changes.
func BenchmarkDashboard(b *testing.B) {
	n := 10000
	if v := os.Getenv("IBU_BENCH_DASHBOARD_CLUSTERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("IBU_BENCH_DASHBOARD_CLUSTERS=%q: want a number >= 1000", v)
		}
	}
	ctx := b.Context()
	_, js := natstest.StartHub(b)
	fill(b, js, n)
	dash := dashboard.New(js, dashboard.Options{Logger: quiet()})
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dash.Run(runCtx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("dashboard: %v", err)
		}
	})
	web := httptest.NewServer(dash)
	b.Cleanup(web.Close)

	var first time.Duration
	var snapBytes int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		s := openStream(b, web.URL)
		name, data := s.next(b)
		var snap dashboard.Snapshot
		if err := json.Unmarshal(data, &snap); err != nil || name != "snapshot" {
			b.Fatalf("first event %q: %v", name, err)
		}
		if len(snap.Clusters) != n {
			b.Fatalf("snapshot holds %d clusters, want %d", len(snap.Clusters), n)
		}
		first += time.Since(start)
		snapBytes = len(data)
		s.close()
	}
	b.StopTimer()
	first /= time.Duration(b.N)

	// The same in a real browser: from navigation to the list showing the
	// whole fleet; it stays connected while the clusters change.
	browser, stopBrowser := newBrowser(b)
	defer stopBrowser()
	if err := chromedp.Do(browser, chromedp.Navigate("about:blank")); err != nil {
		b.Fatalf("start chromium: %v", err)
	}
	bstart := time.Now()
	if err := chromedp.Do(browser, chromedp.Navigate(web.URL+"/")); err != nil {
		b.Fatal(err)
	}
	if _, err := chromedp.Run(browser, chromedp.Poll[bool](fmt.Sprintf(`(document.querySelector('#range')?.textContent || '').endsWith('of %d')`, n),
		chromedp.WithPollingInterval(10*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		b.Fatalf("browser render of %d clusters: %v", n, err)
	}
	browserFirst := time.Since(bstart)

	// 1,000 clusters change stage: Prep completed -> Upgrade in progress
	// (three step changes) as fast as the hub takes them.
	s := openStream(b, web.URL)
	defer s.close()
	if name, _ := s.next(b); name != "snapshot" {
		b.Fatalf("first event %q", name)
	}
	const changed = 1000
	steps := []string{"Backup", "ExportIdentity", "Pivot"}
	start := time.Now()
	changeBytes := 0 // the rows of every change, as if each were sent
	for _, step := range steps {
		for i := range changed {
			st := status(i, stages.Upgrade, stages.InProgress)
			st.Step = step
			row, _ := json.Marshal(dashboardRow(st))
			changeBytes += len(row)
			putStatus(b, js, st)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		b.Fatal("status writes not acknowledged within 30s")
	}
	wrote := time.Since(start)
	browserDone := make(chan time.Duration, 1)
	go func() {
		_, err := chromedp.Run(browser, chromedp.Poll[bool](fmt.Sprintf(`document.querySelector('#counts a[data-stage="Upgrade"][data-state="InProgress"]')?.textContent === '%d'`, changed),
			chromedp.WithPollingInterval(10*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second)))
		if err != nil {
			b.Errorf("browser: the changes did not show: %v", err)
		}
		browserDone <- time.Since(start)
	}()
	seen := map[string]string{}
	sent, rows, batches := 0, 0, 0
	for len(seen) < changed || !allAt(seen, steps[len(steps)-1]) {
		name, data := s.next(b)
		if name != "delta" {
			continue
		}
		var d dashboard.Delta
		if err := json.Unmarshal(data, &d); err != nil {
			b.Fatal(err)
		}
		batches++
		sent += len(data)
		rows += len(d.Clusters)
		for _, r := range d.Clusters {
			seen[r.ID] = r.Step
		}
	}
	el := time.Since(start)
	browserShown := <-browserDone
	b.ReportMetric(float64(first.Milliseconds()), "first-render-ms")
	b.ReportMetric(float64(browserFirst.Milliseconds()), "browser-first-render-ms")
	b.ReportMetric(float64(sent)/el.Seconds(), "update-bytes/s")
	b.ReportMetric(float64(rows)/float64(changed*len(steps)), "rows-sent/row-changes")
	b.ReportMetric(float64(sent)/float64(changeBytes), "bytes-sent/bytes-changed")
	fmt.Printf("dashboard, %d clusters: first full render %s on the server side (snapshot %d bytes), %s in Chromium; "+
		"%d clusters x %d stage/step changes written in %s, all received after %s (shown in Chromium after %s): "+
		"%d bytes in %d batches (%.0f bytes/s), %d rows sent for %d row changes (%.2f), "+
		"%.2f bytes sent per byte of the changes\n",
		n, first.Round(time.Millisecond), snapBytes, browserFirst.Round(time.Millisecond), changed, len(steps),
		wrote.Round(time.Millisecond), el.Round(time.Millisecond), browserShown.Round(time.Millisecond),
		sent, batches, float64(sent)/el.Seconds(), rows, changed*len(steps), float64(rows)/float64(changed*len(steps)),
		float64(sent)/float64(changeBytes))
	_ = ctx
}

func allAt(seen map[string]string, step string) bool {
	for _, s := range seen {
		if s != step {
			return false
		}
	}
	return true
}

// dashboardRow is the row the dashboard sends for st.
func dashboardRow(st state.Status) dashboard.Row {
	return dashboard.Row{ID: st.ClusterID, Plan: st.PlanID, Stage: st.Stage, State: st.State, Step: st.Step,
		Labels: map[string]string{"site": site(st.ClusterID)}, Version: "4.14.38", Updated: st.UpdatedAt.UnixMilli()}
}

func site(id string) string { return "site-" + id[len(id)-2:] }

func status(i int, stage stages.Stage, st stages.State) state.Status {
	id := fmt.Sprintf("c%05d", i)
	return state.Status{ClusterID: id, Position: stages.Position{Stage: stage, State: st}, PlanID: "bench",
		ObservedGeneration: 1, UpdatedAt: time.Now().UTC(), ValidNextStages: []stages.Stage{stages.Idle}}
}

func putStatus(b *testing.B, js jetstream.JetStream, st state.Status) {
	raw, err := json.Marshal(st)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := js.PublishAsync("$KV."+bus.BucketStatus+"."+st.ClusterID, raw); err != nil {
		b.Fatal(err)
	}
}

// fill writes n cluster records and statuses (Prep completed) and a plan.
func fill(b *testing.B, js jetstream.JetStream, n int) {
	b.Helper()
	for i := range n {
		st := status(i, stages.Prep, stages.Completed)
		cl := state.Cluster{ClusterRegistered: events.ClusterRegistered{ClusterID: st.ClusterID, Version: "4.14.38",
			Labels: map[string]string{"site": site(st.ClusterID)}}}
		raw, _ := json.Marshal(cl)
		if _, err := js.PublishAsync("$KV."+bus.BucketClusters+"."+st.ClusterID, raw); err != nil {
			b.Fatal(err)
		}
		putStatus(b, js, st)
	}
	p := state.Plan{Spec: events.PlanCreateRequested{PlanID: "bench", Steps: []events.PlanStep{{Actions: []stages.Action{stages.ActionPrep}}}},
		Phase: events.PlanRunning, Counts: events.PlanCounts{Total: n, Succeeded: n}}
	raw, _ := json.Marshal(p)
	if _, err := js.PublishAsync("$KV."+bus.BucketPlans+".bench", raw); err != nil {
		b.Fatal(err)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		b.Fatal("fleet not written within 60s")
	}
}

// newBrowser starts a headless Chromium tab for a benchmark.
func newBrowser(b *testing.B) (context.Context, context.CancelFunc) {
	b.Helper()
	exe := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		b.Fatal("no chromium in PATH: install it with `apt-get install -y chromium`")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	return bctx, func() { bcancel(); acancel() }
}

// stream reads server-sent events.
type stream struct {
	resp *http.Response
	r    *bufio.Reader
}

func openStream(b *testing.B, base string) *stream {
	b.Helper()
	resp, err := http.Get(base + "/api/events")
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET /api/events: %s", resp.Status)
	}
	return &stream{resp: resp, r: bufio.NewReaderSize(resp.Body, 1<<20)}
}

func (s *stream) close() { _ = s.resp.Body.Close() }

// next returns the next event's name and data.
func (s *stream) next(b *testing.B) (string, []byte) {
	b.Helper()
	var name string
	var data []byte
	for {
		line, err := s.r.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			b.Fatal("event stream ended")
		} else if err != nil && err != io.EOF {
			b.Fatal(err)
		}
		l := strings.TrimRight(string(line), "\n")
		switch {
		case l == "" && name != "":
			return name, data
		case strings.HasPrefix(l, "event: "):
			name = strings.TrimPrefix(l, "event: ")
		case strings.HasPrefix(l, "data: "):
			data = []byte(strings.TrimPrefix(l, "data: "))
		}
	}
}
