package ibuctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/buckets"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/store"
)

// Limits of the live view, so that a fleet of thousands stays readable.
const (
	barWidth        = 30
	maxRunningLines = 10
	maxFailureLines = 20
)

// statusReport is what `status PLAN` shows, computed from the plan and its
// clusters' IBU_STATUS values alone (see planReport): the text view and
// -o json|yaml both render it.
type statusReport struct {
	PlanID      string           `json:"planId"`
	Phase       events.PlanPhase `json:"phase"`
	Reason      string           `json:"reason,omitempty"`
	Message     string           `json:"message,omitempty"`
	SeedImage   string           `json:"seedImage"`
	SeedVersion string           `json:"seedVersion"`
	// CurrentStep indexes Steps, as in the contract.
	CurrentStep int               `json:"currentStep"`
	Steps       []progress        `json:"steps"`
	Stages      []progress        `json:"stages"`
	Counts      events.PlanCounts `json:"counts"`
	// States counts the plan's clusters by their state in the plan;
	// Agents by what their node agents report (stage/state).
	States     []count        `json:"states"`
	Agents     []count        `json:"agents,omitempty"`
	Cleanup    []count        `json:"cleanup,omitempty"`
	Running    []clusterEntry `json:"running,omitempty"`
	Failures   []clusterEntry `json:"failures,omitempty"`
	ETASeconds *int64         `json:"etaSeconds,omitempty"`
	CreatedAt  time.Time      `json:"createdAt"`
	StartedAt  time.Time      `json:"startedAt,omitzero"`
	FinishedAt time.Time      `json:"finishedAt,omitzero"`
}

// progress is one bar: how many of Total clusters are done with a step
// (or stage), in it now, or failed in it.
type progress struct {
	Name    string `json:"name"`
	Done    int    `json:"done"`
	Running int    `json:"running"`
	Failed  int    `json:"failed"`
	Total   int    `json:"total"`
}

type count struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// clusterEntry is a cluster in progress or failed, with what its node
// agent reports.
type clusterEntry struct {
	ClusterID string          `json:"clusterId"`
	Action    stages.Action   `json:"action"`
	State     string          `json:"state"`
	Reason    string          `json:"reason,omitempty"`
	Message   string          `json:"message,omitempty"`
	Agent     string          `json:"agent,omitempty"` // e.g. "Prep InProgress"
	AgentStep string          `json:"agentStep,omitempty"`
	Precache  *state.Precache `json:"precache,omitempty"`
	Since     time.Time       `json:"since,omitzero"`
}

// planReport computes the status view of plan p; statuses holds IBU_STATUS
// values by cluster id (any may be missing, others are ignored).
func planReport(p state.Plan, statuses map[string]state.Status) statusReport {
	r := statusReport{PlanID: p.Spec.PlanID, Phase: p.Phase, Reason: p.Reason, Message: p.Message,
		SeedImage: p.Spec.SeedImage, SeedVersion: p.Spec.SeedVersion, CurrentStep: p.CurrentStep,
		Counts: p.ComputeCounts(), ETASeconds: p.ETASeconds,
		CreatedAt: p.CreatedAt, StartedAt: p.StartedAt, FinishedAt: p.FinishedAt}
	total := len(p.Clusters)
	if total == 0 {
		r.Counts = p.Counts
	}

	// Steps: a cluster is done with step i once it is past it, or has
	// succeeded in it.
	var actions []stages.Action
	for i, st := range p.Spec.Steps {
		names := make([]string, len(st.Actions))
		for j, a := range st.Actions {
			names[j] = string(a)
			if !slices.Contains(actions, a) {
				actions = append(actions, a)
			}
		}
		row := progress{Name: fmt.Sprintf("%d %s", i+1, strings.Join(names, ",")), Total: total}
		for _, pc := range p.Clusters {
			switch {
			case pc.Step > i || pc.Step == i && pc.State == state.ClusterSucceeded:
				row.Done++
			case pc.Step != i:
			case pc.State.IsFailure():
				row.Failed++
			case pc.Busy():
				row.Running++
			}
		}
		r.Steps = append(r.Steps, row)
	}
	// Stages: the plan's actions, each done once a cluster completed it.
	for _, a := range actions {
		row := progress{Name: string(a), Total: total}
		for _, pc := range p.Clusters {
			switch {
			case pc.HasCompleted(a):
				row.Done++
			case pc.Action != a || pc.Cleanup != "":
			case pc.State.IsFailure():
				row.Failed++
			case pc.State == state.ClusterInProgress:
				row.Running++
			}
		}
		r.Stages = append(r.Stages, row)
	}

	states := map[string]int{}
	cleanup := map[string]int{}
	agents := map[string]int{}
	for _, pc := range p.Clusters {
		states[string(pc.State)]++
		if pc.Cleanup != "" {
			cleanup[string(pc.Cleanup)]++
		}
		st, ok := statuses[pc.ClusterID]
		if ok {
			agents[string(st.Stage)+" "+string(st.State)]++
		}
		entry := clusterEntry{ClusterID: pc.ClusterID, Action: pc.Action, State: string(pc.State),
			Reason: pc.Reason, Message: pc.Message, Since: pc.StartedAt}
		if pc.Cleanup != "" {
			entry.State += " (cleanup " + string(pc.Cleanup) + ")"
			if entry.Message == "" {
				entry.Message = pc.CleanupMessage
			}
		}
		if ok {
			// The status may still be that of the cluster's previous run
			// (the agent has not acted on this plan yet): only a stage in
			// progress or failed has a current step, and only a Prep in
			// progress a current precache.
			entry.Agent = st.Position.String()
			if st.State != stages.Completed {
				entry.AgentStep = st.Step
			}
			if st.Stage == stages.Prep && st.State == stages.InProgress {
				entry.Precache = st.Precache
			}
			if entry.Message == "" && st.State == stages.Failed {
				entry.Message = st.Message
			}
		}
		switch {
		case pc.State.IsFailure() || pc.Cleanup == state.CleanupFailed:
			r.Failures = append(r.Failures, entry)
		case pc.Busy():
			r.Running = append(r.Running, entry)
		}
	}
	stateOrder := []state.ClusterState{state.ClusterPending, state.ClusterInProgress, state.ClusterSucceeded,
		state.ClusterFailed, state.ClusterTimedOut, state.ClusterSkipped, state.ClusterAborted}
	var order []string
	for _, s := range stateOrder {
		order = append(order, string(s))
	}
	r.States = counts(states, order)
	r.Cleanup = counts(cleanup, []string{string(state.CleanupInProgress), string(state.CleanupSucceeded),
		string(state.CleanupFailed), string(state.CleanupSkipped)})
	var agentOrder []string
	for _, sg := range stages.AllStages {
		for _, s := range stages.AllStates {
			agentOrder = append(agentOrder, string(sg)+" "+string(s))
		}
	}
	r.Agents = counts(agents, agentOrder)
	return r
}

// counts lists the non-zero counts in the given order, then any others
// sorted by name.
func counts(m map[string]int, order []string) []count {
	var out []count
	for _, k := range order {
		if m[k] > 0 {
			out = append(out, count{k, m[k]})
		}
	}
	var rest []string
	for k, n := range m {
		if n > 0 && !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		out = append(out, count{k, m[k]})
	}
	return out
}

// bar draws done of total as [#####-----] in width characters.
func bar(done, total, width int) string {
	filled := 0
	if total > 0 {
		filled = min(width, done*width/total)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat("-", width-filled) + "]"
}

// renderStatus renders a report as the text of the live view.
func renderStatus(r statusReport, now time.Time) string {
	var b strings.Builder
	head := fmt.Sprintf("Plan %s  %s", r.PlanID, r.Phase)
	if d := joinNonEmpty(": ", r.Reason, truncate(r.Message, 120)); d != "" {
		head += " (" + d + ")"
	}
	if r.CurrentStep >= 0 && r.CurrentStep < len(r.Steps) {
		head += fmt.Sprintf("  step %d/%d", r.CurrentStep+1, len(r.Steps))
	}
	switch {
	case !r.FinishedAt.IsZero():
		head += "  finished " + age(now, r.FinishedAt) + " ago"
	case r.ETASeconds != nil:
		head += "  ETA " + eta(r.ETASeconds)
	}
	fmt.Fprintln(&b, head)
	fmt.Fprintf(&b, "Seed %s (%s)  created %s ago\n", r.SeedImage, r.SeedVersion, age(now, r.CreatedAt))

	bars := func(title string, rows []progress) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s\n", title)
		name, num := 0, 0
		for _, p := range rows {
			name = max(name, len(p.Name))
			num = max(num, len(strconv.Itoa(p.Total)))
		}
		for _, p := range rows {
			line := fmt.Sprintf("  %-*s  %s %*d/%d", name, p.Name, bar(p.Done, p.Total, barWidth), num, p.Done, p.Total)
			var notes []string
			if p.Running > 0 {
				notes = append(notes, fmt.Sprintf("%d running", p.Running))
			}
			if p.Failed > 0 {
				notes = append(notes, fmt.Sprintf("%d failed", p.Failed))
			}
			if len(notes) > 0 {
				line += "  " + strings.Join(notes, ", ")
			}
			fmt.Fprintln(&b, line)
		}
	}
	bars("Steps", r.Steps)
	bars("Stages", r.Stages)

	list := func(cs []count) string {
		s := make([]string, len(cs))
		for i, c := range cs {
			s[i] = fmt.Sprintf("%s %d", c.Name, c.Count)
		}
		return strings.Join(s, " · ")
	}
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "Clusters  %d: %s\n", r.Counts.Total, orDash(list(r.States)))
	if len(r.Agents) > 0 {
		fmt.Fprintf(&b, "Agents    %s\n", list(r.Agents))
	}
	if len(r.Cleanup) > 0 {
		fmt.Fprintf(&b, "Cleanup   %s\n", list(r.Cleanup))
	}

	entries := func(title string, es []clusterEntry, limit int, failure bool) {
		if len(es) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s (%d)\n", title, len(es))
		t := newTable(&b)
		for i, e := range es {
			if i == limit {
				t.row(fmt.Sprintf("  … and %d more", len(es)-limit))
				break
			}
			if failure {
				t.row("  "+e.ClusterID, string(e.Action), e.State, truncate(joinNonEmpty(": ", e.Reason, e.Message), 100))
				continue
			}
			agent := e.Agent
			if e.AgentStep != "" {
				agent += " · " + e.AgentStep
			}
			if e.Precache != nil && e.Precache.Total > 0 {
				agent += fmt.Sprintf(" %d/%d images", e.Precache.Pulled, e.Precache.Total)
			}
			since := ""
			if !e.Since.IsZero() {
				since = age(now, e.Since)
			}
			t.row("  "+e.ClusterID, string(e.Action), agent, since)
		}
		_ = t.flush() // a strings.Builder does not fail
	}
	entries("In progress", r.Running, maxRunningLines, false)
	entries("Failures", r.Failures, maxFailureLines, true)
	return b.String()
}

// renderPlanStatus is the live view of a plan: a pure function of the plan,
// its clusters' statuses and the time.
func renderPlanStatus(p state.Plan, statuses map[string]state.Status, now time.Time) string {
	return renderStatus(planReport(p, statuses), now)
}

// renderPlansSummary renders the one-line-per-plan view of `status`.
func renderPlansSummary(plans []state.Plan, now time.Time) string {
	var b strings.Builder
	if len(plans) == 0 {
		return "no active plans\n"
	}
	t := newTable(&b, "PLAN", "PHASE", "PROGRESS", "STEP", "FAILED", "AGE", "ETA")
	for _, p := range plans {
		s := summarize(p)
		c := s.Counts
		t.row(s.PlanID, string(s.Phase), fmt.Sprintf("%s %d/%d", bar(c.Succeeded, c.Total, 20), c.Succeeded, c.Total),
			stepLabel(s.CurrentStep, s.Steps, s.StepActions), strconv.Itoa(c.Failed), age(now, s.CreatedAt), eta(s.ETASeconds))
	}
	_ = t.flush()
	return b.String()
}

func runStatus(ctx context.Context, io IO, args []string) error {
	fs := newFlags("status", io)
	hf := addHubFlags(fs, io)
	watch := fs.Bool("watch", false, "redraw on every change until the plan ends (or Ctrl-C)")
	pos, out, help, err := hf.parse(fs, args)
	if err != nil || help {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: status [PLAN] [--watch]", ErrUsage)
	}
	if len(pos) == 1 {
		if err := events.ValidID(pos[0]); err != nil {
			return fmt.Errorf("plan id: %w", err)
		}
	}
	nc, js, err := hf.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	v := &viewer{io: io, out: out, tty: isTerminal(io.Out)}
	if len(pos) == 0 {
		return v.allPlans(ctx, js, *watch)
	}
	return v.onePlan(ctx, js, pos[0], *watch)
}

// viewer draws successive renderings: on a terminal each replaces the
// last; elsewhere they follow each other.
type viewer struct {
	io    IO
	out   outputFormat
	tty   bool
	drawn int
}

func (v *viewer) draw(text string, data any) error {
	defer func() { v.drawn++ }()
	if v.out != outputTable {
		if v.drawn > 0 && v.out == outputYAML {
			fmt.Fprintln(v.io.Out, "---")
		}
		return writeData(v.io.Out, v.out, data)
	}
	switch {
	case v.tty:
		text = clearScreen + text
	case v.drawn > 0:
		text = "\n" + text
	}
	_, err := io.WriteString(v.io.Out, text)
	return err
}

// onePlan shows a plan; with watch, again on every change of its IBU_PLANS
// key or of its clusters' IBU_STATUS keys, until the plan ends.
func (v *viewer) onePlan(ctx context.Context, js jetstream.JetStream, planID string, watch bool) error {
	plansKV, err := openBucket(ctx, js, bus.BucketPlans)
	if err != nil {
		return err
	}
	statusKV, err := openBucket(ctx, js, bus.BucketStatus)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pw, err := plansKV.Watch(wctx, planID)
	if err != nil {
		return fmt.Errorf("watch plan %s: %w", planID, err)
	}
	defer pw.Stop()
	// One watcher over the bucket, filtered here: a plan may hold
	// thousands of clusters, too many subject filters for one consumer.
	sw, err := statusKV.WatchAll(wctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", bus.BucketStatus, err)
	}
	defer sw.Stop()

	var plan *state.Plan
	var members map[string]bool
	statuses := map[string]state.Status{}
	planReady, statusReady := false, false
	var initTimer <-chan time.Time
	if !watch {
		t := time.NewTimer(readTimeout)
		defer t.Stop()
		initTimer = t.C
	}
	apply := func(e jetstream.KeyValueEntry, isPlan bool) error {
		switch {
		case isPlan && e == nil:
			planReady = true
		case isPlan && e.Operation() != jetstream.KeyValuePut:
			return fmt.Errorf("plan %s was deleted", planID)
		case isPlan:
			p, err := decodePlan(e.Value())
			if err != nil {
				return fmt.Errorf("plan %s: %w", planID, err)
			}
			plan = &p
			members = make(map[string]bool, len(p.Clusters))
			for _, c := range p.Clusters {
				members[c.ClusterID] = true
			}
			for id := range statuses {
				if !members[id] {
					delete(statuses, id)
				}
			}
		case e == nil:
			statusReady = true
		case members != nil && !members[e.Key()]:
		case e.Operation() != jetstream.KeyValuePut:
			delete(statuses, e.Key())
		default:
			var st state.Status
			if err := json.Unmarshal(e.Value(), &st); err != nil {
				fmt.Fprintf(v.io.Err, "ibuctl: %s/%s: %v\n", bus.BucketStatus, e.Key(), err)
				return nil
			}
			statuses[e.Key()] = st
		}
		return nil
	}
	for {
		select {
		case e, ok := <-pw.Updates():
			if !ok {
				return fmt.Errorf("watch plan %s: watcher closed", planID)
			}
			if err := apply(e, true); err != nil {
				return err
			}
		case e, ok := <-sw.Updates():
			if !ok {
				return fmt.Errorf("watch %s: watcher closed", bus.BucketStatus)
			}
			if err := apply(e, false); err != nil {
				return err
			}
		case <-initTimer:
			return fmt.Errorf("read plan %s: no answer from the hub within %s", planID, readTimeout)
		case <-ctx.Done():
			return nil // Ctrl-C ends the view, not in error
		}
		if !planReady || !statusReady {
			continue
		}
		if plan == nil {
			return noSuchPlan(planID)
		}
		// Take every change already delivered before drawing, so that a
		// burst of writes is drawn once.
		if err := drain(pw, sw, apply); err != nil {
			return err
		}
		rep := planReport(*plan, statuses)
		if err := v.draw(renderStatus(rep, time.Now()), rep); err != nil {
			return err
		}
		if !watch || !plan.IsActive() {
			return nil
		}
	}
}

// drain applies the updates already waiting on the watchers.
func drain(pw, sw jetstream.KeyWatcher, apply func(jetstream.KeyValueEntry, bool) error) error {
	for {
		select {
		case e, ok := <-pw.Updates():
			if !ok {
				return nil
			}
			if err := apply(e, true); err != nil {
				return err
			}
		case e, ok := <-sw.Updates():
			if !ok {
				return nil
			}
			if err := apply(e, false); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// allPlans shows every active plan's summary; with watch, again on every
// change of IBU_PLANS until Ctrl-C.
func (v *viewer) allPlans(ctx context.Context, js jetstream.JetStream, watch bool) error {
	kv, err := openBucket(ctx, js, buckets.Plans.Name())
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !watch {
		var tcancel context.CancelFunc
		wctx, tcancel = context.WithTimeout(wctx, readTimeout)
		defer tcancel()
	}
	// Values that do not decode are reported here, between draws, not from
	// the cache's goroutine.
	var mu sync.Mutex
	var unreadable []error
	c, err := store.NewCache(wctx, store.Wrap(kv, buckets.Plans), store.CacheOptions[state.Plan]{
		OnEvent: func(e store.Event[state.Plan]) {
			if e.Err != nil {
				mu.Lock()
				unreadable = append(unreadable, e.Err)
				mu.Unlock()
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watch %s: %w", buckets.Plans.Name(), err)
	}
	if err := c.WaitForSync(wctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if wctx.Err() != nil {
			return fmt.Errorf("read %s: no answer from the hub within %s", buckets.Plans.Name(), readTimeout)
		}
		return err
	}
	for first := true; ; first = false {
		if !first {
			select {
			case <-c.Changes():
			case <-c.Done():
				if ctx.Err() != nil {
					return nil
				}
				return c.Err()
			}
		}
		mu.Lock()
		for _, err := range unreadable {
			fmt.Fprintf(v.io.Err, "ibuctl: %v\n", err)
		}
		unreadable = nil
		mu.Unlock()
		plans := map[string]state.Plan{}
		for _, e := range c.List() {
			plans[e.Key] = e.Value
		}
		var active []state.Plan
		for _, p := range plans {
			if p.IsActive() {
				active = append(active, p)
			}
		}
		slices.SortFunc(active, func(a, b state.Plan) int { return strings.Compare(a.Spec.PlanID, b.Spec.PlanID) })
		sums := make([]planSummary, len(active))
		for i, p := range active {
			sums[i] = summarize(p)
		}
		if err := v.draw(renderPlansSummary(active, time.Now()), sums); err != nil {
			return err
		}
		if !watch {
			return nil
		}
	}
}
