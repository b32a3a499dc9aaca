package bus

import (
	"context"
	"fmt"

	"ibu.dev/shared/events"
)

// EmitOption configures one Emit.
type EmitOption func(*emitOptions)

type emitOptions struct {
	id string
}

// EmitID fixes the event's id (default: a new one), so that an event sent
// again, e.g. after a crash, is dropped by JetStream's dedup.
func EmitID(id string) EmitOption {
	return func(o *emitOptions) { o.id = id }
}

// Emit publishes one event of the contract: data from source about id (a
// cluster id for cluster events and tasks, a plan id for plan events;
// requests ignore it, see events.SubjectFor), on its type's subject.
func (p *Publisher) Emit(ctx context.Context, source, about string, data events.Data, opts ...EmitOption) error {
	var o emitOptions
	for _, f := range opts {
		f(&o)
	}
	e, err := events.New(source, about, data)
	if err != nil {
		return &buildError{fmt.Errorf("build %s: %w", data.EventType(), err)}
	}
	if o.id != "" {
		e.SetID(o.id)
	}
	subject, err := events.SubjectFor(e.Type(), about)
	if err != nil {
		return &buildError{err}
	}
	if _, err := p.Publish(ctx, subject, e); err != nil {
		return fmt.Errorf("publish %s: %w", e.Type(), err)
	}
	return nil
}

// buildError: the event could not be built (its data or its subject is
// not of the contract); sending it again cannot help.
type buildError struct{ err error }

func (e *buildError) Error() string { return e.err.Error() }
func (e *buildError) Unwrap() error { return e.err }
