package ibuctl

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"ibu.dev/shared/natsauth"
	"ibu.dev/shared/natsembed"
	"ibu.dev/shared/testkit/natstest"
)

// init, issue a cluster's credentials, connect with them to a server that
// trusts the directory, revoke with a push: the cluster is cut off and
// refused.
func TestCredsIssueAndRevoke(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trust")
	if out, err := run(t, "creds", "init", "--dir", dir); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if _, err := run(t, "creds", "init", "--dir", dir); err == nil {
		t.Fatal("a second init over an existing trust succeeded")
	}
	trust, err := natsauth.LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	resolver := t.TempDir()
	srv := natstest.Start(t, func(c *natsembed.Config) {
		c.Configure = func(o *server.Options) {
			if err := trust.Configure(o, resolver); err != nil {
				t.Error(err)
			}
		}
	})
	creds := filepath.Join(t.TempDir(), "sno-7.creds")
	out, err := run(t, "creds", "issue", "--dir", dir, "--cluster", "sno-7", "-o", creds)
	if err != nil || !strings.Contains(out, "--nats-inbox-prefix _INBOX_sno-7") {
		t.Fatalf("issue: %v\n%s", err, out)
	}
	if _, err := run(t, "creds", "issue", "--dir", dir, "--cluster", "Not_A_Cluster"); !errors.Is(err, ErrUsage) {
		t.Fatalf("issue for a bad id: %v", err)
	}
	nc, err := nats.Connect(srv.URL(), nats.UserCredentials(creds), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatalf("connect with the issued credentials: %v", err)
	}
	defer nc.Close()
	if out, err := run(t, "creds", "revoke", "--dir", dir, "--cluster", "sno-7", "--nats-url", srv.URL()); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	natstest.WaitFor(t, 10*time.Second, "the revoked cluster cut off", func() bool { return !nc.IsConnected() })
	if nc2, err := nats.Connect(srv.URL(), nats.UserCredentials(creds)); err == nil {
		nc2.Close()
		t.Fatal("revoked credentials connected")
	}
	if out, err := run(t, "creds", "server-config", "--dir", dir); err != nil || !strings.Contains(out, "resolver_preload") {
		t.Fatalf("server-config: %v\n%s", err, out)
	}
}
