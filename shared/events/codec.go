package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
)

// SpecVersion is the only CloudEvents version ibu speaks.
const SpecVersion = "1.0"

// Data is implemented by every event payload struct of the contract.
type Data interface {
	EventType() string
}

// New builds a CloudEvent carrying data, with a fresh id, the current time,
// JSON content type and the given source (e.g. /clusters/sno1/node-agent) and
// subject (the cluster or plan id). It validates the result against the
// type's schema, so a producer cannot emit what a consumer would refuse.
func New(source, subject string, data Data) (cloudevents.Event, error) {
	if data == nil {
		return cloudevents.Event{}, decodeErr(ErrSchema, "", "", "event has no data")
	}
	e := cloudevents.NewEvent(SpecVersion)
	e.SetID(uuid.NewString())
	e.SetType(data.EventType())
	e.SetSource(source)
	e.SetSubject(subject)
	e.SetTime(time.Now().UTC())
	if err := e.SetData(cloudevents.ApplicationJSON, data); err != nil {
		return e, fmt.Errorf("encode %s data: %w", data.EventType(), err)
	}
	if err := Validate(e); err != nil {
		return e, err
	}
	return e, nil
}

// Validate checks an event strictly: specversion 1.0, id, source and type
// present, a registered type, JSON data within MaxEventSize that matches the
// type's schema and decodes into the type's Go struct. The error is a
// *DecodeError wrapping one of the package's sentinel errors.
func Validate(e cloudevents.Event) error {
	if e.Context == nil {
		return decodeErr(ErrSpecVersion, "", "", "event has no context")
	}
	id, typ := e.ID(), e.Type()
	if v := e.SpecVersion(); v != SpecVersion {
		return decodeErr(ErrSpecVersion, typ, id, "specversion %q, want %q", v, SpecVersion)
	}
	for _, a := range []struct{ name, val string }{{"id", id}, {"source", e.Source()}, {"type", typ}} {
		if a.val == "" {
			return decodeErr(ErrMissingAttribute, typ, id, "attribute %q is empty", a.name)
		}
	}
	spec, ok := Lookup(typ)
	if !ok {
		return decodeErr(ErrUnknownType, typ, id, "type %q is not part of the ibu contract", typ)
	}
	if ct := e.DataContentType(); ct != "" && !isJSONContentType(ct) {
		return decodeErr(ErrNotJSON, typ, id, "datacontenttype %q is not JSON", ct)
	}
	if err := validateData(spec, e.Data()); err != nil {
		err.ID = id
		return err
	}
	return nil
}

// ValidateData checks a JSON document against the schema and Go type of the
// contract type typ: the check Validate applies to an event's data. KV values
// that carry a contract type (IBU_DESIRED holds DesiredStageSet documents)
// are checked with it, so a hand-written key is refused like a bad event.
func ValidateData(typ string, data []byte) error {
	spec, ok := Lookup(typ)
	if !ok {
		return decodeErr(ErrUnknownType, typ, "", "type %q is not part of the ibu contract", typ)
	}
	if err := validateData(spec, data); err != nil {
		return err
	}
	return nil
}

func validateData(spec Spec, data []byte) *DecodeError {
	typ := spec.Type
	fail := func(kind error, format string, args ...any) *DecodeError {
		return &DecodeError{Kind: kind, Type: typ, Detail: fmt.Sprintf(format, args...)}
	}
	if len(data) > MaxEventSize {
		return fail(ErrTooLarge, "data is %d bytes, limit %d", len(data), MaxEventSize)
	}
	if len(data) == 0 {
		return fail(ErrSchema, "event has no data")
	}
	// json.Valid also refuses trailing data, which a Decoder's More() misses
	// when it starts with '}' or ']'.
	if !utf8.Valid(data) || !json.Valid(data) {
		return fail(ErrNotJSON, "data is not a single valid UTF-8 JSON value")
	}
	doc, dup, err := parseDoc(data)
	if err != nil {
		return fail(ErrNotJSON, "%v", err)
	}
	if dup != "" {
		// Parsers disagree on which of two same-named members wins (Go takes
		// the last, others the first): refuse rather than guess.
		return fail(ErrSchema, "member %q appears twice in an object", Clip(dup, 64))
	}
	sch, err := schemaFor(typ)
	if err != nil {
		return fail(ErrUnknownType, "%v", err)
	}
	if err := sch.Validate(doc); err != nil {
		return fail(ErrSchema, "%v", err)
	}
	// The schema and the Go struct are kept in step by tests; decoding here
	// as well guarantees that DataAs succeeds on any valid event (JSON Schema
	// accepts 1.0 as an integer, encoding/json does not).
	if err := decodeData(data, spec.NewData()); err != nil {
		return fail(ErrSchema, "decode into Go type: %v", err)
	}
	return nil
}

// isJSONContentType accepts exactly the media types that sdk-go treats as
// JSON in structured mode, so that an event valid here survives
// EncodeStructured and DecodeStructured (sdk-go writes data of any other
// type, "+json" suffixes included, as a string). Parameters such as charset
// are allowed.
func isJSONContentType(ct string) bool {
	mt := ct
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		mt = strings.TrimSpace(ct[:i])
	}
	return mt == "application/json" || mt == "text/json"
}

// decodeData decodes JSON data into v (a pointer), refusing unknown fields
// and trailing data.
func decodeData(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

// DataAs decodes a validated event's data into T. Unknown fields were already
// refused by the schema (additionalProperties is false throughout: a type's
// data changes only with a new version suffix), so a misspelt field in a
// hand-written request is an error, never silently ignored. If T is a
// contract type, the event must be of T's type: decoding a heartbeat as a
// plan request would otherwise give a zero struct without error.
func DataAs[T any](e cloudevents.Event) (T, error) {
	var v T
	if want, ok := eventTypeOf[T](); ok && want != e.Type() {
		return v, decodeErr(ErrSchema, e.Type(), e.ID(), "data is %s, not %s", e.Type(), want)
	}
	if err := decodeData(e.Data(), &v); err != nil {
		return v, decodeErr(ErrSchema, e.Type(), e.ID(), "decode data: %v", err)
	}
	return v, nil
}

// eventTypeOf returns the event type of T (or of what T points to) if it is
// a contract type. It calls EventType on a fresh value, never on a nil
// pointer.
func eventTypeOf[T any]() (string, bool) {
	t := reflect.TypeFor[T]()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	d, ok := reflect.New(t).Interface().(Data)
	if !ok {
		return "", false
	}
	return d.EventType(), true
}
