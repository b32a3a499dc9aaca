package natstest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/natsauth"
	"ibu.dev/shared/natsembed"
)

// AuthHub is an embedded server in NATS's JWT (operator) mode, as a real
// hub runs: every client needs credentials issued from Trust.
type AuthHub struct {
	*natsembed.Server
	Trust *natsauth.Trust
	// JS is a hub service's connection, with the topology ensured.
	JS jetstream.JetStream
	// CAFile is the TLS CA clients need (StartTLSAuthHub), "" without TLS.
	CAFile string
}

// StartAuthHub starts a server that trusts a new natsauth.Trust, connects
// as a hub service and ensures ibu's streams and buckets.
func StartAuthHub(t testing.TB) *AuthHub { return startAuthHub(t, nil) }

// StartTLSAuthHub is StartAuthHub on a server that requires TLS (see TLS);
// CAFile is the CA clients need.
func StartTLSAuthHub(t testing.TB) *AuthHub {
	t.Helper()
	configure, ca := TLS(t)
	h := startAuthHub(t, configure, nats.RootCAs(ca))
	h.CAFile = ca
	return h
}

func startAuthHub(t testing.TB, configure func(*server.Options), opts ...nats.Option) *AuthHub {
	t.Helper()
	trust, err := natsauth.NewTrust("ibu-test")
	if err != nil {
		t.Fatal(err)
	}
	resolverDir := t.TempDir()
	var cfgErr error
	srv := Start(t, func(c *natsembed.Config) {
		c.Configure = func(o *server.Options) {
			cfgErr = trust.Configure(o, resolverDir)
			if configure != nil {
				configure(o)
			}
		}
	})
	if cfgErr != nil {
		t.Fatalf("trust the operator: %v", cfgErr)
	}
	h := &AuthHub{Server: srv, Trust: trust}
	_, h.JS = Connect(t, srv.URL(), append(opts, nats.UserCredentials(h.Creds(t, natsauth.ServiceUser("test-hub", 0))))...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := bus.EnsureTopology(ctx, h.JS); err != nil {
		t.Fatalf("ensure topology as a hub service: %v", err)
	}
	return h
}

// Creds issues credentials for u and returns the path of its .creds file.
func (h *AuthHub) Creds(t testing.TB, u natsauth.User) string {
	t.Helper()
	b, err := h.Trust.Issue(u)
	if err != nil {
		t.Fatalf("issue credentials for %s: %v", u.Name, err)
	}
	p := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// SpokeCreds issues a cluster's credentials (see natsauth.SpokeUser).
func (h *AuthHub) SpokeCreds(t testing.TB, cluster string) string {
	t.Helper()
	u, err := natsauth.SpokeUser(cluster, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return h.Creds(t, u)
}
