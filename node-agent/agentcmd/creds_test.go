package agentcmd_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"ibu.dev/node-agent/agentcmd"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/natsauth"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/testkit/natstest"
)

// The agent does its whole job (register, watch, report Idle) with nothing
// but its cluster's own credentials on a hub in JWT mode; with another
// cluster's credentials it says clearly that NATS refused it.
func TestRunWithClusterCredentials(t *testing.T) {
	h := natstest.StartAuthHub(t)
	run := func(ctx context.Context, cluster, creds string, stderr *syncBuffer) chan error {
		done := make(chan error, 1)
		go func() {
			done <- agentcmd.Run(ctx, []string{
				"--cluster-id", cluster, "--backend", "sim", "--version", "4.16.3",
				"--sim-dir", t.TempDir(), "--log-format", "text",
				"--nats-creds", creds, "--nats-inbox-prefix", natsauth.SpokeInboxPrefix(cluster),
			}, envOf(map[string]string{"NATS_URL": h.URL(), "OTEL_TRACES_EXPORTER": "none"}), &syncBuffer{}, stderr)
		}()
		return done
	}

	t.Run("own credentials", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var stderr syncBuffer
		done := run(ctx, "sno-1", h.SpokeCreds(t, "sno-1"), &stderr)
		status, err := h.JS.KeyValue(ctx, bus.BucketStatus)
		if err != nil {
			t.Fatal(err)
		}
		natstest.WaitFor(t, 30*time.Second, "sno-1 Idle in IBU_STATUS", func() bool {
			select {
			case err := <-done:
				t.Fatalf("agent stopped: %v\n%s", err, stderr.String())
			default:
			}
			e, err := status.Get(ctx, "sno-1")
			var st state.Status
			return err == nil && json.Unmarshal(e.Value(), &st) == nil && st.Position == stages.IdlePosition
		})
		if strings.Contains(stderr.String(), "NATS refused") {
			t.Fatalf("a permission was missing:\n%s", stderr.String())
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
	})

	t.Run("another cluster's credentials", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		var stderr syncBuffer
		done := run(ctx, "sno-2", h.SpokeCreds(t, "sno-1"), &stderr)
		natstest.WaitFor(t, 30*time.Second, "a clear permission error in the log", func() bool {
			return strings.Contains(stderr.String(), "NATS refused an operation: the credentials do not allow it") &&
				strings.Contains(stderr.String(), "sno-2")
		})
		cancel()
		<-done
		status, _ := h.JS.KeyValue(t.Context(), bus.BucketStatus)
		if _, err := status.Get(t.Context(), "sno-2"); err == nil {
			t.Fatal("sno-2's status written with sno-1's credentials")
		}
	})
}

// The same over TLS: the agent trusts the hub's CA (--nats-ca); a client
// without it is refused.
func TestRunWithClusterCredentialsOverTLS(t *testing.T) {
	h := natstest.StartTLSAuthHub(t)
	creds := h.SpokeCreds(t, "sno-tls")
	if nc, err := nats.Connect(h.URL(), nats.UserCredentials(creds)); err == nil {
		nc.Close()
		t.Fatal("connected over TLS without the CA")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- agentcmd.Run(ctx, []string{
			"--cluster-id", "sno-tls", "--backend", "sim", "--version", "4.16.3",
			"--sim-dir", t.TempDir(), "--log-format", "text",
			"--nats-creds", creds, "--nats-ca", h.CAFile, "--nats-inbox-prefix", natsauth.SpokeInboxPrefix("sno-tls"),
		}, envOf(map[string]string{"NATS_URL": h.URL(), "OTEL_TRACES_EXPORTER": "none"}), &syncBuffer{}, &stderr)
	}()
	status, err := h.JS.KeyValue(ctx, bus.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 30*time.Second, "sno-tls Idle over TLS", func() bool {
		select {
		case err := <-done:
			t.Fatalf("agent stopped: %v\n%s", err, stderr.String())
		default:
		}
		e, err := status.Get(ctx, "sno-tls")
		var st state.Status
		return err == nil && json.Unmarshal(e.Value(), &st) == nil && st.Position == stages.IdlePosition
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}
