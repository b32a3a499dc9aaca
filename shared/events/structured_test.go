package events

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
)

var sentinels = []error{ErrSpecVersion, ErrMissingAttribute, ErrInvalidAttribute, ErrUnknownType, ErrSchema, ErrTooLarge, ErrNotJSON}

// isOnly reports whether err is a *DecodeError that wraps want and no other
// sentinel.
func isOnly(err, want error) bool {
	var de *DecodeError
	if !errors.As(err, &de) || !errors.Is(err, want) {
		return false
	}
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	return n == 1
}

func TestReasonsDistinct(t *testing.T) {
	seen := map[string]error{}
	for _, s := range sentinels {
		r := Reason(&DecodeError{Kind: s})
		if prev, dup := seen[r]; dup {
			t.Errorf("%v and %v share reason %s", prev, s, r)
		}
		if !reasonRE.MatchString(r) || r == "Invalid" {
			t.Errorf("%v: reason %q", s, r)
		}
		seen[r] = s
	}
}

// validHeartbeat returns a valid structured heartbeat event as a JSON map,
// for the malformed cases to break.
func validHeartbeat(t testing.TB) map[string]any {
	t.Helper()
	e, err := New("/clusters/sno-001/node-agent", "sno-001", ClusterHeartbeat{
		ClusterID: "sno-001", Seq: 7, Time: exTime, Stage: StageIdle, State: StateCompleted})
	if err != nil {
		t.Fatal(err)
	}
	e.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	b, err := EncodeStructured(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

type decodeCase struct {
	name string
	in   []byte
	want error // nil: must decode
}

// decodeCases are the structured-mode inputs, valid and malformed, shared by
// the table test and the fuzz seed corpus.
func decodeCases(t testing.TB) []decodeCase {
	enc := func(m map[string]any) []byte {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	with := func(edit func(m, data map[string]any)) []byte {
		m := validHeartbeat(t)
		data, _ := m["data"].(map[string]any)
		edit(m, data)
		return enc(m)
	}
	valid := enc(validHeartbeat(t))
	replace := func(old, new string) []byte {
		if !bytes.Contains(valid, []byte(old)) {
			t.Fatalf("%q not in %s", old, valid)
		}
		return bytes.Replace(valid, []byte(old), []byte(new), 1)
	}
	dataJSON, _ := json.Marshal(validHeartbeat(t)["data"])
	sc, err := New("/clusters/sno-001/node-agent", "sno-001", exampleFor(t, TypeStageChanged))
	if err != nil {
		t.Fatal(err)
	}
	stageChanged, err := EncodeStructured(sc)
	if err != nil {
		t.Fatal(err)
	}
	return []decodeCase{
		{"valid", valid, nil},
		{"valid data_base64 of JSON", with(func(m, d map[string]any) {
			delete(m, "data")
			m["data_base64"] = base64.StdEncoding.EncodeToString(dataJSON)
		}), nil},
		{"valid charset parameter", with(func(m, _ map[string]any) { m["datacontenttype"] = "application/json; charset=utf-8" }), nil},
		{"valid no datacontenttype", with(func(m, _ map[string]any) { delete(m, "datacontenttype") }), nil},

		{"valid lone surrogate escape", replace(`"id":"`, `"id":"\ud800`), nil},
		{"valid escaped attribute names", replace(`"specversion":`, `"spec\u0076ersion":`), nil},
		{"valid integer extension", with(func(m, _ map[string]any) { m["sampled"] = -1 }), nil},
		{"valid boolean extension", with(func(m, _ map[string]any) { m["sampled"] = true }), nil},
		{"valid dataschema", with(func(m, _ map[string]any) { m["dataschema"] = "https://ibu.dev/schemas/events/x.json" }), nil},

		{"specversion 0.3", with(func(m, _ map[string]any) { m["specversion"] = "0.3" }), ErrSpecVersion},
		{"specversion 2.0", with(func(m, _ map[string]any) { m["specversion"] = "2.0" }), ErrSpecVersion},
		{"specversion missing", with(func(m, _ map[string]any) { delete(m, "specversion") }), ErrSpecVersion},
		{"specversion number", with(func(m, _ map[string]any) { m["specversion"] = 1.0 }), ErrSpecVersion},
		{"specversion twice", replace(`"specversion":"1.0"`, `"specversion":"1.0","specversion":"0.3"`), ErrSpecVersion},

		{"id missing", with(func(m, _ map[string]any) { delete(m, "id") }), ErrMissingAttribute},
		{"id empty", with(func(m, _ map[string]any) { m["id"] = "" }), ErrMissingAttribute},
		{"source missing", with(func(m, _ map[string]any) { delete(m, "source") }), ErrMissingAttribute},
		{"type missing", with(func(m, _ map[string]any) { delete(m, "type") }), ErrMissingAttribute},

		{"id number", with(func(m, _ map[string]any) { m["id"] = 42 }), ErrInvalidAttribute},
		{"subject null", with(func(m, _ map[string]any) { m["subject"] = nil }), ErrInvalidAttribute},
		{"id twice", replace(`"id":`, `"id":"x","id":`), ErrInvalidAttribute},
		{"time not RFC 3339", with(func(m, _ map[string]any) { m["time"] = "yesterday" }), ErrInvalidAttribute},
		{"time without UTC form", with(func(m, _ map[string]any) { m["time"] = "0000-01-01T00:00:00+01:00" }), ErrInvalidAttribute},
		{"source not canonical", with(func(m, _ map[string]any) { m["source"] = "/clusters/a b" }), ErrInvalidAttribute},
		{"extension name upper case", with(func(m, _ map[string]any) { m["traceParent"] = "x" }), ErrInvalidAttribute},
		{"extension object", with(func(m, _ map[string]any) { m["ext"] = map[string]any{"a": 1} }), ErrInvalidAttribute},
		{"extension fraction", with(func(m, _ map[string]any) { m["ext"] = 1.5 }), ErrInvalidAttribute},
		{"extension 0.3 attribute", with(func(m, _ map[string]any) { m["datacontentencoding"] = "base64" }), ErrInvalidAttribute},
		{"extension empty name", replace(`"id":`, `"":1,"id":`), ErrInvalidAttribute},
		{"extension too big", with(func(m, _ map[string]any) { m["ext"] = 2147483648 }), ErrInvalidAttribute},
		{"dataschema relative", with(func(m, _ map[string]any) { m["dataschema"] = "/schemas/x.json" }), ErrInvalidAttribute},
		{"source bad escape", with(func(m, _ map[string]any) { m["source"] = "%zz" }), ErrInvalidAttribute},
		{"data and data_base64", with(func(m, _ map[string]any) { m["data_base64"] = "e30=" }), ErrInvalidAttribute},

		{"unknown type", with(func(m, _ map[string]any) { m["type"] = "dev.ibu.cluster.exploded.v1" }), ErrUnknownType},
		{"unknown version", with(func(m, _ map[string]any) { m["type"] = "dev.ibu.cluster.heartbeat.v2" }), ErrUnknownType},

		{"data missing required field", with(func(_, d map[string]any) { delete(d, "seq") }), ErrSchema},
		{"data wrong enum", with(func(_, d map[string]any) { d["stage"] = "Pivot" }), ErrSchema},
		{"data extra field", with(func(_, d map[string]any) { d["stageName"] = "Idle" }), ErrSchema},
		{"data bad id pattern", with(func(_, d map[string]any) { d["clusterId"] = "SNO_1" }), ErrSchema},
		{"data reserved id", with(func(_, d map[string]any) { d["clusterId"] = "plan" }), ErrSchema},
		{"data wrong JSON type", with(func(_, d map[string]any) { d["seq"] = "7" }), ErrSchema},
		{"data integer as 7.0", replace(`"seq":7`, `"seq":7.0`), ErrSchema},
		{"data bad time", with(func(_, d map[string]any) { d["time"] = "2025-13-01T00:00:00Z" }), ErrSchema},
		{"data not an object", with(func(m, _ map[string]any) { m["data"] = []any{1, 2} }), ErrSchema},
		{"data null", with(func(m, _ map[string]any) { m["data"] = nil }), ErrSchema},
		{"data duplicate member", replace(`"seq":7`, `"seq":7,"seq":8`), ErrSchema},
		{"data nested duplicate member", bytes.Replace(stageChanged, []byte(`"type":"PrepCompleted"`),
			[]byte(`"type":"PrepCompleted","type":"PrepCompleted"`), 1), ErrSchema},
		{"no data", with(func(m, _ map[string]any) { delete(m, "data") }), ErrSchema},

		{"too large", with(func(m, _ map[string]any) { m["pad"] = strings.Repeat("x", MaxEventSize) }), ErrTooLarge},

		{"data_base64 binary", with(func(m, _ map[string]any) {
			delete(m, "data")
			m["data_base64"] = base64.StdEncoding.EncodeToString([]byte{0x89, 'P', 'N', 'G', 0, 1, 2, 0xff})
		}), ErrNotJSON},
		{"data_base64 not base64", with(func(m, _ map[string]any) { delete(m, "data"); m["data_base64"] = "%%%" }), ErrNotJSON},
		{"data_base64 object", with(func(m, _ map[string]any) { delete(m, "data"); m["data_base64"] = map[string]any{} }), ErrNotJSON},
		{"data_base64 empty", with(func(m, _ map[string]any) { delete(m, "data"); m["data_base64"] = "" }), ErrNotJSON},
		{"data_base64 number", with(func(m, _ map[string]any) { delete(m, "data"); m["data_base64"] = 1 }), ErrNotJSON},
		{"datacontenttype text/plain", with(func(m, _ map[string]any) {
			m["datacontenttype"] = "text/plain"
			m["data"] = "hello"
		}), ErrNotJSON},
		{"datacontenttype +json", with(func(m, _ map[string]any) { m["datacontenttype"] = "application/vnd.ibu+json" }), ErrNotJSON},
		{"trailing garbage", append(append([]byte{}, valid...), "garbage"...), ErrNotJSON},
		{"trailing brace", append(append([]byte{}, valid...), '}'), ErrNotJSON},
		{"two objects", append(append([]byte{}, valid...), valid...), ErrNotJSON},
		{"truncated", valid[:len(valid)/2], ErrNotJSON},
		{"array", []byte(`[` + string(valid) + `]`), ErrNotJSON},
		{"string", []byte(`"event"`), ErrNotJSON},
		{"null", []byte(`null`), ErrNotJSON},
		{"empty", nil, ErrNotJSON},
		{"invalid UTF-8", replace(`"sno-001"`, "\"sno-\xff01\""), ErrNotJSON},
	}
}

func TestDecodeStructured(t *testing.T) {
	for _, c := range decodeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			e, err := DecodeStructured(c.in)
			if c.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if e.DataBase64 {
					t.Error("data_base64 must come out as JSON data")
				}
				return
			}
			if !isOnly(err, c.want) {
				t.Fatalf("error %v, want a *DecodeError wrapping only %v", err, c.want)
			}
			if got, want := Reason(err), Reason(&DecodeError{Kind: c.want}); got != want {
				t.Fatalf("Reason = %s, want %s", got, want)
			}
		})
	}
}

// TestValidateRefusals: events built in Go rather than parsed.
func TestValidateRefusals(t *testing.T) {
	good, err := New("/hub/scheduler", "upgrade-4-16-3", exampleFor(t, TypePlanPauseRequested))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(e *cloudEvent)
		want error
	}{
		{"specversion 0.3", func(e *cloudEvent) { e.SetSpecVersion("0.3") }, ErrSpecVersion},
		{"empty id", func(e *cloudEvent) { e.Context.(*event.EventContextV1).ID = "" }, ErrMissingAttribute},
		{"unknown type", func(e *cloudEvent) { e.SetType("dev.ibu.plan.explode.requested.v1") }, ErrUnknownType},
		{"text data", func(e *cloudEvent) { _ = e.SetData("text/plain", "hello") }, ErrNotJSON},
		{"trailing data", func(e *cloudEvent) { e.DataEncoded = []byte(`{"planId":"a"}}`) }, ErrNotJSON},
		{"schema", func(e *cloudEvent) { e.DataEncoded = []byte(`{"planId":"A"}`) }, ErrSchema},
		{"too large", func(e *cloudEvent) { e.DataEncoded = bytes.Repeat([]byte(" "), MaxEventSize+1) }, ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := good.Clone()
			c.edit(&e)
			if err := Validate(e); !isOnly(err, c.want) {
				t.Fatalf("Validate: %v, want only %v", err, c.want)
			}
			if _, err := EncodeStructured(e); !isOnly(err, c.want) {
				t.Fatalf("EncodeStructured: %v, want only %v", err, c.want)
			}
		})
	}
	if err := Validate(cloudEvent{}); !isOnly(err, ErrSpecVersion) {
		t.Fatalf("zero event: %v", err)
	}
}

func TestNewRefusesInvalidData(t *testing.T) {
	_, err := New("/clusters/x/node-agent", "x", ClusterHeartbeat{ClusterID: "Not Valid"})
	if !isOnly(err, ErrSchema) {
		t.Fatalf("New: %v, want ErrSchema", err)
	}
}

type cloudEvent = cloudevents.Event

func TestDuplicateMember(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"a":1,"b":2}`, ""},
		{`{"a":{"b":1},"b":2}`, ""},
		{`[{"a":1},{"a":2}]`, ""},
		{`{"a":[1,{"a":1},[]],"b":{}}`, ""},
		{`"s"`, ""},
		{`{"a":1,"a":2}`, "a"},
		{`{"a":[1,{"x":1,"x":2}]}`, "x"},
		{`{"a":{"b":{}},"c":[],"a":null}`, "a"},
	} {
		_, got, err := parseDoc([]byte(c.in))
		if err != nil || got != c.want {
			t.Errorf("parseDoc(%s) duplicate = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}
