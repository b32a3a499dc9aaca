package agentcmd_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"ibu.dev/node-agent/agentcmd"
	"ibu.dev/shared/testkit/natstest"
)

// With --metrics-listen the agent serves its metrics, runtime ones
// included, while it runs.
func TestMetricsListen(t *testing.T) {
	srv := natstest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- agentcmd.Run(ctx, []string{
			"--cluster-id", "sno-m", "--backend", "sim", "--version", "4.16.3", "--sim-dir", t.TempDir(),
			"--log-format", "text", "--metrics-listen", addr,
		}, envOf(map[string]string{"NATS_URL": srv.URL(), "OTEL_TRACES_EXPORTER": "none"}), &stdout, &stderr)
	}()
	var page string
	natstest.WaitFor(t, 30*time.Second, "metrics served", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		page = string(b)
		return strings.Contains(page, `ibu_nats_reconnects_total{connection="ibu-agent/sno-m"} 0`)
	})
	if !strings.Contains(page, "go_goroutines") {
		t.Errorf("no runtime metrics:\n%.400s", page)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of the cancel")
	}
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("metrics still served after the agent stopped")
	}
}
