package events

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

type transitionError struct{}

func (transitionError) Error() string  { return "Upgrade requested but Prep has not completed" }
func (transitionError) Reason() string { return "InvalidTransition" }

func TestRejectionOfDecodeError(t *testing.T) {
	_, cause := DecodeStructured([]byte(`{"specversion":"1.0","id":"abc","source":"/x","type":"dev.ibu.nope.v1","data":{}}`))
	r := RejectionOf(ServicePrecache, "ibu.task.precache.sno-001", nil, cause)
	r.ClusterID = "sno-001"
	if r.Reason != "UnknownType" || r.RefusedType != "dev.ibu.nope.v1" || r.RefusedID != "abc" {
		t.Fatalf("RejectionOf = %+v", r)
	}
	e, err := NewRejected("/hub/precache", r)
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject() != "sno-001" {
		t.Errorf("subject %q", e.Subject())
	}
	if subj, err := r.Subject(); err != nil || subj != "ibu.event.sno-001.rejected" {
		t.Errorf("Subject() = %s, %v", subj, err)
	}
}

func TestRejectionOfOwnReason(t *testing.T) {
	refused, err := New("/hub/scheduler", "sno-001", exampleFor(t, TypeDesiredStageSet))
	if err != nil {
		t.Fatal(err)
	}
	cause := fmt.Errorf("apply desired stage: %w", transitionError{})
	r := RejectionOf(ServiceNodeAgent, "$KV.IBU_DESIRED.sno-001", &refused, cause)
	r.PlanID = "upgrade-4-16-3"
	if r.Reason != "InvalidTransition" || r.RefusedID != refused.ID() || r.RefusedType != TypeDesiredStageSet {
		t.Fatalf("RejectionOf = %+v", r)
	}
	e, err := NewRejected("/clusters/sno-001/node-agent", r)
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject() != "upgrade-4-16-3" {
		t.Errorf("subject %q", e.Subject())
	}
	if subj, _ := r.Subject(); subj != "ibu.event.plan.upgrade-4-16-3.rejected" {
		t.Errorf("Subject() = %s", subj)
	}
}

// TestRejectionOfHostileInput: whatever a refused message contained, the
// Rejected built from it is valid.
func TestRejectionOfHostileInput(t *testing.T) {
	long := strings.Repeat("é\xff", 5000)
	cause := &DecodeError{Kind: ErrSchema, Type: long, ID: long, Detail: long}
	r := RejectionOf(ServiceHealth, long, nil, cause)
	r.ClusterID = "sno-001"
	if _, err := NewRejected("/hub/health", r); err != nil {
		t.Fatal(err)
	}
	if !utf8.ValidString(r.Message) || utf8.RuneCountInString(r.Message) > maxMessage {
		t.Errorf("message not clipped: %d runes", utf8.RuneCountInString(r.Message))
	}
	r = RejectionOf(ServiceHealth, "s", nil, errors.New("plain"))
	if r.Reason != "Invalid" || r.Message != "plain" {
		t.Errorf("%+v", r)
	}
	if _, err := (Rejected{}).Subject(); err == nil {
		t.Error("Subject of a Rejected about nothing")
	}
	if _, err := NewRejected("/hub/health", Rejected{Service: ServiceHealth, Reason: "X", Message: "m", RefusedSubject: "s"}); !isOnly(err, ErrSchema) {
		t.Errorf("Rejected about nothing: %v", err)
	}
}
