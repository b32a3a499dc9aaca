package observability

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"ibu.dev/node-agent/agent/simspoke"
	"ibu.dev/node-agent/host"
	"ibu.dev/shared/events"
	"ibu.dev/shared/telemetry"
	"ibu.dev/shared/testkit/natstest"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// testPlan is the plan TestTraceAndMetricsOfAPlan runs.
const testPlan = "trace-plan"

// TestTraceAndMetricsOfAPlan runs a plan through Prep, Upgrade (with its
// reboot) and Finalize on three clusters, plus a fourth whose precache
// fails, with the real precache service planning the pulls and every
// process exporting spans over OTLP/HTTP to an in-process receiver and
// metrics to one Prometheus registry, then checks the traces and the
// scraped metrics against what happened.
func TestTraceAndMetricsOfAPlan(t *testing.T) {
	rcv := startReceiver(t)
	tr := newTracers(t, rcv)
	metrics, err := telemetry.NewMetrics()
	if err != nil {
		t.Fatal(err)
	}
	const failing = "sno-004"
	f := newFleet(t, fleetConfig{n: 4, tracers: &tr, metrics: metrics, precache: true, prepare: func(fl *fleet, id string, s *simspoke.Spoke) {
		if id == failing {
			s.Images.FailPull(fl.images[3], fmt.Errorf("simulated registry error: manifest unknown: %w", host.ErrImageNotFound))
		}
	}})
	good := f.ids[:3]
	const plan = testPlan
	msrv := httptest.NewServer(metrics.Handler())
	defer msrv.Close()
	f.request(plan, &events.FailurePolicy{MaxFailures: "50%", OnBreach: events.BreachPause})
	// While the plan runs, its progress is a gauge.
	natstest.WaitFor(t, 30*time.Second, "plan progress exposed", func() bool {
		fams := parse(t, scrape(t, msrv.URL))
		return value(fams, "ibu_scheduler_plan_progress_ratio", map[string]string{"plan": plan}) >= 0 &&
			value(fams, "ibu_scheduler_plan_clusters", map[string]string{"plan": plan, "state": "in_progress"}) >= 0
	})
	// Three clusters succeed, one fails: the plan ends Failed.
	if phase := f.waitPlanEnd(plan, 60*time.Second); phase != events.PlanFailed {
		t.Fatalf("plan ended %s, want Failed (one cluster failed)", phase)
	}
	// One malformed message to the audited stream: a DLQ copy to count.
	nc, err := nats.Connect(natstestURL(t, f))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	f.waitEventsAudited()

	planSC := telemetry.PlanSpan(plan)
	var spans []span
	natstest.WaitFor(t, 20*time.Second, "the plan span exported", func() bool {
		tr.flush(t)
		spans = rcv.all()
		return slices.ContainsFunc(spans, func(s span) bool { return s.spanID() == planSC.SpanID().String() })
	})

	t.Run("trace", func(t *testing.T) {
		byTrace := map[string][]span{}
		byID := map[string]span{}
		for _, s := range spans {
			byTrace[s.traceID()] = append(byTrace[s.traceID()], s)
			byID[s.spanID()] = s
		}
		for _, c := range good {
			want := telemetry.ClusterUpgrade(plan, c)
			tid := want.TraceID().String()
			// Exactly one trace: every step span of the cluster is in it.
			for _, s := range spans {
				if s.attr("ibu.cluster") == c && s.attr("ibu.step") != "" && s.traceID() != tid {
					t.Errorf("%s: step %s in trace %s, not in the cluster's trace %s", c, s.Name, s.traceID(), tid)
				}
			}
			trace := byTrace[tid]
			services := map[string]bool{}
			var root *span
			steps := map[string][]span{}
			for i, s := range trace {
				services[s.service] = true
				if s.spanID() == want.SpanID().String() {
					root = &trace[i]
				} else if _, ok := byID[s.parentID()]; !ok {
					t.Errorf("%s: span %q (%s) has a parent %s outside the trace", c, s.Name, s.service, s.parentID())
				}
				if st := s.attr("ibu.step"); st != "" && s.attr("ibu.cluster") == c {
					steps[st] = append(steps[st], s)
				}
			}
			if root == nil || root.Name != "upgrade "+c || len(root.ParentSpanId) != 0 || root.service != "ibu-scheduler" {
				t.Errorf("%s: no root span 'upgrade %s' from the scheduler in trace %s", c, c, tid)
			} else if !slices.ContainsFunc(root.Links, func(l *tracepbLink) bool { return hex.EncodeToString(l.SpanId) == planSC.SpanID().String() }) {
				t.Errorf("%s: root span does not link to the plan span", c)
			}
			for _, svc := range []string{"ibu-agent", "ibu-scheduler", "ibu-audit", "ibu-precache"} {
				if !services[svc] {
					t.Errorf("%s: no span from %s in its trace (services %v)", c, svc, services)
				}
			}
			// Both sides of the reboot, under two runs of the Upgrade stage.
			pivot, verify := steps["Pivot"], steps["VerifyBooted"]
			if len(pivot) != 1 || len(verify) != 1 {
				t.Fatalf("%s: Pivot spans %d, VerifyBooted spans %d, want 1 each", c, len(pivot), len(verify))
			}
			if pivot[0].parentID() == verify[0].parentID() {
				t.Errorf("%s: Pivot and VerifyBooted under the same run span: the reboot did not restart the agent", c)
			}
			for _, want := range []string{"PullSeed", "Precache", "Reboot", "HealthCheck", "RestoreData"} {
				if len(steps[want]) == 0 {
					t.Errorf("%s: no %s step span", c, want)
				}
			}
			for _, s := range trace {
				if s.Kind == tracepbKindConsumer && s.attr("messaging.system") != "nats" {
					t.Errorf("%s: consumer span %q without messaging attributes", c, s.Name)
				}
			}
		}
		// The precache service worked for every cluster inside its trace.
		for _, c := range f.ids {
			checkPrecacheSpans(t, c, spans, byID)
		}
		// The failed cluster's trace: the failing step and the root span
		// carry the error with its reason.
		ftrace := byTrace[telemetry.ClusterUpgrade(plan, failing).TraceID().String()]
		var stepErr, rootErr bool
		for _, s := range ftrace {
			failed := s.Status.GetCode() == tracepbStatusError && strings.Contains(s.Status.GetMessage(), "simulated registry error")
			switch {
			case s.attr("ibu.step") == "Precache" && failed:
				stepErr = true
			case s.Name == "upgrade "+failing && s.Status.GetCode() == tracepbStatusError:
				rootErr = true
			}
		}
		if !stepErr || !rootErr {
			t.Errorf("%s: error status on the Precache step span %v, on the root span %v", failing, stepErr, rootErr)
		}
		// The plan span links to the four traces.
		var planSpan span
		for _, s := range spans {
			if s.spanID() == planSC.SpanID().String() {
				planSpan = s
			}
		}
		var linked []string
		for _, l := range planSpan.Links {
			linked = append(linked, hex.EncodeToString(l.TraceId))
		}
		slices.Sort(linked)
		var want []string
		for _, c := range f.ids {
			want = append(want, telemetry.ClusterUpgrade(plan, c).TraceID().String())
		}
		slices.Sort(want)
		if !slices.Equal(linked, want) {
			t.Errorf("plan span links %v, want the clusters' traces %v", linked, want)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		srv := httptest.NewServer(metrics.Handler())
		defer srv.Close()
		// A malformed message to the audit consumer: one DLQ copy.
		if err := nc.Publish("ibu.event.sno-001.cluster.heartbeat", []byte("not a CloudEvent")); err != nil {
			t.Fatal(err)
		}
		var fams map[string]*dto.MetricFamily
		natstest.WaitFor(t, 10*time.Second, "the DLQ copy counted", func() bool {
			fams = parse(t, scrape(t, srv.URL+"/metrics"))
			return value(fams, "ibu_bus_dlq_messages_total", map[string]string{"consumer": "audit"}) == 1
		})
		check := func(name string, labels map[string]string, want float64) {
			t.Helper()
			if got := value(fams, name, labels); got != want {
				t.Errorf("%s%v = %v, want %v", name, labels, got, want)
			}
		}
		for _, typ := range []string{events.TypeStepFinished, events.TypeStageChanged, events.TypeDesiredStageSet} {
			check("ibu_bus_events_handled_total", map[string]string{"consumer": "audit", "event_type": typ}, float64(f.audit.count(typ)))
		}
		check("ibu_bus_events_failed_total", map[string]string{"consumer": "audit", "event_type": "invalid"}, 1)
		// The precache service answered each cluster's request once.
		check("ibu_bus_events_handled_total", map[string]string{"consumer": "precache", "event_type": events.TypePrecacheRequested}, 4)
		check("ibu_bus_handler_duration_seconds", map[string]string{"consumer": "audit", "event_type": events.TypeStepFinished}, float64(f.audit.count(events.TypeStepFinished)))
		for _, stage := range []struct{ action, stage string }{{"Prep", "Prep"}, {"Upgrade", "Upgrade"}, {"Finalize", "Idle"}} {
			check("ibu_agent_stage_duration_seconds", map[string]string{"action": stage.action, "stage": stage.stage, "result": "succeeded"}, 3)
		}
		check("ibu_agent_stage_duration_seconds", map[string]string{"action": "Prep", "result": "failed"}, 1)
		for _, step := range []struct {
			name              string
			succeeded, failed float64
		}{{"PullSeed", 4, 0}, {"Precache", 3, 1}, {"Pivot", 3, 0}, {"VerifyBooted", 3, 0}} {
			check("ibu_agent_step_duration_seconds", map[string]string{"step": step.name, "result": "succeeded"}, step.succeeded)
			if step.failed > 0 {
				check("ibu_agent_step_duration_seconds", map[string]string{"step": step.name, "result": "failed"}, step.failed)
			}
		}
		// The failing cluster pulled all its images but one.
		pulled := 4*len(f.images) - 1
		check("ibu_agent_precache_images_total", map[string]string{"result": "pulled"}, float64(pulled))
		check("ibu_agent_precache_images_total", map[string]string{"result": "failed"}, 1)
		check("ibu_agent_precache_pulled_bytes_total", nil, float64(pulled<<20))
		check("ibu_scheduler_clusters", map[string]string{"stage": "Idle", "state": "Completed"}, 3)
		check("ibu_scheduler_clusters", map[string]string{"stage": "Prep", "state": "Failed"}, 1)
		check("ibu_scheduler_plans", map[string]string{"phase": "Failed"}, 1)
	})
}

// checkPrecacheSpans checks that the precache service's spans for cluster
// c lie in c's upgrade trace: the consumer span of the agent's request,
// under the agent's publish of it inside the Precache step span, and the
// service's publish of the pull plan under that consumer span.
func checkPrecacheSpans(t *testing.T, c string, spans []span, byID map[string]span) {
	t.Helper()
	tid := telemetry.ClusterUpgrade(testPlan, c).TraceID().String()
	taskSubject := func(service string) string {
		s, err := events.TaskSubject(service, c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var consumers, plans []span
	for _, s := range spans {
		if s.service != "ibu-precache" || s.attr("ibu.cluster") != c {
			continue
		}
		if s.traceID() != tid {
			t.Errorf("%s: precache span %q in trace %s, not in the cluster's trace %s", c, s.Name, s.traceID(), tid)
			continue
		}
		switch {
		case s.Kind == tracepbKindConsumer && s.attr("cloudevents.event_type") == events.TypePrecacheRequested &&
			s.attr("messaging.destination.name") == taskSubject(events.ServicePrecache):
			consumers = append(consumers, s)
		case s.Kind == tracepbKindProducer && s.attr("cloudevents.event_type") == events.TypePrecachePlanned &&
			s.attr("messaging.destination.name") == "ibu.event."+c+".precache.planned":
			plans = append(plans, s)
		}
	}
	if len(consumers) == 0 || len(plans) == 0 {
		t.Errorf("%s: %d precache consumer spans of the request, %d publish spans of the pull plan in the cluster's trace; want both",
			c, len(consumers), len(plans))
		return
	}
	for _, cs := range consumers {
		// Its parent: the agent's publish of the request, itself under
		// the agent's Precache step span.
		parent, ok := byID[cs.parentID()]
		if !ok || parent.service != "ibu-agent" || parent.Kind != tracepbKindProducer {
			t.Errorf("%s: precache consumer span's parent %s is not the agent's publish of the request (%q from %q)",
				c, cs.parentID(), parent.Name, parent.service)
			continue
		}
		if !hasAncestor(parent, byID, func(a span) bool { return a.attr("ibu.step") == "Precache" && a.attr("ibu.cluster") == c }) {
			t.Errorf("%s: the agent's publish of the precache request is not inside its Precache step span", c)
		}
	}
	for _, ps := range plans {
		if !slices.ContainsFunc(consumers, func(cs span) bool { return cs.spanID() == ps.parentID() }) {
			t.Errorf("%s: the pull plan's publish span has parent %s, not the service's consumer span of the request", c, ps.parentID())
		}
	}
}

// hasAncestor reports whether a span above s (in byID) satisfies is.
func hasAncestor(s span, byID map[string]span, is func(span) bool) bool {
	for seen := 0; seen < len(byID); seen++ {
		p, ok := byID[s.parentID()]
		if !ok {
			return false
		}
		if is(p) {
			return true
		}
		s = p
	}
	return false
}

// natstestURL is the hub's client URL, for a raw NATS connection.
func natstestURL(t *testing.T, f *fleet) string {
	t.Helper()
	return f.js.Conn().ConnectedUrl()
}

func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, text)
	}
	return fams
}

// value sums the samples of a metric whose labels include labels (a
// histogram's sample count); -1 when there is no such sample.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	fam, ok := fams[name]
	if !ok {
		return -1
	}
	sum, matched := 0.0, false
	for _, m := range fam.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			if have[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		matched = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	if !matched {
		return -1
	}
	return sum
}
