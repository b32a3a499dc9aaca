package ibuctl

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"ibu.dev/cli/dashboard"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/testkit/natstest"
)

func TestDashboardCommand(t *testing.T) {
	h := startTestHub(t)
	h.put(bus.BucketStatus, "sno-1", state.Status{ClusterID: "sno-1", Position: stages.IdlePosition})
	ctx, cancel := context.WithCancel(t.Context())
	var out, errb syncBuffer
	done := make(chan error, 1)
	go func() { done <- Run(ctx, h.io(&out, &errb), []string{"dashboard", "--listen", "127.0.0.1:0"}) }()
	var url string
	natstest.WaitFor(t, 10*time.Second, "the dashboard URL printed", func() bool {
		url = regexp.MustCompile(`http://\S+/`).FindString(out.String())
		return url != ""
	})
	var snap dashboard.Snapshot
	natstest.WaitFor(t, 10*time.Second, "a snapshot with sno-1", func() bool {
		resp, err := http.Get(url + "api/snapshot")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&snap) == nil && len(snap.Clusters) == 1
	})
	if strings.Contains(errb.String(), "warning") {
		t.Errorf("loopback listener warned: %s", errb.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dashboard: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dashboard did not stop within 10s of the cancel")
	}
}

// Beyond loopback the command says so: the page has no login.
func TestDashboardWarnsBeyondLoopback(t *testing.T) {
	h := startTestHub(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan error, 1)
	go func() { done <- Run(ctx, h.io(&out, &errb), []string{"dashboard", "--listen", "0.0.0.0:0"}) }()
	natstest.WaitFor(t, 10*time.Second, "the warning", func() bool {
		return strings.Contains(errb.String(), "beyond this machine")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
