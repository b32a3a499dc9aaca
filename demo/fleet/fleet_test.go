package fleet

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/node-agent/agent"
	"ibu.dev/shared/natsembed"
	"ibu.dev/shared/seedimage/seedsim"
)

func TestFleetRegistersAndStops(t *testing.T) {
	srv, err := natsembed.StartHub(t.Context(), natsembed.Config{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, js, err := Connect(srv.URL(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	f, err := Start(t.Context(), Config{
		N: 3, Dir: t.TempDir(),
		JS: func(int, string) (jetstream.JetStream, error) { return js, nil },
		Agent: func(int, string) agent.Config {
			return agent.Config{Version: "4.14.38", Fingerprint: seedsim.Fingerprint(), HeartbeatInterval: time.Hour}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.IDs(); len(got) != 3 || got[0] != "sno-001" || f.Spoke("sno-003") == nil {
		t.Fatalf("ids %v", got)
	}
	if err := f.WaitIdle(t.Context(), js, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// An agent stopped mid-publish says so with the cancellation; any
	// other error is a failure.
	if err := f.Stop(20 * time.Second); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("stop: %v", err)
	}
}

func TestExitLost(t *testing.T) {
	boom := errors.New("boom")
	if err := (Exit{ID: "sno-1", Err: boom}).Lost(); !errors.Is(err, boom) || err.Error() != "agent sno-1: boom" {
		t.Errorf("lost with an error: %v", err)
	}
	if err := (Exit{ID: "sno-1"}).Lost(); err == nil || err.Error() != "agent sno-1 stopped on its own" {
		t.Errorf("lost without one: %v", err)
	}
}

func TestRegistryWantsItsCredentials(t *testing.T) {
	r := StartRegistry("ibu", "s3cret")
	defer r.Close()
	for _, c := range []struct {
		rt   http.RoundTripper
		want int
	}{{http.DefaultTransport, http.StatusUnauthorized}, {r.Transport(), http.StatusOK}} {
		resp, err := (&http.Client{Transport: c.rt}).Get("http://" + r.Host() + "/v2/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET /v2/: %d, want %d", resp.StatusCode, c.want)
		}
	}
}
