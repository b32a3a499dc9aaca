package ibuctl

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/testkit/natstest"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(t.Context(), IO{In: strings.NewReader(""), Out: &out, Err: &errb, Getenv: func(string) string { return "" }}, args)
	return out.String() + errb.String(), err
}

func writeEvent(t *testing.T, data events.Data, subject string) string {
	t.Helper()
	e, err := events.New("/test", subject, data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := events.EncodeStructured(e)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidate(t *testing.T) {
	good := writeEvent(t, events.PlanPauseRequested{PlanID: "spring", Reason: "freeze"}, "spring")
	out, err := run(t, "validate", good)
	if err != nil || !strings.Contains(out, "ok dev.ibu.plan.pause.requested.v1") {
		t.Fatalf("validate good: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"specversion":"1.0","id":"1","source":"/x","type":"dev.ibu.plan.pause.requested.v1","data":{"planId":"Spring!"}}`), 0o600)
	out, err = run(t, "validate", good, bad)
	if err == nil || !strings.Contains(out, "INVALID SchemaMismatch") || !strings.Contains(err.Error(), "1 of 2") {
		t.Fatalf("validate bad: %v\n%s", err, out)
	}
}

func TestPublishGoesToItsStreamOnce(t *testing.T) {
	srv, js := natstest.StartHub(t)
	file := writeEvent(t, events.PlanAbortRequested{PlanID: "spring", Reason: "bad canary"}, "spring")
	var out bytes.Buffer
	io := IO{Out: &out, Err: &out, Getenv: func(k string) string {
		if k == "NATS_URL" {
			return srv.URL()
		}
		return ""
	}}
	for range 2 { // the second publish is the same event id: JetStream drops it
		if err := Run(t.Context(), io, []string{"publish", file}); err != nil {
			t.Fatalf("publish: %v\n%s", err, out.String())
		}
	}
	if !strings.Contains(out.String(), "on ibu.request.plan.abort -> IBU_REQUESTS seq 1") || !strings.Contains(out.String(), "duplicate id") {
		t.Fatalf("unexpected output:\n%s", out.String())
	}
	st, err := js.Stream(t.Context(), bus.StreamRequests)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("%s holds %d messages, want 1", bus.StreamRequests, info.State.Msgs)
	}
}

func TestPublishRefusesInvalidEventBeforeConnecting(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"specversion":"1.0","id":"1","source":"/x","type":"dev.ibu.plan.nuke.v1","data":{}}`), 0o600)
	// 127.0.0.1:1 refuses connections: the error must be about NATS, since
	// connecting comes first; then with a server, about the event.
	_, err := run(t, "publish", "--nats-url", "nats://127.0.0.1:1", bad)
	if err == nil || !strings.Contains(err.Error(), "connect to NATS") {
		t.Fatalf("want a connect error, got %v", err)
	}
	srv := natstest.Start(t)
	_, err = run(t, "publish", "--nats-url", srv.URL(), bad)
	if !errors.Is(err, events.ErrUnknownType) {
		t.Fatalf("want ErrUnknownType, got %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"validate"}} {
		if _, err := run(t, args...); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: want ErrUsage, got %v", args, err)
		}
	}
}

func TestHelpStopsTheCommand(t *testing.T) {
	out, err := run(t, "hub", "-h")
	if err != nil || !strings.Contains(out, "-store") || strings.Contains(out, "hub ready") {
		t.Fatalf("hub -h: %v\n%s", err, out)
	}
}
