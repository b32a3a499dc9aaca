package telemetry

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The trace of a cluster's pass through a plan has ids derived from the
// plan and cluster ids, so every process that works for the cluster (the
// scheduler, the node agent before and after its reboot, each service)
// finds the same trace without storing or passing anything, and a
// scheduler replica that restarts can still emit the root span.

// ClusterUpgrade returns the span context of the root span of cluster's
// upgrade in plan: the parent of the agent's stage spans. It is invalid
// when plan or cluster is empty.
func ClusterUpgrade(plan, cluster string) trace.SpanContext {
	if plan == "" || cluster == "" {
		return trace.SpanContext{}
	}
	return derived("ibu/cluster-upgrade/" + plan + "/" + cluster)
}

// PlanSpan returns the span context of plan's span, which links to the
// traces of its clusters.
func PlanSpan(plan string) trace.SpanContext {
	if plan == "" {
		return trace.SpanContext{}
	}
	return derived("ibu/plan/" + plan)
}

func derived(key string) trace.SpanContext {
	sum := sha256.Sum256([]byte(key))
	var tid trace.TraceID
	var sid trace.SpanID
	copy(tid[:], sum[:16])
	copy(sid[:], sum[16:24])
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
}

// WithParent returns ctx with sc as the remote parent of the next span
// started from it; ctx is unchanged when sc is invalid.
func WithParent(ctx context.Context, sc trace.SpanContext) context.Context {
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

type fixedIDsKey struct{}

// WithFixedIDs makes the next root span started from ctx (with
// trace.WithNewRoot) by a provider of NewProvider take the ids of sc. It
// is how the derived root spans (ClusterUpgrade, PlanSpan) are emitted
// once their work is over, by whichever process sees it end.
func WithFixedIDs(ctx context.Context, sc trace.SpanContext) context.Context {
	return context.WithValue(ctx, fixedIDsKey{}, sc)
}

// idGenerator makes random ids, except for root spans whose context asks
// for fixed ids.
type idGenerator struct{}

var _ sdktrace.IDGenerator = idGenerator{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if sc, ok := ctx.Value(fixedIDsKey{}).(trace.SpanContext); ok && sc.IsValid() {
		return sc.TraceID(), sc.SpanID()
	}
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, randomSpanID()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return randomSpanID() }

func randomSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
