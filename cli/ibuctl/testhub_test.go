package ibuctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/testkit/natstest"
)

// testHub is an embedded JetStream with ibu's topology, for commands that
// talk to the hub.
type testHub struct {
	t   *testing.T
	url string
	js  jetstream.JetStream
}

func startTestHub(t *testing.T) *testHub {
	t.Helper()
	srv, js := natstest.StartHub(t)
	return &testHub{t: t, url: srv.URL(), js: js}
}

// syncBuffer is a bytes.Buffer safe for a command running in a goroutine
// while the test reads what it printed.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// run runs an ibuctl command line against the hub and returns stdout,
// stderr and the error.
func (h *testHub) run(ctx context.Context, args ...string) (string, string, error) {
	var out, errb syncBuffer
	err := Run(ctx, h.io(&out, &errb), args)
	return out.String(), errb.String(), err
}

func (h *testHub) io(out, errb *syncBuffer) IO {
	return IO{In: strings.NewReader(""), Out: out, Err: errb, Getenv: func(k string) string {
		switch k {
		case "NATS_URL":
			return h.url
		case "USER":
			return "tester"
		}
		return ""
	}}
}

// started runs a command in the background; wait returns its error.
type started struct {
	out, err *syncBuffer
	done     chan error
}

func (h *testHub) start(args ...string) *started {
	s := &started{out: &syncBuffer{}, err: &syncBuffer{}, done: make(chan error, 1)}
	go func() { s.done <- Run(h.t.Context(), h.io(s.out, s.err), args) }()
	return s
}

func (s *started) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("command did not end; stdout:\n%s\nstderr:\n%s", s.out.String(), s.err.String())
		return nil
	}
}

// takeRequest plays the scheduler: it takes the next request from
// IBU_REQUESTS (waiting for it) and acknowledges it.
func (h *testHub) takeRequest() cloudevents.Event {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), 20*time.Second)
	defer cancel()
	cons, err := h.js.CreateOrUpdateConsumer(ctx, bus.StreamRequests, jetstream.ConsumerConfig{
		Durable: "test-scheduler", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		h.t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchContext(ctx))
	if err != nil {
		h.t.Fatalf("no request in %s: %v", bus.StreamRequests, err)
	}
	if err := msg.Ack(); err != nil {
		h.t.Fatal(err)
	}
	e, err := bus.FromHeaders(msg.Headers(), msg.Data())
	if err != nil {
		h.t.Fatalf("request does not decode: %v", err)
	}
	return e
}

// emitPlan publishes an event about a plan as the scheduler does.
func (h *testHub) emitPlan(planID string, data events.Data) {
	h.t.Helper()
	e, err := events.New("/test/scheduler", planID, data)
	if err != nil {
		h.t.Fatal(err)
	}
	spec, _ := events.Lookup(data.EventType())
	subject, err := events.PlanEventSubject(planID, spec.Name)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := bus.NewPublisher(h.js).Publish(h.t.Context(), subject, e); err != nil {
		h.t.Fatal(err)
	}
}

// put writes a JSON value into a bucket.
func (h *testHub) put(bucket, key string, v any) {
	h.t.Helper()
	kv, err := h.js.KeyValue(h.t.Context(), bucket)
	if err != nil {
		h.t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := kv.Put(h.t.Context(), key, b); err != nil {
		h.t.Fatal(err)
	}
}

// oneLineError checks that a command failed (not a usage error) with a
// single line mentioning want.
func oneLineError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error mentioning %q, got none", want)
	}
	if errors.Is(err, ErrUsage) {
		t.Fatalf("want a runtime error, got a usage error: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
		t.Fatalf("want one line mentioning %q, got %q", want, msg)
	}
}
