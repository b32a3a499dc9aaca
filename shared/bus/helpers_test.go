package bus_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/natsembed"
	"ibu.dev/shared/testkit/natstest"
)

const waitTimeout = 20 * time.Second

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	natstest.WaitFor(t, timeout, what, cond)
}

// setup starts an embedded server with the ibu topology.
func setup(t testing.TB, cfg ...func(*natsembed.Config)) (*natsembed.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t, cfg...)
	nc, js := natstest.Connect(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := bus.EnsureTopology(ctx, js); err != nil {
		t.Fatal(err)
	}
	return srv, nc, js
}

// heartbeat builds a valid event of the contract and its subject.
func heartbeat(t testing.TB, cluster string, seq uint64) (string, cloudevents.Event) {
	t.Helper()
	e, err := events.New("/clusters/"+cluster+"/node-agent", cluster, events.ClusterHeartbeat{
		ClusterID: cluster, Seq: seq, Time: time.Now().UTC().Truncate(time.Millisecond),
		Stage: events.StageIdle, State: events.StateCompleted,
	})
	if err != nil {
		t.Fatalf("build heartbeat: %v", err)
	}
	subj, err := events.ClusterEventSubject(cluster, "heartbeat")
	if err != nil {
		t.Fatal(err)
	}
	return subj, e
}

// recorder is a Handler that records the events it sees, by id.
type recorder struct {
	mu     sync.Mutex
	events []cloudevents.Event
	ctxs   []context.Context
	calls  map[string]int
	// fail, if set, decides the handler's result per event and call number.
	fail func(e cloudevents.Event, call int) error
}

func newRecorder() *recorder { return &recorder{calls: map[string]int{}} }

func (r *recorder) handle(ctx context.Context, e cloudevents.Event) error {
	r.mu.Lock()
	r.calls[e.ID()]++
	n := r.calls[e.ID()]
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		if err := fail(e, n); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.events = append(r.events, e)
	r.ctxs = append(r.ctxs, ctx)
	r.mu.Unlock()
	return nil
}

// handled reports how many times the event with id was handled successfully.
func (r *recorder) handled(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.ID() == id {
			n++
		}
	}
	return n
}

func (r *recorder) callCount(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

func (r *recorder) get(id string) (cloudevents.Event, context.Context, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.events {
		if e.ID() == id {
			return e, r.ctxs[i], true
		}
	}
	return cloudevents.Event{}, nil, false
}

// consume starts a consumer on IBU_EVENTS for the test, stopped at cleanup.
func consume(t testing.TB, js jetstream.JetStream, h bus.Handler, opts ...bus.ConsumeOption) *bus.Subscription {
	t.Helper()
	all := append([]bus.ConsumeOption{
		bus.ConsumeLogger(testLogger(t)),
		bus.ConsumeService("test"),
		bus.ConsumeBackoff(10 * time.Millisecond),
	}, opts...)
	sub, err := bus.Consume(t.Context(), js, bus.StreamEvents, "test", h, all...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	return sub
}

// dlq returns the messages in IBU_DLQ.
func dlq(t testing.TB, js jetstream.JetStream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, bus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// dlqCount is the number of messages in IBU_DLQ.
func dlqCount(t testing.TB, js jetstream.JetStream) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, bus.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return int(info.State.Msgs)
}

// settled reports whether the consumer has nothing pending or unacked.
func settled(t testing.TB, sub *bus.Subscription) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := sub.Consumer().Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.NumPending == 0 && info.NumAckPending == 0 && info.NumWaiting >= 0
}

func itoa(n int) string { return strconv.Itoa(n) }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testLogger logs through the test's output (shown with -v or on failure).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
