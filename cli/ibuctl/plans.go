package ibuctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

func runPlan(ctx context.Context, io IO, args []string) error {
	subs := map[string]func(context.Context, IO, []string) error{
		"list":   runPlanList,
		"get":    runPlanGet,
		"pause":  func(ctx context.Context, io IO, args []string) error { return runPlanControl(ctx, io, "pause", args) },
		"resume": func(ctx context.Context, io IO, args []string) error { return runPlanControl(ctx, io, "resume", args) },
		"abort":  func(ctx context.Context, io IO, args []string) error { return runPlanControl(ctx, io, "abort", args) },
	}
	const synopsis = "plan list | get ID | pause ID | resume ID | abort ID [--reason TEXT] [--wait]"
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", ErrUsage, synopsis)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(io.Err, "usage: ibuctl "+synopsis)
		return nil
	}
	run, ok := subs[args[0]]
	if !ok {
		return fmt.Errorf("%w: unknown plan command %q: %s", ErrUsage, args[0], synopsis)
	}
	return run(ctx, io, args[1:])
}

// planSummary is one plan in `plan list` and `status`.
type planSummary struct {
	PlanID      string            `json:"planId"`
	Phase       events.PlanPhase  `json:"phase"`
	Reason      string            `json:"reason,omitempty"`
	Counts      events.PlanCounts `json:"counts"`
	CurrentStep int               `json:"currentStep"`
	Steps       int               `json:"steps"`
	StepActions []stages.Action   `json:"stepActions,omitempty"`
	SeedVersion string            `json:"seedVersion"`
	CreatedAt   time.Time         `json:"createdAt"`
	ETASeconds  *int64            `json:"etaSeconds,omitempty"`
}

func summarize(p state.Plan) planSummary {
	s := planSummary{PlanID: p.Spec.PlanID, Phase: p.Phase, Reason: p.Reason, Counts: p.Counts,
		CurrentStep: p.CurrentStep, Steps: len(p.Spec.Steps), SeedVersion: p.Spec.SeedVersion,
		CreatedAt: p.CreatedAt, ETASeconds: p.ETASeconds}
	if len(p.Clusters) > 0 {
		s.Counts = p.ComputeCounts()
	}
	if p.CurrentStep >= 0 && p.CurrentStep < len(p.Spec.Steps) {
		s.StepActions = p.Spec.Steps[p.CurrentStep].Actions
	}
	return s
}

// stepLabel renders the current step as "2/2 Upgrade,Finalize".
func stepLabel(current, steps int, actions []stages.Action) string {
	if steps == 0 {
		return ""
	}
	names := make([]string, len(actions))
	for i, a := range actions {
		names[i] = string(a)
	}
	return strings.TrimSpace(fmt.Sprintf("%d/%d %s", current+1, steps, strings.Join(names, ",")))
}

// readPlans reads every plan of IBU_PLANS, sorted by id. Values that do
// not decode are reported on w and left out.
func readPlans(ctx context.Context, js jetstream.JetStream, w io.Writer) ([]state.Plan, error) {
	kv, err := openBucket(ctx, js, bus.BucketPlans)
	if err != nil {
		return nil, err
	}
	entries, err := kvEntries(ctx, kv)
	if err != nil {
		return nil, err
	}
	plans := make([]state.Plan, 0, len(entries))
	for _, e := range entries {
		p, err := decodePlan(e.Value())
		if err != nil {
			fmt.Fprintf(w, "ibuctl: %s/%s: %v\n", bus.BucketPlans, e.Key(), err)
			continue
		}
		plans = append(plans, p)
	}
	sort.Slice(plans, func(i, j int) bool { return plans[i].Spec.PlanID < plans[j].Spec.PlanID })
	return plans, nil
}

// getPlan reads one plan; a missing one is an error that says so.
func getPlan(ctx context.Context, js jetstream.JetStream, planID string) (state.Plan, error) {
	if err := events.ValidID(planID); err != nil {
		return state.Plan{}, fmt.Errorf("plan id: %w", err)
	}
	kv, err := openBucket(ctx, js, bus.BucketPlans)
	if err != nil {
		return state.Plan{}, err
	}
	e, err := kv.Get(ctx, planID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return state.Plan{}, noSuchPlan(planID)
	}
	if err != nil {
		return state.Plan{}, fmt.Errorf("read plan %s from %s: %w", planID, bus.BucketPlans, err)
	}
	p, err := decodePlan(e.Value())
	if err != nil {
		return state.Plan{}, fmt.Errorf("plan %s: %w", planID, err)
	}
	return p, nil
}

func noSuchPlan(planID string) error {
	return fmt.Errorf("no such plan %q (`ibuctl plan list` shows the plans)", planID)
}

func runPlanList(ctx context.Context, io IO, args []string) error {
	fs := newFlags("plan list", io)
	hf := addHubFlags(fs, io)
	pos, out, help, err := hf.parse(fs, args)
	if err != nil || help {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: plan list takes no arguments", ErrUsage)
	}
	nc, js, err := hf.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	plans, err := readPlans(ctx, js, io.Err)
	if err != nil {
		return err
	}
	sums := make([]planSummary, len(plans))
	for i, p := range plans {
		sums[i] = summarize(p)
	}
	if out != outputTable {
		return writeData(io.Out, out, sums)
	}
	return writePlanTable(io.Out, sums, time.Now())
}

func writePlanTable(w io.Writer, sums []planSummary, now time.Time) error {
	if len(sums) == 0 {
		_, err := fmt.Fprintln(w, "no plans")
		return err
	}
	t := newTable(w, "PLAN", "PHASE", "CLUSTERS", "SUCCEEDED", "IN-PROGRESS", "PENDING", "FAILED", "SKIPPED", "STEP", "AGE", "ETA")
	for _, s := range sums {
		c := s.Counts
		t.row(s.PlanID, string(s.Phase), strconv.Itoa(c.Total), strconv.Itoa(c.Succeeded), strconv.Itoa(c.InProgress),
			strconv.Itoa(c.Pending), strconv.Itoa(c.Failed), strconv.Itoa(c.Skipped),
			stepLabel(s.CurrentStep, s.Steps, s.StepActions), age(now, s.CreatedAt), eta(s.ETASeconds))
	}
	return t.flush()
}

func runPlanGet(ctx context.Context, io IO, args []string) error {
	fs := newFlags("plan get", io)
	hf := addHubFlags(fs, io)
	pos, out, help, err := hf.parse(fs, args)
	if err != nil || help {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: plan get ID", ErrUsage)
	}
	nc, js, err := hf.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	p, err := getPlan(ctx, js, pos[0])
	if err != nil {
		return err
	}
	if out != outputTable {
		return writeData(io.Out, out, p)
	}
	return writePlanDetail(io.Out, p, time.Now())
}

// writePlanDetail prints a plan's spec and progress, then its clusters.
func writePlanDetail(w io.Writer, p state.Plan, now time.Time) error {
	s := p.Spec
	kv := newTable(w)
	field := func(k, v string) { kv.row(k+":", v) }
	field("Plan", s.PlanID)
	field("Phase", string(p.Phase)+parenthesized(joinNonEmpty(": ", p.Reason, p.Message)))
	field("Seed", s.SeedImage+" ("+s.SeedVersion+")")
	if s.PullSecretRef != nil {
		r := s.PullSecretRef
		field("Pull secret", r.Kind+":"+r.Name+orPrefix(":", r.Namespace)+orPrefix(":", r.Path))
	}
	field("Selection", describeSelection(s.Clusters))
	if len(s.Canaries) > 0 {
		field("Canaries", strings.Join(s.Canaries, ","))
	}
	for i, st := range s.Steps {
		label := ""
		if i == 0 {
			label = "Steps"
		}
		line := stepLabel(i, len(s.Steps), st.Actions) + fmt.Sprintf(" (max %d at once", st.RolloutStrategy.MaxConcurrency)
		if st.RolloutStrategy.Timeout > 0 {
			line += ", timeout " + st.RolloutStrategy.Timeout.String()
		}
		line += ")"
		if i == p.CurrentStep && p.IsActive() {
			line += "  <- current"
		}
		if label == "" {
			kv.row("", line)
		} else {
			field(label, line)
		}
	}
	if fp := s.FailurePolicy; fp != nil {
		field("Failure policy", "more than "+fp.MaxFailures+" failed: "+string(fp.OnBreach))
	}
	for i, win := range s.MaintenanceWindows {
		line := fmt.Sprintf("%s %s-%s %s", formatDays(win.Days), win.Start, win.End, win.TimeZone)
		if i == 0 {
			field("Windows", line)
		} else {
			kv.row("", line)
		}
	}
	autoRollback := "on"
	if s.AutoRollbackOnFailure != nil && !*s.AutoRollbackOnFailure {
		autoRollback = "off"
	}
	field("Auto-rollback", autoRollback)
	if len(s.OADPContent) > 0 {
		field("OADP content", formatRefs(s.OADPContent))
	}
	if len(s.ExtraManifests) > 0 {
		field("Extra manifests", formatRefs(s.ExtraManifests))
	}
	field("Created", timeAndAge(now, p.CreatedAt))
	if !p.StartedAt.IsZero() {
		field("Started", timeAndAge(now, p.StartedAt))
	}
	if !p.FinishedAt.IsZero() {
		field("Finished", timeAndAge(now, p.FinishedAt))
	}
	c := p.Counts
	if len(p.Clusters) > 0 {
		c = p.ComputeCounts()
	}
	field("Clusters", fmt.Sprintf("%d: %d pending, %d in progress, %d succeeded, %d failed, %d skipped",
		c.Total, c.Pending, c.InProgress, c.Succeeded, c.Failed, c.Skipped))
	if e := eta(p.ETASeconds); e != "" {
		field("ETA", e)
	}
	if err := kv.flush(); err != nil {
		return err
	}
	if len(p.Clusters) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable(w, "CLUSTER", "CANARY", "STEP", "ACTION", "STATE", "REASON", "MESSAGE", "SINCE")
	for _, pc := range p.Clusters {
		canary := ""
		if pc.Canary {
			canary = "yes"
		}
		st := string(pc.State)
		if pc.Cleanup != "" {
			st += " (cleanup " + string(pc.Cleanup) + ")"
		}
		msg := pc.Message
		if msg == "" {
			msg = pc.CleanupMessage
		}
		t.row(pc.ClusterID, canary, fmt.Sprintf("%d/%d", pc.Step+1, len(s.Steps)), string(pc.Action), st,
			pc.Reason, truncate(msg, 80), age(now, pc.StartedAt))
	}
	return t.flush()
}

func parenthesized(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func orPrefix(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func timeAndAge(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339) + " (" + age(now, t) + " ago)"
}

func describeSelection(sel events.ClusterSelection) string {
	var parts []string
	if sel.Selector != nil {
		parts = append(parts, "selector "+formatSelector(sel.Selector))
	}
	if len(sel.ClusterIDs) > 0 {
		ids := sel.ClusterIDs
		more := ""
		if len(ids) > 10 {
			ids, more = ids[:10], fmt.Sprintf(" and %d more", len(sel.ClusterIDs)-10)
		}
		parts = append(parts, "clusters "+strings.Join(ids, ",")+more)
	}
	return strings.Join(parts, " + ")
}

func formatRefs(refs []events.ObjectRef) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.Namespace + "/" + r.Name
	}
	return strings.Join(s, ",")
}

// formatDays writes days compactly: Mon-Fri, Sat,Sun, daily.
func formatDays(days []events.Weekday) string {
	all := weekdays()
	var on [7]bool
	for _, d := range days {
		for i, w := range all {
			if w == d {
				on[i] = true
			}
		}
	}
	if on == [7]bool{true, true, true, true, true, true, true} {
		return "daily"
	}
	var parts []string
	for i := 0; i < 7; {
		if !on[i] {
			i++
			continue
		}
		j := i
		for j+1 < 7 && on[j+1] {
			j++
		}
		switch {
		case j == i:
			parts = append(parts, string(all[i]))
		case j == i+1:
			parts = append(parts, string(all[i]), string(all[j]))
		default:
			parts = append(parts, string(all[i])+"-"+string(all[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// controlResult is what `plan pause|resume|abort -o json|yaml` prints.
type controlResult struct {
	PlanID   string                    `json:"planId"`
	Request  string                    `json:"request"`
	EventID  string                    `json:"eventId"`
	Subject  string                    `json:"subject"`
	Stream   string                    `json:"stream"`
	Sequence uint64                    `json:"sequence"`
	Status   *events.PlanStatusChanged `json:"status,omitempty"`
	Rejected *events.Rejected          `json:"rejected,omitempty"`
}

// runPlanControl publishes a pause, resume or abort request; with --wait
// it follows the plan until the request took effect (pause: Paused;
// resume: no longer Paused; abort: the plan ended) or was rejected.
func runPlanControl(ctx context.Context, io IO, verb string, args []string) error {
	fs := newFlags("plan "+verb, io)
	hf := addHubFlags(fs, io)
	reason := fs.String("reason", "", "why, for the audit log")
	wait := fs.Bool("wait", false, "wait until the scheduler applied the request (abort: until the plan ended) or rejected it")
	timeout := fs.Duration("timeout", 0, "give up waiting after this long (default: no limit)")
	pos, out, help, err := hf.parse(fs, args)
	if err != nil || help {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: plan %s ID [--reason TEXT] [--wait]", ErrUsage, verb)
	}
	planID := pos[0]
	if err := events.ValidID(planID); err != nil {
		return fmt.Errorf("plan id: %w", err)
	}
	var data events.Data
	var done func(events.PlanStatusChanged) bool
	var awaited string
	switch verb {
	case "pause":
		awaited = "phase Paused"
		data = events.PlanPauseRequested{PlanID: planID, Reason: *reason}
		done = func(st events.PlanStatusChanged) bool {
			return st.Phase == events.PlanPaused || isTerminalPhase(st.Phase)
		}
	case "resume":
		awaited = "the plan to resume"
		data = events.PlanResumeRequested{PlanID: planID, Reason: *reason}
		done = func(st events.PlanStatusChanged) bool { return st.Phase != events.PlanPaused }
	default:
		awaited = "the plan to end Aborted"
		data = events.PlanAbortRequested{PlanID: planID, Reason: *reason}
		done = func(st events.PlanStatusChanged) bool { return isTerminalPhase(st.Phase) }
	}
	e, err := events.New(requestSource(io), planID, data)
	if err != nil {
		return fmt.Errorf("invalid %s request: %s", verb, oneLine(err))
	}
	subject, err := events.SubjectFor(e.Type(), planID)
	if err != nil {
		return err
	}
	nc, js, err := hf.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	p, err := getPlan(ctx, js, planID)
	if err != nil {
		return err
	}
	var sub *planEvents
	if *wait {
		if sub, err = subscribePlanEvents(ctx, js, planID); err != nil {
			return err
		}
		defer sub.stop()
	}
	ack, err := bus.NewPublisher(js).Publish(ctx, subject, e)
	if err != nil {
		return err
	}
	res := controlResult{PlanID: planID, Request: verb, EventID: e.ID(), Subject: subject, Stream: ack.Stream, Sequence: ack.Sequence}
	progress := io.Out
	if out != outputTable {
		progress = io.Err
	}
	fmt.Fprintf(progress, "requested %s of plan %s (now %s): %s on %s -> %s seq %d\n", verb, planID, p.Phase, e.Type(), subject, ack.Stream, ack.Sequence)
	var waitErr error
	if *wait {
		wctx, cancel := waitContext(ctx, *timeout)
		defer cancel()
		last := ""
		waitErr = followPlan(wctx, io, sub, e.ID(), func(st events.PlanStatusChanged) bool {
			res.Status = &st
			if line := statusLine(st, len(p.Spec.Steps)); line != last {
				fmt.Fprintln(progress, line)
				last = line
			}
			return done(st)
		})
		waitErr = waitError(waitErr, planID, *timeout, awaited, res.Status)
		if waitErr == nil && verb == "abort" && res.Status.Phase != events.PlanAborted {
			waitErr = fmt.Errorf("plan %s ended %s, not Aborted", planID, res.Status.Phase)
		}
	}
	var rej *rejectedError
	if errors.As(waitErr, &rej) {
		res.Rejected = &rej.r
	}
	if out != outputTable {
		if err := writeData(io.Out, out, res); err != nil {
			return err
		}
	}
	return waitErr
}
