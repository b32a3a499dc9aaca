package bus_test

import (
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
)

// richEvent is a valid heartbeat with every optional attribute and a few
// extensions whose values need percent-encoding.
func richEvent(t testing.TB) (string, cloudevents.Event) {
	t.Helper()
	subj, e := heartbeat(t, "sno1", 7)
	e.SetDataSchema("https://ibu.dev/schemas/dev.ibu.cluster.heartbeat.v1.json")
	e.SetTime(time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC))
	e.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	e.SetExtension("tracestate", "vendor=a b,other=\"x\"")
	e.SetExtension("ibuzone", "zone 50% é\r\nnext")
	return subj, e
}

func assertSameEvent(t testing.TB, got, want cloudevents.Event) {
	t.Helper()
	if got.SpecVersion() != want.SpecVersion() || got.ID() != want.ID() || got.Source() != want.Source() ||
		got.Type() != want.Type() || got.Subject() != want.Subject() || !got.Time().Equal(want.Time()) ||
		got.DataSchema() != want.DataSchema() || got.DataContentType() != want.DataContentType() {
		t.Fatalf("attributes differ:\n got  %s\n want %s", got.Context, want.Context)
	}
	if string(got.Data()) != string(want.Data()) {
		t.Fatalf("data differs: %s vs %s", got.Data(), want.Data())
	}
	if !reflect.DeepEqual(extStrings(got), extStrings(want)) {
		t.Fatalf("extensions differ: %v vs %v", got.Extensions(), want.Extensions())
	}
}

// extStrings returns the extensions in their canonical string form (binary
// mode carries every extension as a string).
func extStrings(e cloudevents.Event) map[string]string {
	out := map[string]string{}
	for k, v := range e.Extensions() {
		s, err := types.Format(v)
		if err != nil {
			s = "!" + err.Error()
		}
		out[k] = s
	}
	return out
}

func TestToMsgBinaryMode(t *testing.T) {
	subj, e := richEvent(t)
	msg, err := bus.ToMsg(subj, e)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != subj || string(msg.Data) != string(e.Data()) {
		t.Fatalf("subject %q data %s", msg.Subject, msg.Data)
	}
	want := map[string]string{
		"ce-specversion": "1.0",
		"ce-id":          e.ID(),
		"ce-source":      "/clusters/sno1/node-agent",
		"ce-type":        "dev.ibu.cluster.heartbeat.v1",
		"ce-subject":     "sno1",
		"ce-time":        "2025-03-04T05:06:07.123456789Z",
		"ce-dataschema":  "https://ibu.dev/schemas/dev.ibu.cluster.heartbeat.v1.json",
		"ce-traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"ce-tracestate":  "vendor=a%20b,other=%22x%22",
		"ce-ibuzone":     "zone%2050%25%20%C3%A9%0D%0Anext",
		"Content-Type":   "application/json",
		"Nats-Msg-Id":    e.ID(),
	}
	for k, v := range want {
		if got := msg.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if len(msg.Header) != len(want) {
		var keys []string
		for k := range msg.Header {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		t.Errorf("headers %v", keys)
	}

	got, err := bus.FromMsg(msg)
	if err != nil {
		t.Fatal(err)
	}
	assertSameEvent(t, got, e)
}

func TestToMsgRefusesIncompleteEvent(t *testing.T) {
	if _, err := bus.ToMsg("x", cloudevents.Event{}); err == nil {
		t.Error("no error for an event without context")
	}
	e := cloudevents.NewEvent()
	if _, err := bus.ToMsg("x", e); !errors.Is(err, events.ErrMissingAttribute) {
		t.Errorf("event without id: %v", err)
	}
	_, big := heartbeat(t, "sno1", 1)
	big.DataEncoded = make([]byte, events.MaxEventSize)
	if _, err := bus.ToMsg("x", big); !errors.Is(err, events.ErrTooLarge) {
		t.Errorf("oversize event: %v", err)
	}
}

func TestFromMsgStructuredMode(t *testing.T) {
	subj, e := heartbeat(t, "sno1", 1)
	body, err := events.EncodeStructured(e)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]nats.Header{
		"content-type": {"Content-Type": {"application/cloudevents+json; charset=utf-8"}},
		"no headers":   nil,
		// Structured content type wins over stray ce- headers.
		"ce headers ignored": {"Content-Type": {"application/cloudevents+json"}, "ce-id": {"other"}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := bus.FromMsg(&nats.Msg{Subject: subj, Header: h, Data: body})
			if err != nil {
				t.Fatal(err)
			}
			if got.ID() != e.ID() || got.Type() != e.Type() || string(got.Data()) != string(e.Data()) {
				t.Fatalf("got %s", got)
			}
		})
	}
	// A hand-written event, as `nats pub` would send it.
	hand := `{"specversion":"1.0","id":"abc-1","source":"/ibuctl","type":"dev.ibu.cluster.heartbeat.v1",
	  "subject":"sno2","datacontenttype":"application/json",
	  "data":{"clusterId":"sno2","seq":3,"time":"2025-01-01T00:00:00Z","stage":"Idle","state":"Completed"}}`
	got, err := bus.FromMsg(&nats.Msg{Subject: "ibu.event.sno2.heartbeat", Data: []byte(hand)})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != "abc-1" || got.Subject() != "sno2" {
		t.Fatalf("got %s", got)
	}
}

// malformed returns the input classes a consumer must refuse, each with the
// reason it must give.
func malformed(t testing.TB) []struct {
	name   string
	msg    *nats.Msg
	reason string
} {
	subj, e := heartbeat(t, "sno1", 1)
	n := 0
	good := func(mut func(h nats.Header)) *nats.Msg {
		msg, err := bus.ToMsg(subj, e)
		if err != nil {
			t.Fatal(err)
		}
		// a fresh dedup id per case, so JetStream stores every one
		n++
		msg.Header.Set("Nats-Msg-Id", "malformed-"+itoa(n))
		mut(msg.Header)
		return msg
	}
	withData := func(m *nats.Msg, data string) *nats.Msg { m.Data = []byte(data); return m }
	return []struct {
		name   string
		msg    *nats.Msg
		reason string
	}{
		{"wrong specversion", good(func(h nats.Header) { h.Set("ce-specversion", "0.3") }), "UnsupportedSpecVersion"},
		{"missing id", good(func(h nats.Header) { h.Del("ce-id") }), "MissingAttribute"},
		{"unknown type", good(func(h nats.Header) { h.Set("ce-type", "dev.ibu.nope.v1") }), "UnknownType"},
		{"schema mismatch", withData(good(func(nats.Header) {}), `{"clusterId":5}`), "SchemaMismatch"},
		{"not JSON", withData(good(func(nats.Header) {}), `hello, world`), "NotJSON"},
		{"oversize", withData(good(func(nats.Header) {}), `"`+strings.Repeat("a", events.MaxEventSize)+`"`), "TooLarge"},
		{"no headers garbage body", &nats.Msg{Subject: subj, Data: []byte("\x00\x01garbage")}, "NotJSON"},
		{"bad time", good(func(h nats.Header) { h.Set("ce-time", "yesterday") }), "InvalidAttribute"},
		{"bad percent-encoding", good(func(h nats.Header) { h.Set("ce-source", "/a%zz") }), "InvalidAttribute"},
	}
}

func TestFromMsgMalformed(t *testing.T) {
	for _, c := range malformed(t) {
		t.Run(c.name, func(t *testing.T) {
			_, err := bus.FromMsg(c.msg)
			var de *events.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *events.DecodeError", err, err)
			}
			if got := events.Reason(err); got != c.reason {
				t.Fatalf("reason %s, want %s (%v)", got, c.reason, err)
			}
		})
	}
}

// headerBlob serialises headers as "Key:Value\n" lines for the fuzzer.
func headerBlob(h nats.Header) string {
	var b strings.Builder
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			b.WriteString(k + ":" + v + "\n")
		}
	}
	return b.String()
}

func parseHeaderBlob(s string) nats.Header {
	h := nats.Header{}
	for line := range strings.SplitSeq(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			h[k] = append(h[k], v)
		}
	}
	return h
}

func FuzzFromMsg(f *testing.F) {
	subj, e := richEvent(f)
	msg, err := bus.ToMsg(subj, e)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(headerBlob(msg.Header), msg.Data)
	structured, err := events.EncodeStructured(e)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("", structured)
	f.Add("Content-Type:application/cloudevents+json\n", structured)
	f.Add("", []byte(`{"specversion":"1.0"}`))
	f.Add("", []byte(`[]`))
	f.Add("", []byte{})
	f.Add("ce-specversion:1.0\nce-id:%\nce-type:x\n", []byte("{"))
	f.Add("ce-specversion:1.0\nCE-ID:a\nce-id:b\nce-source:%C3%28\n", []byte("null"))
	f.Add("ce-:x\nce-specversion:1.0\nce-time:2020-13-45T99:00:00Z\n", []byte("{}"))
	for _, c := range malformed(f) {
		if len(c.msg.Data) < 4096 {
			f.Add(headerBlob(c.msg.Header), c.msg.Data)
		}
	}
	f.Fuzz(func(t *testing.T, headers string, body []byte) {
		h := parseHeaderBlob(headers)
		got, err := bus.FromHeaders(h, body)
		if err != nil {
			var de *events.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *events.DecodeError", err, err)
			}
			return
		}
		if err := events.Validate(got); err != nil {
			t.Fatalf("accepted an invalid event: %v", err)
		}
		// What was accepted survives a round trip through binary mode.
		m, err := bus.ToMsg("x", got)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := bus.FromMsg(m)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		assertSameEvent(t, again, got)
	})
}
