package events

import (
	"errors"
	"fmt"
)

// Sentinel errors, one per way an incoming event can be malformed. Every
// decode or validation failure wraps exactly one of them, so a consumer can
// tell them apart with errors.Is and report a specific reason.
var (
	ErrSpecVersion      = errors.New("unsupported specversion")
	ErrMissingAttribute = errors.New("missing required attribute")
	ErrInvalidAttribute = errors.New("invalid attribute") // present but malformed: wrong JSON type, bad time, duplicate, bad extension
	ErrUnknownType      = errors.New("unknown event type")
	ErrSchema           = errors.New("data does not match schema")
	ErrTooLarge         = errors.New("event too large")
	ErrNotJSON          = errors.New("data is not JSON")
)

// MaxEventSize bounds an encoded event (attributes plus data) on the wire.
const MaxEventSize = 1 << 20

// DecodeError says why an event was refused. Reason is a short machine-readable
// word (the same as the sentinel's), Detail a human explanation.
type DecodeError struct {
	Kind   error  // one of the sentinel errors above
	Type   string // the event's type attribute, if known
	ID     string // the event's id attribute, if known
	Detail string
}

func (e *DecodeError) Error() string {
	s := e.Kind.Error()
	if e.Type != "" {
		s += " (type " + e.Type + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *DecodeError) Unwrap() error { return e.Kind }

// Reason returns a stable CamelCase word for the error's kind, suitable for a
// status condition reason or a DLQ header.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrSpecVersion):
		return "UnsupportedSpecVersion"
	case errors.Is(err, ErrMissingAttribute):
		return "MissingAttribute"
	case errors.Is(err, ErrInvalidAttribute):
		return "InvalidAttribute"
	case errors.Is(err, ErrUnknownType):
		return "UnknownType"
	case errors.Is(err, ErrSchema):
		return "SchemaMismatch"
	case errors.Is(err, ErrTooLarge):
		return "TooLarge"
	case errors.Is(err, ErrNotJSON):
		return "NotJSON"
	case errors.Is(err, ErrClusterMismatch):
		return "ClusterMismatch"
	default:
		return "Invalid"
	}
}

func decodeErr(kind error, typ, id, format string, args ...any) error {
	return &DecodeError{Kind: kind, Type: typ, ID: id, Detail: fmt.Sprintf(format, args...)}
}
