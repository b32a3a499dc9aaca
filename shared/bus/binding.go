package bus

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"

	"ibu.dev/shared/events"
)

// Header names of the CloudEvents NATS binding as ibu uses it.
const (
	// HeaderPrefix starts the header of every attribute and extension in
	// binary content mode: ce-id, ce-source, ce-traceparent, ...
	HeaderPrefix = "ce-"
	// HeaderContentType carries datacontenttype in binary mode, or
	// ContentTypeStructured in structured mode.
	HeaderContentType = "Content-Type"
	// HeaderMsgID is JetStream's deduplication id; ibu sets it to the
	// event id.
	HeaderMsgID = "Nats-Msg-Id"
	// ContentTypeStructured marks a structured-mode message: the whole
	// event as JSON in the payload.
	ContentTypeStructured = "application/cloudevents+json"
)

// ToMsg encodes e for subject in binary content mode: every attribute and
// extension becomes a ce-<name> header (values percent-encoded like the HTTP
// binding does, time as RFC 3339), datacontenttype becomes Content-Type, the
// data is the payload, and Nats-Msg-Id is the event id.
func ToMsg(subject string, e cloudevents.Event) (*nats.Msg, error) {
	if e.Context == nil {
		return nil, fmt.Errorf("encode event for %s: event has no context", subject)
	}
	id := e.ID()
	if id == "" {
		return nil, fmt.Errorf("encode event for %s: %w", subject,
			&events.DecodeError{Kind: events.ErrMissingAttribute, Type: e.Type(), Detail: `attribute "id" is empty`})
	}
	exts := e.Extensions()
	h := make(nats.Header, 10+len(exts))
	// One backing array for all the single-value slices.
	vals := make([]string, 0, 10+len(exts))
	set := func(name, value string) {
		vals = append(vals, encodeHeaderValue(value))
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set("ce-specversion", e.SpecVersion())
	set("ce-id", id)
	set("ce-source", e.Source())
	set("ce-type", e.Type())
	if s := e.Subject(); s != "" {
		set("ce-subject", s)
	}
	if t := e.Time(); !t.IsZero() {
		set("ce-time", t.UTC().Format(time.RFC3339Nano))
	}
	if s := e.DataSchema(); s != "" {
		set("ce-dataschema", s)
	}
	for name, v := range exts {
		s, err := types.Format(v)
		if err != nil {
			return nil, fmt.Errorf("encode event %s for %s: extension %s: %w", id, subject, name, err)
		}
		set(HeaderPrefix+name, s)
	}
	if ct := e.DataContentType(); ct != "" {
		set(HeaderContentType, ct)
	}
	set(HeaderMsgID, id)
	data := e.Data()
	if size := headerSize(h) + len(data); size > events.MaxEventSize {
		return nil, fmt.Errorf("encode event %s for %s: %w", id, subject, &events.DecodeError{
			Kind: events.ErrTooLarge, Type: e.Type(), ID: id,
			Detail: fmt.Sprintf("encoded event is %d bytes, limit %d", size, events.MaxEventSize),
		})
	}
	return &nats.Msg{Subject: subject, Header: h, Data: data}, nil
}

// FromMsg decodes and validates the CloudEvent in msg; see FromHeaders.
func FromMsg(msg *nats.Msg) (cloudevents.Event, error) {
	if msg == nil {
		return cloudevents.Event{}, &events.DecodeError{Kind: events.ErrNotJSON, Detail: "no message"}
	}
	return FromHeaders(msg.Header, msg.Data)
}

// FromHeaders decodes the CloudEvent carried by a NATS message's headers and
// payload and validates it with events.Validate. It accepts binary content
// mode (ce-* headers) and structured mode (Content-Type
// application/cloudevents+json, or no ce-* headers and a JSON event as the
// payload, which is what `nats pub` of a JSON CloudEvent sends). Any error is
// an *events.DecodeError.
func FromHeaders(h nats.Header, data []byte) (cloudevents.Event, error) {
	if size := headerSize(h) + len(data); size > events.MaxEventSize {
		return cloudevents.Event{}, &events.DecodeError{
			Kind:   events.ErrTooLarge,
			Detail: fmt.Sprintf("message is %d bytes, limit %d", size, events.MaxEventSize),
		}
	}
	var (
		e   cloudevents.Event
		err error
	)
	contentType, binary := "", false
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		if strings.EqualFold(k, HeaderContentType) {
			contentType = vs[0]
		} else if hasPrefixFold(k, HeaderPrefix) {
			binary = true
		}
	}
	if binary && !isStructuredContentType(contentType) {
		e, err = decodeBinary(h, contentType, data)
	} else {
		e, err = events.DecodeStructured(data)
	}
	if err != nil {
		return e, asDecodeError(err)
	}
	if err := events.Validate(e); err != nil {
		return e, asDecodeError(err)
	}
	return e, nil
}

// asDecodeError makes sure every decode failure is an *events.DecodeError.
func asDecodeError(err error) error {
	var de *events.DecodeError
	if errors.As(err, &de) {
		return err
	}
	return &events.DecodeError{Kind: events.ErrNotJSON, Detail: err.Error()}
}

func decodeBinary(h nats.Header, contentType string, data []byte) (cloudevents.Event, error) {
	// Collect the ce- headers first and interpret them in a fixed order, so
	// that a message with several faults always gets the same verdict.
	attrs := make(map[string]string, len(h))
	var extNames []string
	for k, vs := range h {
		if len(vs) == 0 || !hasPrefixFold(k, HeaderPrefix) {
			continue
		}
		name := strings.ToLower(k[len(HeaderPrefix):])
		if _, dup := attrs[name]; dup || len(vs) > 1 {
			return cloudevents.Event{}, invalidAttr(name, "header given more than once")
		}
		attrs[name] = vs[0]
		if !isCoreAttribute(name) {
			extNames = append(extNames, name)
		}
	}
	if v, _ := decodeHeaderValue(attrs["specversion"]); v != events.SpecVersion {
		return cloudevents.Event{}, &events.DecodeError{
			Kind:   events.ErrSpecVersion,
			Detail: fmt.Sprintf("ce-specversion %q, want %q", v, events.SpecVersion),
		}
	}
	ec := &cloudevents.EventContextV1{}
	for _, name := range coreAttributes {
		raw, ok := attrs[name]
		if !ok {
			continue
		}
		v, err := decodeHeaderValue(raw)
		if err == nil && v != "" {
			switch name {
			case "id":
				err = ec.SetID(v)
			case "source":
				err = ec.SetSource(v)
			case "type":
				err = ec.SetType(v)
			case "subject":
				err = ec.SetSubject(v)
			case "time":
				var t time.Time
				if t, err = time.Parse(time.RFC3339Nano, v); err == nil {
					err = ec.SetTime(t)
				}
			case "dataschema":
				err = ec.SetDataSchema(v)
			case "datacontenttype":
				// Content-Type carries it in binary mode; accept the
				// header only when Content-Type is absent.
				if contentType == "" {
					contentType = raw
				}
			}
		}
		if err != nil {
			return cloudevents.Event{}, invalidAttr(name, err.Error())
		}
	}
	sort.Strings(extNames)
	for _, name := range extNames {
		v, err := decodeHeaderValue(attrs[name])
		if err == nil {
			if name == "" {
				err = errors.New("empty extension name")
			} else {
				err = ec.SetExtension(name, v)
			}
		}
		if err != nil {
			return cloudevents.Event{}, invalidAttr(name, err.Error())
		}
	}
	if contentType != "" {
		ct, err := decodeHeaderValue(contentType)
		if err == nil {
			err = ec.SetDataContentType(ct)
		}
		if err != nil {
			return cloudevents.Event{}, invalidAttr("datacontenttype", err.Error())
		}
	}
	return cloudevents.Event{Context: ec, DataEncoded: data}, nil
}

// coreAttributes are the CloudEvents 1.0 context attributes other than
// specversion, in the order decodeBinary interprets them.
var coreAttributes = []string{"id", "source", "type", "subject", "time", "dataschema", "datacontenttype"}

func isCoreAttribute(name string) bool {
	return name == "specversion" || slices.Contains(coreAttributes, name)
}

// invalidAttr reports an attribute header that is present but unusable.
// events has no sentinel of its own for that, so it is reported as a
// missing attribute (the attribute is missing in usable form).
func invalidAttr(name, detail string) error {
	return &events.DecodeError{
		Kind:   events.ErrInvalidAttribute,
		Detail: fmt.Sprintf("attribute %q: %s", name, detail),
	}
}

func isStructuredContentType(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), ContentTypeStructured)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// headerSize approximates the wire size of h ("Key: value\r\n" per value).
func headerSize(h nats.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// encodeHeaderValue percent-encodes what cannot travel in a header value:
// space, double quote, percent and every byte outside printable US-ASCII
// (the rule of the CloudEvents HTTP binding, §3.1.3.2).
func encodeHeaderValue(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if mustEscape(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if mustEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func mustEscape(c byte) bool { return c <= ' ' || c > '~' || c == '"' || c == '%' }

// decodeHeaderValue reverses encodeHeaderValue; the result must be UTF-8.
func decodeHeaderValue(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		if !utf8.ValidString(s) {
			return "", errors.New("value is not UTF-8")
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("truncated percent-encoding")
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("invalid percent-encoding %q", s[i:i+3])
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	if !utf8.Valid(b) {
		return "", errors.New("value is not UTF-8")
	}
	return string(b), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
