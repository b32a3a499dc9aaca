package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestDerivedContextsAreStableAndDistinct(t *testing.T) {
	a := ClusterUpgrade("p1", "sno-1")
	if !a.IsValid() || !a.IsSampled() || !a.IsRemote() {
		t.Fatalf("ClusterUpgrade = %+v", a)
	}
	if !a.Equal(ClusterUpgrade("p1", "sno-1")) {
		t.Fatal("ClusterUpgrade is not stable")
	}
	seen := map[trace.TraceID]string{}
	for _, sc := range []struct {
		what string
		sc   trace.SpanContext
	}{{"p1/sno-1", a}, {"p1/sno-2", ClusterUpgrade("p1", "sno-2")}, {"p2/sno-1", ClusterUpgrade("p2", "sno-1")}, {"plan p1", PlanSpan("p1")}} {
		if prev, ok := seen[sc.sc.TraceID()]; ok {
			t.Errorf("%s and %s share trace %s", prev, sc.what, sc.sc.TraceID())
		}
		seen[sc.sc.TraceID()] = sc.what
	}
	for _, sc := range []trace.SpanContext{ClusterUpgrade("", "c"), ClusterUpgrade("p", ""), PlanSpan("")} {
		if sc.IsValid() {
			t.Errorf("empty id gave a valid context %v", sc)
		}
	}
	if ctx := WithParent(context.Background(), trace.SpanContext{}); trace.SpanContextFromContext(ctx).IsValid() {
		t.Error("WithParent of an invalid context set a parent")
	}
}

// A root span started with WithFixedIDs takes the derived ids; the next
// one, and children, get random ones.
func TestFixedIDsRootSpan(t *testing.T) {
	var buf bytes.Buffer
	p, err := NewProvider(context.Background(), Config{Exporter: "file", Writer: &buf})
	if err != nil {
		t.Fatal(err)
	}
	want := ClusterUpgrade("p1", "sno-1")
	ctx, root := p.Tracer("t").Start(WithFixedIDs(context.Background(), want), "upgrade sno-1", trace.WithNewRoot())
	_, child := p.Tracer("t").Start(ctx, "child")
	_, other := p.Tracer("t").Start(context.Background(), "other")
	child.End()
	root.End()
	other.End()
	if got := root.SpanContext(); got.TraceID() != want.TraceID() || got.SpanID() != want.SpanID() {
		t.Fatalf("root span %v, want the ids of %v", got, want)
	}
	if c := child.SpanContext(); c.TraceID() != want.TraceID() || c.SpanID() == want.SpanID() || !c.SpanID().IsValid() {
		t.Fatalf("child span %v", c)
	}
	if o := other.SpanContext(); o.TraceID() == want.TraceID() || !o.TraceID().IsValid() {
		t.Fatalf("unrelated root span %v shares the fixed trace", o)
	}
	if err := p.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&buf)
	n := 0
	for dec.More() {
		var s struct{ Name string }
		if err := dec.Decode(&s); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("exported %d spans, want 3", n)
	}
}
