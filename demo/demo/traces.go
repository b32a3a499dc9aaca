package demo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"ibu.dev/cli/dashboard"
)

// fileSpan is the part of a span, as the OpenTelemetry stdout exporter
// writes it, that the demo's trace summary needs.
type fileSpan struct {
	Name        string
	SpanContext struct{ TraceID string }
	StartTime   time.Time
	EndTime     time.Time
	Attributes  []struct {
		Key   string
		Value struct{ Value any }
	}
}

func (s fileSpan) attr(key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			if v, ok := a.Value.Value.(string); ok {
				return v
			}
		}
	}
	return ""
}

// traceSummary is one cluster's trace in the demo's trace file.
type traceSummary struct {
	traceID string
	spans   int
	steps   []fileSpan
}

// summarizeTraces reads the trace file and groups the spans by the trace
// of each cluster's upgrade in plan.
func summarizeTraces(path, plan string, clusters []string) (map[string]*traceSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read traces: %w", err)
	}
	defer f.Close()
	byTrace := map[string]*traceSummary{}
	out := map[string]*traceSummary{}
	for _, c := range clusters {
		ts := &traceSummary{traceID: dashboard.TraceID(plan, c)}
		byTrace[ts.traceID], out[c] = ts, ts
	}
	dec := json.NewDecoder(f)
	for {
		var s fileSpan
		if err := dec.Decode(&s); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("read traces %s: %w", path, err)
		}
		ts, ok := byTrace[s.SpanContext.TraceID]
		if !ok {
			continue
		}
		ts.spans++
		if s.attr("ibu.step") != "" {
			ts.steps = append(ts.steps, s)
		}
	}
	return out, nil
}

// printTraces prints, per cluster, its trace id and its slowest steps.
func (d *demo) printTraces(path, plan string, results []clusterResult) error {
	ids := make([]string, len(results))
	for i, r := range results {
		ids[i] = r.id
	}
	sums, err := summarizeTraces(path, plan, ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "\ntraces in %s: one per cluster's upgrade (plan %s), slowest steps first\n", path, plan)
	fmt.Fprintf(d.out, "%-8s %-32s %5s  %s\n", "CLUSTER", "TRACE ID", "SPANS", "SLOWEST STEPS (s)")
	for _, id := range ids {
		ts := sums[id]
		if ts.spans == 0 {
			fmt.Fprintf(d.out, "%-8s %-32s %5d  (not in the plan)\n", id, "-", 0)
			continue
		}
		slices.SortFunc(ts.steps, func(a, b fileSpan) int {
			return int(b.EndTime.Sub(b.StartTime) - a.EndTime.Sub(a.StartTime))
		})
		var top []string
		for _, s := range ts.steps[:min(3, len(ts.steps))] {
			top = append(top, fmt.Sprintf("%s/%s %.2f", s.attr("ibu.stage"), s.Name, s.EndTime.Sub(s.StartTime).Seconds()))
		}
		fmt.Fprintf(d.out, "%-8s %-32s %5d  %s\n", id, ts.traceID, ts.spans, strings.Join(top, ", "))
	}
	return nil
}
