package events

import (
	"errors"
	"fmt"
	"regexp"

	cloudevents "github.com/cloudevents/sdk-go/v2"
)

// TypeRejected is emitted by any service that refuses a message, next to the
// copy it puts on its DLQ, so the refusal shows in the cluster's (or plan's)
// event history where users look.
const TypeRejected = "dev.ibu.rejected.v1"

// Limits of Rejected's strings, as in its schema; RejectionOf clips to them.
const (
	maxMessage        = 4096
	maxRefusedType    = 256
	maxRefusedID      = 256
	maxRefusedSubject = 512
)

func init() {
	// Scope is cluster: most refusals concern a cluster. A refusal about a
	// plan travels on PlanEventSubject(plan, "rejected"); Rejected.Subject
	// picks the right one.
	register(Spec{Type: TypeRejected, Name: "rejected", Scope: ScopeCluster,
		Description: "a service refused a message: what, who, why",
		new:         func() any { return new(Rejected) }})
}

// Rejected says that Service refused a message, and why. It names the cluster
// or the plan the refused message was about (at least one), and the refused
// message by type, id or subject (at least one; a message that did not decode
// may have no usable type or id).
type Rejected struct {
	ClusterID      string `json:"clusterId,omitempty"`
	PlanID         string `json:"planId,omitempty"`
	RefusedType    string `json:"refusedType,omitempty"`
	RefusedID      string `json:"refusedId,omitempty"`
	RefusedSubject string `json:"refusedSubject,omitempty"`
	Service        string `json:"service"`
	Reason         string `json:"reason"` // CamelCase, e.g. SchemaMismatch, InvalidTransition
	Message        string `json:"message"`
}

// EventType implements Data.
func (Rejected) EventType() string { return TypeRejected }

// Subject returns the subject the event travels on: the cluster's events if
// ClusterID is set, else the plan's.
func (r Rejected) Subject() (string, error) {
	switch {
	case r.ClusterID != "":
		return ClusterEventSubject(r.ClusterID, "rejected")
	case r.PlanID != "":
		return PlanEventSubject(r.PlanID, "rejected")
	default:
		return "", errors.New("rejected event names neither a cluster nor a plan")
	}
}

// NewRejected builds the dev.ibu.rejected.v1 event for r, with the cluster
// (or else the plan) id as CloudEvents subject. Publish it on r.Subject().
func NewRejected(source string, r Rejected) (cloudevents.Event, error) {
	about := r.ClusterID
	if about == "" {
		about = r.PlanID
	}
	e, err := New(source, about, r)
	if err != nil {
		return e, fmt.Errorf("build rejected event: %w", err)
	}
	return e, nil
}

// reasoner is implemented by errors that carry their own CamelCase reason,
// such as an invalid stage transition.
type reasoner interface{ Reason() string }

var reasonRE = regexp.MustCompile(`^[A-Z][A-Za-z0-9]{0,127}$`)

// RejectionOf describes service's refusal of the message it received on
// refusedSubject because of cause. refused is the decoded message, or nil if
// it did not decode (its type and id then come from a *DecodeError, if
// known). The reason is cause's own Reason() if it has one, else Reason(cause).
// The caller sets ClusterID or PlanID.
func RejectionOf(service, refusedSubject string, refused *cloudevents.Event, cause error) Rejected {
	r := Rejected{Service: service, RefusedSubject: Clip(refusedSubject, maxRefusedSubject)}
	var de *DecodeError
	switch {
	case refused != nil:
		r.RefusedType, r.RefusedID = refused.Type(), refused.ID()
	case errors.As(cause, &de):
		r.RefusedType, r.RefusedID = de.Type, de.ID
	}
	r.RefusedType, r.RefusedID = Clip(r.RefusedType, maxRefusedType), Clip(r.RefusedID, maxRefusedID)
	r.Reason = Reason(cause)
	var rs reasoner
	if errors.As(cause, &rs) && reasonRE.MatchString(rs.Reason()) {
		r.Reason = rs.Reason()
	}
	r.Message = "refused"
	if cause != nil {
		r.Message = Clip(cause.Error(), maxMessage)
	}
	return r
}
