package observability

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color/palette"
	"image/draw"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"ibu.dev/cli/dashboard"
	"ibu.dev/node-agent/agent/simspoke"
	"ibu.dev/node-agent/host"
)

// smallPNG re-encodes a screenshot with the Plan 9 palette, a quarter of
// the size, for the README.
func smallPNG(b []byte) ([]byte, error) {
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode screenshot: %w", err)
	}
	p := image.NewPaletted(img.Bounds(), palette.Plan9)
	draw.Draw(p, p.Bounds(), img, img.Bounds().Min, draw.Src)
	var out bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&out, p); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// chromium finds Debian's chromium; the test fails, never skips, without
// it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium in PATH: install it with `apt-get install -y chromium` (.ci/run does)")
	return ""
}

// TestDashboardInBrowser drives a headless Chromium against the dashboard
// of a running simulated fleet with two plans, one of which fails on an
// image pull: the page loads, a plan reaches 100 %, the failed cluster
// shows its reason, a cluster's timeline renders. The screenshot is saved in the
// test's artifact directory (go test -artifacts keeps it), and to
// $IBU_DASHBOARD_SCREENSHOT when set (how docs/dashboard.png is made).
func TestDashboardInBrowser(t *testing.T) {
	exe := chromium(t)
	f := newFleet(t, fleetConfig{n: 3, prepare: func(fl *fleet, id string, s *simspoke.Spoke) {
		if id == "sno-002" {
			s.Images.FailPull(fl.images[2], fmt.Errorf("simulated registry error: manifest unknown: %w", host.ErrImageNotFound))
		}
	}})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dash := dashboard.New(f.js, dashboard.Options{Batch: 100 * time.Millisecond, Logger: quiet()})
	runDone := make(chan error, 1)
	go func() { runDone <- dash.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("dashboard: %v", err)
		}
	})
	web := httptest.NewServer(dash)
	t.Cleanup(web.Close)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	bctx, tcancel := context.WithTimeout(bctx, 90*time.Second)
	defer tcancel()

	if err := chromedp.Do(bctx,
		chromedp.EmulateViewport(1280, 1000),
		chromedp.Navigate(web.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#clusters tbody tr")),
	); err != nil {
		t.Fatalf("load the dashboard: %v", err)
	}
	rows, err := chromedp.Run(bctx, chromedp.Evaluate[int]("document.querySelectorAll('#clusters tbody tr').length"))
	if err != nil || rows != 3 {
		t.Fatalf("cluster rows = %d (%v), want 3", rows, err)
	}

	// Two plans: one that completes, one whose only cluster fails.
	const plan, failing = "rollout-east", "rollout-west"
	f.request(plan, nil, "sno-001", "sno-003")
	f.request(failing, nil, "sno-002")
	poll := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			page, _ := chromedp.Run(context.WithoutCancel(bctx), chromedp.Evaluate[string]("document.querySelector('main').innerText"))
			t.Fatalf("%s: %v\npage:\n%s", what, err, page)
		}
	}
	poll("the plan reaches 100 %", fmt.Sprintf(`(() => {
		const p = document.querySelector('.plan[data-plan="%s"]');
		return !!p && p.dataset.phase === "Completed" && p.querySelector(".total-pct").textContent === "100%%" &&
			[...p.querySelectorAll(".step .pct")].every(s => s.textContent === "100%%");
	})()`, plan))
	poll("the failing plan ends Failed", fmt.Sprintf(`document.querySelector('.plan[data-plan="%s"]')?.dataset.phase === "Failed"`, failing))
	poll("the failed cluster shows its reason", `[...document.querySelectorAll('#failures li')].some(li =>
		li.textContent.includes('sno-002') && li.textContent.includes('simulated registry error'))`)
	poll("the failed cluster's row shows its reason", `(() => {
		const r = document.querySelector('#clusters tr[data-id="sno-002"] .reason');
		return !!r && r.textContent.includes('simulated registry error');
	})()`)

	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#clusters tr[data-id="sno-001"]`))); err != nil {
		t.Fatal(err)
	}
	poll("the cluster timeline renders", `document.querySelectorAll('#timeline .tl-bar').length >= 5 &&
		[...document.querySelectorAll('#timeline .tl-label')].some(l => l.textContent.startsWith('Upgrade'))`)
	trace, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#d-trace")))
	if err != nil {
		t.Fatal(err)
	}
	if want := dashboard.TraceID(plan, "sno-001"); trace != want {
		t.Errorf("trace id shown %q, want %q", trace, want)
	}

	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	out := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(shot))
	if p := os.Getenv("IBU_DASHBOARD_SCREENSHOT"); p != "" {
		small, err := smallPNG(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, small, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
