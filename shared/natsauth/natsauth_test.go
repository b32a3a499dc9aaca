package natsauth_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/natsauth"
	"ibu.dev/shared/natsembed"
	"ibu.dev/shared/pullbudget"
	"ibu.dev/shared/state"
	"ibu.dev/shared/testkit/natstest"
)

// hub is a real nats-server in operator (JWT) mode.
type hub struct {
	trust *natsauth.Trust
	srv   *natsembed.Server
	js    jetstream.JetStream // a hub service's
}

func startHub(t *testing.T) *hub {
	t.Helper()
	h := natstest.StartAuthHub(t)
	return &hub{trust: h.Trust, srv: h.Server, js: h.JS}
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// spoke is a cluster's connection with its own credentials; denials, which
// NATS reports only asynchronously, are collected.
type spoke struct {
	creds  string
	nc     *nats.Conn
	js     jetstream.JetStream
	mu     sync.Mutex
	denied []string
}

func (s *spoke) deniedOn(subject string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.denied {
		if strings.Contains(d, subject) {
			return true
		}
	}
	return false
}

func (h *hub) spoke(t *testing.T, cluster string, ttl time.Duration) (*spoke, error) {
	t.Helper()
	u, err := natsauth.SpokeUser(cluster, ttl)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := h.trust.Issue(u)
	if err != nil {
		t.Fatal(err)
	}
	s := &spoke{creds: writeFile(t, cluster+".creds", creds)}
	nc, err := nats.Connect(h.srv.URL(),
		nats.UserCredentials(s.creds),
		nats.CustomInboxPrefix(natsauth.SpokeInboxPrefix(cluster)),
		nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				s.mu.Lock()
				s.denied = append(s.denied, err.Error())
				s.mu.Unlock()
			}
		}))
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	s.nc = nc
	s.js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return s, nil
}

func short(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

func TestSpokeCredentialsAllowOnlyItsOwnCluster(t *testing.T) {
	h := startHub(t)
	ctx := t.Context()
	desired, _ := h.js.KeyValue(ctx, bus.BucketDesired)
	for _, c := range []string{"c1", "c2"} {
		if _, err := desired.Put(ctx, c, []byte(`{"stage":"Idle","generation":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := h.spoke(t, "c1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// What 4 allows.
	kvDesired, err := s.js.KeyValue(ctx, bus.BucketDesired)
	if err != nil {
		t.Fatalf("own bucket handle: %v", err)
	}
	if _, err := kvDesired.Get(ctx, "c1"); err != nil {
		t.Fatalf("get own desired key: %v", err)
	}
	w, err := kvDesired.Watch(ctx, "c1")
	if err != nil {
		t.Fatalf("watch own desired key: %v", err)
	}
	select {
	case e := <-w.Updates():
		if e == nil || e.Key() != "c1" {
			t.Fatalf("watch gave %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no value from the watch of the own key")
	}
	if err := w.Stop(); err != nil {
		t.Fatalf("stop watch: %v", err)
	}
	kvStatus, err := s.js.KeyValue(ctx, bus.BucketStatus)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bus.UpdateJSON(ctx, kvStatus, "c1", func(st *state.Status, _ bool) error { st.Message = "hello"; return nil }); err != nil {
		t.Fatalf("write own status key: %v", err)
	}
	kvClusters, err := s.js.KeyValue(ctx, bus.BucketClusters)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kvClusters.Put(ctx, "c1", []byte(`{}`)); err != nil {
		t.Fatalf("write own inventory key: %v", err)
	}
	if _, err := s.js.Publish(ctx, "ibu.event.c1.cluster.heartbeat", []byte(`{}`)); err != nil {
		t.Fatalf("publish own event: %v", err)
	}
	if _, err := s.js.Publish(ctx, "ibu.task.health.c1", []byte(`{}`)); err != nil {
		t.Fatalf("publish own task: %v", err)
	}
	oc, err := s.js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"ibu.event.c1.>"}})
	if err != nil {
		t.Fatalf("follow own events: %v", err)
	}
	if m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil || m.Subject() != "ibu.event.c1.cluster.heartbeat" {
		t.Fatalf("own event: %v %v", m, err)
	}
	// The agent takes no task off IBU_TASKS (its answers are events): no
	// durable of its own there.
	if _, err := s.js.CreateOrUpdateConsumer(ctx, bus.StreamTasks, jetstream.ConsumerConfig{
		Durable: "node-agent-c1", FilterSubject: "ibu.task.node-agent.c1", AckPolicy: jetstream.AckExplicitPolicy,
	}); err == nil {
		t.Fatal("the spoke created a durable consumer on IBU_TASKS")
	}
	// The fleet's pull budget: the hub sets a limit, the spoke holds and
	// releases a slot on its own credentials, and may not set limits.
	if err := pullbudget.Ensure(ctx, h.js, 1); err != nil {
		t.Fatal(err)
	}
	hubPool, err := pullbudget.Open(ctx, h.js, "precache")
	if err != nil {
		t.Fatal(err)
	}
	if err := hubPool.SetLimit(ctx, "quay.io", 1); err != nil {
		t.Fatal(err)
	}
	spokePool, err := pullbudget.Open(ctx, s.js, "c1")
	if err != nil {
		t.Fatalf("open the pull budget: %v", err)
	}
	defer spokePool.Close()
	lease, err := spokePool.Acquire(ctx, "quay.io", "quay.io/x/y@sha256:0")
	if err != nil {
		t.Fatalf("take a pull slot: %v", err)
	}
	if held, err := hubPool.Held(ctx, "quay.io"); err != nil || len(held) != 1 {
		t.Fatalf("the hub sees %v held (%v), want the spoke's slot", held, err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("release the pull slot: %v", err)
	}
	if err := spokePool.SetLimit(short(t), "quay.io", 100); err == nil {
		t.Fatal("a spoke set the fleet's pull limit")
	}

	// Everything else is refused: the call fails (a timeout: NATS drops
	// the request) and the reason arrives as an async permission error.
	for _, c := range []struct {
		name, subject string
		do            func(ctx context.Context) error
	}{
		{"another cluster's desired key", "$JS.API.DIRECT.GET.KV_IBU_DESIRED.$KV.IBU_DESIRED.c2", func(ctx context.Context) error {
			_, err := kvDesired.Get(ctx, "c2")
			return err
		}},
		{"watch another cluster's desired key", "$JS.API.CONSUMER.CREATE.KV_IBU_DESIRED", func(ctx context.Context) error {
			w, err := kvDesired.Watch(ctx, "c2")
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{"another cluster's status key", "$KV.IBU_STATUS.c2", func(ctx context.Context) error {
			_, err := kvStatus.Put(ctx, "c2", []byte(`{}`))
			return err
		}},
		{"write own desired key", "$KV.IBU_DESIRED.c1", func(ctx context.Context) error {
			_, err := kvDesired.Put(ctx, "c1", []byte(`{}`))
			return err
		}},
		{"another cluster's events", "ibu.event.c2.cluster.heartbeat", func(ctx context.Context) error {
			_, err := s.js.Publish(ctx, "ibu.event.c2.cluster.heartbeat", []byte(`{}`))
			return err
		}},
		{"plan events", "ibu.event.plan.p1.plan.status.changed", func(ctx context.Context) error {
			_, err := s.js.Publish(ctx, "ibu.event.plan.p1.plan.status.changed", []byte(`{}`))
			return err
		}},
		{"follow another cluster's events", "$JS.API.CONSUMER.CREATE.IBU_EVENTS", func(ctx context.Context) error {
			_, err := s.js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"ibu.event.c2.>"}})
			return err
		}},
		{"hijack the scheduler's consumer", "$JS.API.CONSUMER.CREATE.IBU_EVENTS.scheduler", func(ctx context.Context) error {
			_, err := s.js.CreateOrUpdateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{Durable: "scheduler", FilterSubject: "ibu.event.c1.>"})
			return err
		}},
		{"create a stream", "$JS.API.STREAM.CREATE.EVIL", func(ctx context.Context) error {
			_, err := s.js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}})
			return err
		}},
		{"delete a bucket", "$JS.API.STREAM.DELETE.KV_IBU_STATUS", func(ctx context.Context) error {
			return s.js.DeleteKeyValue(ctx, bus.BucketStatus)
		}},
		{"purge the status stream", "$JS.API.STREAM.PURGE.KV_IBU_STATUS", func(ctx context.Context) error {
			_, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.PURGE.KV_IBU_STATUS", nil)
			return err
		}},
		{"read another spoke's inbox", "_INBOX_c2", func(ctx context.Context) error {
			sub, err := s.nc.SubscribeSync("_INBOX_c2.>")
			if err == nil {
				_, err = sub.NextMsgWithContext(ctx)
			}
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.do(short(t)); err == nil {
				t.Fatal("allowed")
			}
			natstest.WaitFor(t, 5*time.Second, "a permission error naming "+c.subject, func() bool { return s.deniedOn(c.subject) })
		})
	}
	// Nothing of c2 changed.
	if e, err := desired.Get(ctx, "c2"); err != nil || e.Revision() != 2 {
		t.Fatalf("c2's desired key: %v %v", e, err)
	}
	if st, err := h.js.Stream(ctx, "KV_IBU_STATUS"); err != nil || st.CachedInfo().State.Msgs != 1 {
		t.Fatalf("status stream after the spoke's attempts: %v", err)
	}
}

func TestRevokedAndExpiredCredentialsAreRefused(t *testing.T) {
	h := startHub(t)
	if _, err := h.spoke(t, "c9", -time.Minute); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("expired credentials: connect = %v, want an authorization error", err)
	}
	s, err := h.spoke(t, "c1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.trust.Revoke("c1"); err != nil {
		t.Fatal(err)
	}
	sys, err := h.trust.IssueSystem(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sysConn, _ := natstest.Connect(t, h.srv.URL(), nats.UserCredentials(writeFile(t, "sys.creds", sys)))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := natsauth.PushAccount(ctx, sysConn, h.trust.AccountJWT); err != nil {
		t.Fatal(err)
	}
	// The connected spoke is cut off ...
	natstest.WaitFor(t, 10*time.Second, "the revoked spoke disconnected", func() bool { return !s.nc.IsConnected() })
	// ... and new connections with the same credentials are refused.
	if _, err := nats.Connect(h.srv.URL(), nats.UserCredentials(s.creds)); err == nil {
		t.Fatal("revoked credentials connected again")
	}
	// Another cluster is unaffected.
	if _, err := h.spoke(t, "c2", time.Hour); err != nil {
		t.Fatalf("c2 after c1's revocation: %v", err)
	}
}
