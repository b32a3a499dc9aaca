package telemetry

import (
	"context"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"go.opentelemetry.io/otel/propagation"
)

// Names of the CloudEvents distributed-tracing extension attributes.
const (
	ExtTraceParent = "traceparent"
	ExtTraceState  = "tracestate"
)

// eventCarrier adapts a CloudEvent's extensions to a TextMapCarrier, limited
// to the two keys of the distributed-tracing extension.
type eventCarrier struct{ e *cloudevents.Event }

func (c eventCarrier) Get(key string) string {
	if key != ExtTraceParent && key != ExtTraceState {
		return ""
	}
	if c.e.Context == nil {
		return ""
	}
	v, ok := c.e.Extensions()[key]
	if !ok {
		return ""
	}
	s, _ := v.(string)
	return s
}

func (c eventCarrier) Set(key, value string) {
	if key == ExtTraceParent || key == ExtTraceState {
		c.e.SetExtension(key, value)
	}
}

func (c eventCarrier) Keys() []string {
	var keys []string
	for _, k := range []string{ExtTraceParent, ExtTraceState} {
		if c.Get(k) != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// InjectEvent writes the span context of ctx into e's traceparent and
// tracestate extensions using the W3C Trace Context format. It does nothing
// when ctx carries no valid span context. Note that events share their
// context with copies, so clone an event you do not own before injecting.
func InjectEvent(ctx context.Context, e *cloudevents.Event) {
	if e == nil || e.Context == nil {
		return
	}
	propagation.TraceContext{}.Inject(ctx, eventCarrier{e})
}

// ExtractEvent returns ctx with the remote span context found in e's
// traceparent/tracestate extensions; ctx is returned unchanged when e has
// none or they are malformed.
func ExtractEvent(ctx context.Context, e cloudevents.Event) context.Context {
	if e.Context == nil {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, eventCarrier{&e})
}
