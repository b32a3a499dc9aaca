package observability

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go/jetstream"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/agent/simspoke"
	"ibu.dev/node-agent/host/sim"
	"ibu.dev/services/precache/pullplan"
	"ibu.dev/services/scheduler/rollout"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/seedimage/seedsim"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/telemetry"
	"ibu.dev/shared/testkit/natstest"
	"ibu.dev/shared/testkit/registrytest"
)

const seedVersion = "4.16.9"

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// span is one received span with the service that sent it.
type span struct {
	service string
	*tracepb.Span
}

func (s span) traceID() string  { return hex.EncodeToString(s.TraceId) }
func (s span) spanID() string   { return hex.EncodeToString(s.SpanId) }
func (s span) parentID() string { return hex.EncodeToString(s.ParentSpanId) }

func (s span) attr(key string) string { return attrOf(s.Attributes, key) }

func attrOf(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

// receiver is an OTLP/HTTP trace receiver: it decodes each
// ExportTraceServiceRequest and keeps the spans.
type receiver struct {
	URL   string
	mu    sync.Mutex
	spans []span
}

func startReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var msg coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &msg); err != nil {
			t.Errorf("OTLP receiver: undecodable request: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.ResourceSpans {
			svc := attrOf(rs.GetResource().GetAttributes(), "service.name")
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					r.spans = append(r.spans, span{service: svc, Span: sp})
				}
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *receiver) all() []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]span(nil), r.spans...)
}

// tracers are the OTLP providers of the processes of the fleet: each its
// own service.name, as in production.
type tracers struct {
	agent, scheduler, audit, precache, health *telemetry.Provider
}

// newTracers points the standard OTEL_* environment at the receiver and
// builds one provider per service.
func newTracers(t *testing.T, r *receiver) tracers {
	t.Helper()
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.URL)
	mk := func(name string) *telemetry.Provider {
		p, err := telemetry.NewProvider(t.Context(), telemetry.Config{ServiceName: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
		return p
	}
	return tracers{agent: mk("ibu-agent"), scheduler: mk("ibu-scheduler"), audit: mk("ibu-audit"), precache: mk("ibu-precache"),
		health: mk("ibu-health")}
}

func (tr tracers) flush(t *testing.T) {
	t.Helper()
	for _, p := range []*telemetry.Provider{tr.agent, tr.scheduler, tr.audit, tr.precache, tr.health} {
		if err := p.ForceFlush(t.Context()); err != nil {
			t.Fatalf("flush spans: %v", err)
		}
	}
}

// fleetConfig shapes a test fleet.
type fleetConfig struct {
	n       int
	tracers *tracers
	metrics *telemetry.Metrics
	// precache runs the real precache service, its release images
	// pushed to the registry, and has the agents ask it for their pull
	// plans.
	precache bool
	// prepare may change a spoke before its agent starts.
	prepare func(f *fleet, id string, s *simspoke.Spoke)
}

type fleet struct {
	t       *testing.T
	js      jetstream.JetStream
	seedRef string
	images  []string
	ids     []string
	audit   *audit
}

// newFleet starts a hub, a registry with a seed, n node agents on
// simulated hosts, a scheduler, an audit consumer of IBU_EVENTS (a
// stand-in for any service: it consumes through bus.Consume and so joins
// the clusters' traces by itself) and, if asked, the precache service.
func newFleet(t *testing.T, c fleetConfig) *fleet {
	t.Helper()
	ctx := t.Context()
	_, js := natstest.StartHub(t)
	const regUser, regPass = "ibu", "s3cret"
	reg := registrytest.Start(t, registrytest.WithBasicAuth(regUser, regPass))
	synth, err := seedsim.New(seedVersion, 6)
	if err != nil {
		t.Fatal(err)
	}
	if c.precache {
		// The release's images, for real in the registry: the service
		// reads their manifests to plan.
		set, err := seedsim.ImageSet{Count: 6, BaseSize: 8 << 10, GroupSize: 3, GroupBytes: 4 << 10, OwnBytes: 2 << 10, Seed: 1}.
			Push(ctx, reg.Host, "ocp-release", basicAuth{user: regUser, pass: regPass})
		if err != nil {
			t.Fatal(err)
		}
		synth.Images = set.Images
	}
	img, err := synth.Build()
	if err != nil {
		t.Fatal(err)
	}
	auth := seedimage.WithAuthFile(reg.AuthFile(t))
	ref := reg.Ref("telco/seed:" + seedVersion)
	if _, err := seedimage.Push(ctx, ref, img, auth); err != nil {
		t.Fatal(err)
	}
	f := &fleet{t: t, js: js, seedRef: ref, images: synth.Images, audit: newAudit()}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	auditOpts := []bus.ConsumeOption{bus.ConsumeService("ibuctl"), bus.ConsumeConcurrency(4), bus.ConsumeLogger(quiet())}
	schedCfg := rollout.Config{Name: "obs", Telemetry: telemetry.Telemetry{Logger: quiet()}, Tick: 50 * time.Millisecond}
	pcCfg := pullplan.Config{Name: "obs", Telemetry: telemetry.Telemetry{Logger: quiet()}, SeedOptions: []seedimage.Option{auth},
		Remote: []remote.Option{remote.WithAuth(&authn.Basic{Username: regUser, Password: regPass})}}
	if c.tracers != nil {
		auditOpts = append(auditOpts, bus.ConsumeTracerProvider(c.tracers.audit))
		schedCfg.Telemetry.Tracer = c.tracers.scheduler
		pcCfg.Telemetry.Tracer = c.tracers.precache
	}
	if c.metrics != nil {
		auditOpts = append(auditOpts, bus.ConsumeMeterProvider(c.metrics.MeterProvider()))
		schedCfg.Telemetry.Meter = c.metrics.MeterProvider()
		pcCfg.Telemetry.Meter = c.metrics.MeterProvider()
	}
	sub, err := bus.Consume(runCtx, js, bus.StreamEvents, "audit", f.audit.handle, auditOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	if c.precache {
		wg.Go(func() {
			if err := pullplan.New(js, pcCfg).Run(runCtx); err != nil {
				t.Errorf("precache service: %v", err)
			}
		})
	}

	for i := range c.n {
		id := fmt.Sprintf("sno-%03d", i+1)
		f.ids = append(f.ids, id)
		ring := "b"
		if i%2 == 0 {
			ring = "a"
		}
		s := simspoke.New(agent.Config{ClusterID: id, Version: "4.14.38", Fingerprint: seedsim.Fingerprint(),
			Labels: map[string]string{"ring": ring}, SeedOptions: []seedimage.Option{auth},
			HeartbeatInterval: time.Hour, ServiceTimeout: 20 * time.Second, Services: agent.Services{Precache: c.precache}},
			filepath.Join(t.TempDir(), id), "rhcos")
		s.Logger, s.RebootDelay = quiet(), 50*time.Millisecond
		s.Images = sim.NewImages(time.Millisecond, 1<<20)
		if c.tracers != nil {
			s.Tracer = c.tracers.agent
		}
		if c.metrics != nil {
			s.Meter = c.metrics.MeterProvider()
		}
		if c.prepare != nil {
			c.prepare(f, id, s)
		}
		wg.Go(func() {
			if err := s.Run(runCtx, js); err != nil && runCtx.Err() == nil {
				t.Errorf("agent %s: %v", id, err)
			}
		})
	}
	clusters, err := js.KeyValue(ctx, bus.BucketClusters)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 20*time.Second, "every cluster registered", func() bool {
		keys, _ := clusters.Keys(ctx)
		return len(keys) == c.n
	})
	wg.Go(func() {
		if err := rollout.New(js, schedCfg).Run(runCtx); err != nil {
			t.Errorf("scheduler: %v", err)
		}
	})
	return f
}

// request publishes a plan request: [Prep] then [Upgrade, Finalize], over
// the given clusters (default: all).
func (f *fleet) request(planID string, policy *events.FailurePolicy, clusters ...string) {
	f.t.Helper()
	if len(clusters) == 0 {
		clusters = f.ids
	}
	req := events.PlanCreateRequested{
		PlanID: planID, SeedImage: f.seedRef, SeedVersion: seedVersion,
		Clusters: events.ClusterSelection{ClusterIDs: clusters},
		Steps: []events.PlanStep{
			{Actions: []stages.Action{stages.ActionPrep}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 3}},
			{Actions: []stages.Action{stages.ActionUpgrade, stages.ActionFinalize}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 3}},
		},
		FailurePolicy: policy,
	}
	e, err := events.New("/users/test", planID, req)
	if err != nil {
		f.t.Fatal(err)
	}
	subject, err := events.SubjectFor(e.Type(), "")
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := bus.NewPublisher(f.js).Publish(f.t.Context(), subject, e); err != nil {
		f.t.Fatal(err)
	}
}

// waitPlanEnd waits until the plan is no longer active and returns its
// phase.
func (f *fleet) waitPlanEnd(planID string, timeout time.Duration) events.PlanPhase {
	f.t.Helper()
	plans, err := f.js.KeyValue(f.t.Context(), bus.BucketPlans)
	if err != nil {
		f.t.Fatal(err)
	}
	var phase events.PlanPhase
	natstest.WaitFor(f.t, timeout, "plan "+planID+" ends", func() bool {
		e, err := plans.Get(f.t.Context(), planID)
		if err != nil {
			return false
		}
		var p struct {
			Phase events.PlanPhase `json:"phase"`
		}
		if err := jsonUnmarshal(e.Value(), &p); err != nil {
			return false
		}
		phase = p.Phase
		return phase == events.PlanCompleted || phase == events.PlanFailed || phase == events.PlanAborted
	})
	return phase
}

// waitEventsAudited waits until the audit consumer handled every event in
// IBU_EVENTS.
func (f *fleet) waitEventsAudited() {
	f.t.Helper()
	stream, err := f.js.Stream(f.t.Context(), bus.StreamEvents)
	if err != nil {
		f.t.Fatal(err)
	}
	natstest.WaitFor(f.t, 20*time.Second, "audit consumer caught up", func() bool {
		info, err := stream.Info(f.t.Context())
		return err == nil && f.audit.total() >= int(info.State.Msgs)
	})
}

// audit counts the events it handled, by type.
type audit struct {
	mu     sync.Mutex
	byType map[string]int
	n      int
}

func newAudit() *audit { return &audit{byType: map[string]int{}} }

func (a *audit) handle(_ context.Context, e cloudevents.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.byType[e.Type()]++
	a.n++
	return nil
}

func (a *audit) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

func (a *audit) count(typ string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byType[typ]
}

// basicAuth adds registry credentials to every request (for pushing the
// release's images).
type basicAuth struct{ user, pass string }

func (b basicAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.SetBasicAuth(b.user, b.pass)
	return http.DefaultTransport.RoundTrip(req)
}

// scrape fetches a /metrics page.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET %s: %s %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	return b.String()
}

type tracepbLink = tracepb.Span_Link

const (
	tracepbKindConsumer = tracepb.Span_SPAN_KIND_CONSUMER
	tracepbKindProducer = tracepb.Span_SPAN_KIND_PRODUCER
	tracepbStatusError  = tracepb.Status_STATUS_CODE_ERROR
)
