package events

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	cloudevents "github.com/cloudevents/sdk-go/v2"
)

// ContentTypeStructured is the content type of a structured-mode CloudEvent.
const ContentTypeStructured = "application/cloudevents+json"

// extensionNameRE is the CloudEvents 1.0 rule for attribute names (sdk-go
// also accepts upper case, which the spec forbids).
var extensionNameRE = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// contextAttrs are the CloudEvents 1.0 attributes ibu reads as strings.
var contextAttrs = []string{"specversion", "id", "source", "type", "subject", "datacontenttype", "dataschema", "time"}

// DecodeStructured parses a structured-mode CloudEvent
// (application/cloudevents+json) strictly and validates it (see Validate).
//
// sdk-go's parser is lenient (duplicate keys, trailing bytes, numbers
// truncated to integers, untyped errors, and it panics on a non-string
// data_base64), so the raw JSON is checked first and sdk-go only parses what
// has passed. Data must be a JSON value, or data_base64 that decodes to one;
// it is always returned as plain JSON data. Every error is a *DecodeError
// wrapping exactly one sentinel error, and comes with a zero event: the
// error's Type and ID say what could be read.
func DecodeStructured(b []byte) (cloudevents.Event, error) {
	e, err := decodeStructured(b)
	if err != nil {
		return cloudevents.Event{}, err
	}
	return e, nil
}

func decodeStructured(b []byte) (cloudevents.Event, error) {
	var e cloudevents.Event
	if len(b) > MaxEventSize {
		return e, decodeErr(ErrTooLarge, "", "", "event is %d bytes, limit %d", len(b), MaxEventSize)
	}
	fields, dups, err := parseObject(b)
	if err != nil {
		return e, decodeErr(ErrNotJSON, "", "", "%v", err)
	}
	str := func(k string) string { s, _ := jsonString(fields[k]); return s }
	typ, id := Clip(str("type"), maxRefusedType), Clip(str("id"), maxRefusedID)

	// specversion first: it decides how everything else is read.
	sv, ok := jsonString(fields["specversion"])
	switch {
	case fields["specversion"] == nil:
		return e, decodeErr(ErrSpecVersion, typ, id, "specversion is missing")
	case !ok:
		return e, decodeErr(ErrSpecVersion, typ, id, "specversion is not a string")
	case dups["specversion"]:
		return e, decodeErr(ErrSpecVersion, typ, id, "specversion appears twice")
	case sv != SpecVersion:
		return e, decodeErr(ErrSpecVersion, typ, id, "specversion %q, want %q", Clip(sv, 16), SpecVersion)
	}
	if len(dups) > 0 {
		keys := make([]string, 0, len(dups))
		for k := range dups {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return e, decodeErr(ErrInvalidAttribute, typ, id, "attribute %q appears twice", Clip(keys[0], 64))
	}
	for _, k := range contextAttrs {
		raw := fields[k]
		if raw == nil {
			continue
		}
		s, ok := jsonString(raw)
		switch {
		case !ok:
			return e, decodeErr(ErrInvalidAttribute, typ, id, "attribute %q is not a string", k)
		case s == "" && (k == "id" || k == "source" || k == "type"):
			return e, decodeErr(ErrMissingAttribute, typ, id, "attribute %q is empty", k)
		case s == "":
			return e, decodeErr(ErrInvalidAttribute, typ, id, "attribute %q is empty", k)
		}
	}
	for _, k := range []string{"id", "source", "type"} {
		if fields[k] == nil {
			return e, decodeErr(ErrMissingAttribute, typ, id, "attribute %q is missing", k)
		}
	}
	if _, ok := Lookup(typ); !ok {
		return e, decodeErr(ErrUnknownType, typ, id, "type %q is not part of the ibu contract", typ)
	}
	if err := checkContext(fields); err != nil {
		return e, decodeErr(ErrInvalidAttribute, typ, id, "%v", err)
	}
	if ct := str("datacontenttype"); fields["datacontenttype"] != nil && !isJSONContentType(ct) {
		return e, decodeErr(ErrNotJSON, typ, id, "datacontenttype %q is not JSON", Clip(ct, 128))
	}
	if err := checkExtensions(fields); err != nil {
		return e, decodeErr(ErrInvalidAttribute, typ, id, "%v", err)
	}
	if raw := fields["data_base64"]; raw != nil {
		if fields["data"] != nil {
			return e, decodeErr(ErrInvalidAttribute, typ, id, "both data and data_base64 are present")
		}
		if err := checkBase64JSON(raw); err != nil {
			return e, decodeErr(ErrNotJSON, typ, id, "data_base64: %v", err)
		}
	}

	if err := json.Unmarshal(b, &e); err != nil {
		return e, decodeErr(ErrInvalidAttribute, typ, id, "cloudevents: %v", err)
	}
	// sdk-go must have read what we checked; a divergence (e.g. in how the
	// two parsers treat an escaped lone surrogate) would make the event say
	// something else than the bytes did.
	for _, a := range []struct{ name, got string }{
		{"id", e.ID()}, {"source", e.Source()}, {"type", e.Type()}, {"subject", e.Subject()},
		{"datacontenttype", e.DataContentType()}, {"dataschema", e.DataSchema()},
	} {
		if want := str(a.name); a.got != want {
			return e, decodeErr(ErrInvalidAttribute, typ, id, "attribute %q reads as %q, not %q", a.name, Clip(a.got, 64), Clip(want, 64))
		}
	}
	for k, v := range e.Extensions() {
		if got, isStr := v.(string); isStr && got != str(k) {
			return e, decodeErr(ErrInvalidAttribute, typ, id, "extension %q reads as %q, not %q", k, Clip(got, 64), Clip(str(k), 64))
		}
	}
	if e.DataBase64 {
		// Validated as JSON above: carry it as plain JSON from here on.
		e.DataBase64 = false
	}
	if err := Validate(e); err != nil {
		return e, err
	}
	return e, nil
}

// EncodeStructured validates e and encodes it as a structured-mode
// CloudEvent, with data as a JSON value. The error is a *DecodeError, as the
// checks are those of Validate.
func EncodeStructured(e cloudevents.Event) ([]byte, error) {
	if err := Validate(e); err != nil {
		return nil, err
	}
	if e.DataBase64 {
		e = e.Clone()
		e.DataBase64 = false // the data is JSON: send it as such
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, decodeErr(ErrInvalidAttribute, e.Type(), e.ID(), "encode: %v", err)
	}
	if len(b) > MaxEventSize {
		return nil, decodeErr(ErrTooLarge, e.Type(), e.ID(), "encoded event is %d bytes, limit %d", len(b), MaxEventSize)
	}
	return b, nil
}

// parseObject splits a JSON object into its members, noting duplicate keys.
// It refuses invalid UTF-8 (RFC 8259 requires UTF-8; encoding/json would
// silently replace it) and anything after the object.
func parseObject(b []byte) (map[string]json.RawMessage, map[string]bool, error) {
	if !utf8.Valid(b) {
		return nil, nil, fmt.Errorf("not valid UTF-8")
	}
	if !json.Valid(b) {
		return nil, nil, fmt.Errorf("not a single valid JSON value")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("not a JSON object")
	}
	fields := map[string]json.RawMessage{}
	dups := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("object key is not a string")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, err
		}
		if _, seen := fields[key]; seen {
			dups[key] = true
		}
		fields[key] = raw
	}
	return fields, dups, nil
}

// jsonString decodes raw if it is a JSON string (null is not).
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// checkContext checks the formats of the context attributes that sdk-go
// would otherwise drop or re-render silently.
func checkContext(fields map[string]json.RawMessage) error {
	if s, ok := jsonString(fields["source"]); ok {
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("source is not a URI reference: %v", err)
		}
		if u.String() != s {
			// sdk-go re-renders the source: only a canonical one survives
			// a round trip unchanged.
			return fmt.Errorf("source %q is not in canonical form (%q)", Clip(s, 128), Clip(u.String(), 128))
		}
	}
	if s, ok := jsonString(fields["dataschema"]); ok {
		u, err := url.Parse(s)
		if err != nil || !u.IsAbs() || u.String() != s {
			return fmt.Errorf("dataschema %q is not a canonical absolute URI", Clip(s, 128))
		}
	}
	if s, ok := jsonString(fields["time"]); ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("time is not RFC 3339: %v", err)
		}
		// sdk-go re-encodes the time in UTC: refuse one that has no UTC
		// form in RFC 3339 (year 0 with a positive offset, 9999 with a
		// negative one).
		if _, err := time.Parse(time.RFC3339Nano, t.UTC().Format(time.RFC3339Nano)); err != nil {
			return fmt.Errorf("time %q is out of range", s)
		}
	}
	return nil
}

// checkExtensions checks every member that is not a CloudEvents 1.0
// attribute or data: a valid extension name and a string, boolean or 32-bit
// integer value (sdk-go would truncate 1.5 to 1, and refuse objects with an
// untyped error).
func checkExtensions(fields map[string]json.RawMessage) error {
	for k, raw := range fields {
		switch k {
		case "specversion", "id", "source", "type", "subject", "datacontenttype", "dataschema", "time", "data", "data_base64":
			continue
		case "schemaurl", "datacontentencoding":
			return fmt.Errorf("attribute %q is CloudEvents 0.3, not 1.0", k)
		}
		if !extensionNameRE.MatchString(k) {
			return fmt.Errorf("extension name %q: want 1-20 lower-case letters or digits", Clip(k, 64))
		}
		switch {
		case raw[0] == '"', string(raw) == "true", string(raw) == "false":
		case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
			if _, err := strconv.ParseInt(string(raw), 10, 32); err != nil {
				return fmt.Errorf("extension %q: %s is not a 32-bit integer", k, Clip(string(raw), 32))
			}
		default:
			return fmt.Errorf("extension %q is not a string, boolean or integer", k)
		}
	}
	return nil
}

// checkBase64JSON checks that data_base64 is a base64 string of JSON.
func checkBase64JSON(raw json.RawMessage) error {
	s, ok := jsonString(raw)
	if !ok {
		return fmt.Errorf("not a string")
	}
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("not base64: %v", err)
	}
	if !utf8.Valid(data) || !json.Valid(data) {
		return fmt.Errorf("decodes to %d bytes that are not JSON", len(data))
	}
	return nil
}
