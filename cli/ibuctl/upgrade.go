package ibuctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
)

// dryRunTimeout is how long `upgrade --dry-run` waits for the scheduler's
// answer unless --timeout says otherwise.
const dryRunTimeout = time.Minute

// upgradeResult is what `upgrade -o json|yaml` prints.
type upgradeResult struct {
	Request  events.PlanCreateRequested `json:"request"`
	EventID  string                     `json:"eventId"`
	Subject  string                     `json:"subject"`
	Stream   string                     `json:"stream"`
	Sequence uint64                     `json:"sequence"`
	// DryRun is the scheduler's answer to a dry run; Status the last
	// status seen with --wait; Rejected the scheduler's refusal.
	DryRun   *events.PlanStatusChanged `json:"dryRun,omitempty"`
	Status   *events.PlanStatusChanged `json:"status,omitempty"`
	Rejected *events.Rejected          `json:"rejected,omitempty"`
}

// upgradeFlags holds the parsed flags of `ibuctl upgrade`.
type upgradeFlags struct {
	planID, seedImage, seedVersion string
	pullSecret                     string
	oadp, extra                    []events.ObjectRef
	selector                       string
	clusters, canaries             []string
	steps                          []stepSpec
	maxConcurrency                 int
	maxFailures, onBreach          string
	windows                        []events.MaintenanceWindow
	noAutoRollback, dryRun, wait   bool
	timeout                        time.Duration
}

func runUpgrade(ctx context.Context, io IO, args []string) error {
	fs := newFlags("upgrade", io)
	hf := addHubFlags(fs, io)
	var f upgradeFlags
	fs.StringVar(&f.planID, "plan", "", "plan id: a DNS label (required)")
	fs.StringVar(&f.seedImage, "seed-image", "", "seed image pull spec, by tag or digest (required)")
	fs.StringVar(&f.seedVersion, "seed-version", "", "OpenShift version the seed carries, e.g. 4.16.9 (required)")
	fs.StringVar(&f.pullSecret, "pull-secret", "", "registry credentials: kubernetes-secret:NAME[:NAMESPACE] or dockerconfig-file:NAME:/PATH")
	fs.Func("oadp", "ConfigMaps with Velero Backups and Restores: NS/NAME,... (repeatable)", func(s string) error {
		refs, err := parseObjectRefs(s)
		f.oadp = append(f.oadp, refs...)
		return err
	})
	fs.Func("extra-manifests", "ConfigMaps of manifests applied after the pivot: NS/NAME,... (repeatable)", func(s string) error {
		refs, err := parseObjectRefs(s)
		f.extra = append(f.extra, refs...)
		return err
	})
	fs.StringVar(&f.selector, "selector", "", "label selector: 'k=v,k!=v,k in (a,b),k notin (a,b),k,!k'")
	fs.Func("clusters", "cluster ids: a,b,c (repeatable; with --selector, both sets)", func(s string) error {
		ids, err := parseIDs(s)
		f.clusters = append(f.clusters, ids...)
		return err
	})
	fs.Func("step", "a step: ACTIONS[:CONCURRENCY[:TIMEOUT]], e.g. Prep or 'Upgrade,Finalize:5:2h' (repeatable, in order; default Prep, then Upgrade,Finalize)", func(s string) error {
		st, err := parseStep(s)
		f.steps = append(f.steps, st)
		return err
	})
	fs.IntVar(&f.maxConcurrency, "max-concurrency", 10, "clusters busy at once in a step without its own CONCURRENCY")
	fs.Func("canary", "canary cluster ids, run first one at a time: a,b (repeatable)", func(s string) error {
		ids, err := parseIDs(s)
		f.canaries = append(f.canaries, ids...)
		return err
	})
	fs.StringVar(&f.maxFailures, "max-failures", "", "failures tolerated: a count (3) or a share of the clusters (10%)")
	fs.StringVar(&f.onBreach, "on-breach", "", "what to do beyond --max-failures: pause, abort or rollback (default pause)")
	fs.Func("window", "maintenance window: 'DAYS HH:MM-HH:MM [TZ]', e.g. 'Mon-Fri 01:00-05:00 Europe/Paris' (repeatable; none: any time)", func(s string) error {
		w, err := parseWindow(s)
		f.windows = append(f.windows, w)
		return err
	})
	fs.BoolVar(&f.noAutoRollback, "no-auto-rollback", false, "do not let a cluster roll back by itself after a failed pivot")
	fs.BoolVar(&f.dryRun, "dry-run", false, "ask the scheduler what the plan would do, change nothing, print its answer")
	fs.BoolVar(&f.wait, "wait", false, "follow the plan until it ends: exit 0 if Completed, 1 if Failed, Aborted or rejected")
	fs.DurationVar(&f.timeout, "timeout", 0, "give up waiting after this long (default: 1m for --dry-run, none for --wait)")
	pos, out, help, err := hf.parse(fs, args)
	if err != nil || help {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: upgrade takes no arguments, got %q", ErrUsage, pos)
	}
	req, err := f.request()
	if err != nil {
		return err
	}
	e, err := events.New(requestSource(io), req.PlanID, req)
	if err != nil {
		return fmt.Errorf("invalid plan request: %s", oneLine(err))
	}
	subject, err := events.SubjectFor(e.Type(), req.PlanID)
	if err != nil {
		return err
	}

	nc, js, err := hf.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := refuseExistingPlan(ctx, js, req.PlanID); err != nil {
		return err
	}
	var sub *planEvents
	if f.dryRun || f.wait {
		if sub, err = subscribePlanEvents(ctx, js, req.PlanID); err != nil {
			return err
		}
		defer sub.stop()
	}
	ack, err := bus.NewPublisher(js).Publish(ctx, subject, e)
	if err != nil {
		return err
	}
	res := upgradeResult{Request: req, EventID: e.ID(), Subject: subject, Stream: ack.Stream, Sequence: ack.Sequence}
	// Progress goes to stdout for the table format; with json or yaml,
	// stdout carries only the result document.
	progress := io.Out
	if out != outputTable {
		progress = io.Err
	}
	what := "plan"
	if f.dryRun {
		what = "dry run of plan"
	}
	fmt.Fprintf(progress, "requested %s %s: %s on %s -> %s seq %d\n", what, req.PlanID, e.Type(), subject, ack.Stream, ack.Sequence)

	var waitErr error
	switch {
	case f.dryRun:
		waitErr = waitDryRun(ctx, io, sub, &res, progress, out, f.timeout)
	case f.wait:
		waitErr = waitPlanEnd(ctx, io, sub, &res, progress, f.timeout)
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

// request builds and checks the plan request from the flags.
func (f upgradeFlags) request() (events.PlanCreateRequested, error) {
	var req events.PlanCreateRequested
	switch {
	case f.planID == "":
		return req, fmt.Errorf("%w: --plan is required", ErrUsage)
	case f.seedImage == "":
		return req, fmt.Errorf("%w: --seed-image is required", ErrUsage)
	case f.seedVersion == "":
		return req, fmt.Errorf("%w: --seed-version is required", ErrUsage)
	case f.selector == "" && len(f.clusters) == 0:
		return req, fmt.Errorf("%w: choose the clusters with --selector or --clusters", ErrUsage)
	case f.maxConcurrency < 1:
		return req, fmt.Errorf("%w: --max-concurrency must be at least 1", ErrUsage)
	case f.onBreach != "" && f.maxFailures == "":
		return req, fmt.Errorf("%w: --on-breach needs --max-failures", ErrUsage)
	case f.wait && f.dryRun:
		return req, fmt.Errorf("%w: --dry-run already waits for its answer; leave out --wait", ErrUsage)
	}
	if err := events.ValidID(f.planID); err != nil {
		return req, fmt.Errorf("--plan: %w", err)
	}
	if strings.ContainsAny(f.seedImage, " \t\n") {
		return req, fmt.Errorf("--seed-image %q: an image reference has no spaces", f.seedImage)
	}
	if !regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`).MatchString(f.seedVersion) {
		return req, fmt.Errorf("--seed-version %q: want a version such as 4.16.9 or 4.17.0-rc.1", f.seedVersion)
	}
	req = events.PlanCreateRequested{
		PlanID: f.planID, SeedImage: f.seedImage, SeedVersion: f.seedVersion,
		OADPContent: f.oadp, ExtraManifests: f.extra,
		Clusters: events.ClusterSelection{ClusterIDs: f.clusters},
		Steps:    planSteps(f.steps, f.maxConcurrency),
		Canaries: f.canaries, MaintenanceWindows: f.windows, DryRun: f.dryRun,
	}
	if f.pullSecret != "" {
		ref, err := parsePullSecret(f.pullSecret)
		if err != nil {
			return req, fmt.Errorf("--pull-secret: %w", err)
		}
		req.PullSecretRef = ref
	}
	if f.selector != "" {
		sel, err := parseSelector(f.selector)
		if err != nil {
			return req, fmt.Errorf("--selector: %w", err)
		}
		req.Clusters.Selector = sel
	}
	if f.maxFailures != "" {
		if !regexp.MustCompile(`^([0-9]{1,9}|([0-9]|[1-9][0-9]|100)%)$`).MatchString(f.maxFailures) {
			return req, fmt.Errorf("--max-failures %q: want a count such as 3 or a share such as 10%%", f.maxFailures)
		}
		action, err := parseBreach(f.onBreach)
		if err != nil {
			return req, err
		}
		req.FailurePolicy = &events.FailurePolicy{MaxFailures: f.maxFailures, OnBreach: action}
	}
	if f.noAutoRollback {
		no := false
		req.AutoRollbackOnFailure = &no
	}
	return req, nil
}

func parseBreach(s string) (events.BreachAction, error) {
	switch strings.ToLower(s) {
	case "", "pause":
		return events.BreachPause, nil
	case "abort":
		return events.BreachAbort, nil
	case "rollback":
		return events.BreachRollback, nil
	}
	return "", fmt.Errorf("--on-breach %q: want pause, abort or rollback", s)
}

// requestSource is the CloudEvents source of ibuctl's requests: who asked.
func requestSource(io IO) string {
	if u := env(io, "USER", ""); u != "" {
		return "/ibuctl/users/" + url.PathEscape(u)
	}
	return "/ibuctl"
}

// oneLine flattens a multi-line error (a schema validation lists every
// problem on its own line) into one line.
func oneLine(err error) string { return flatten(err.Error()) }

// flatten joins the lines of s with "; ".
func flatten(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	out := lines[:0]
	for _, l := range lines {
		if l = strings.TrimPrefix(strings.TrimSpace(l), "- "); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

// refuseExistingPlan stops a create request for a plan id that exists:
// the scheduler would ignore the same request (so --wait would wait
// forever) and refuse a different one. A hub whose IBU_PLANS this user
// cannot read is left to the scheduler's judgement.
func refuseExistingPlan(ctx context.Context, js jetstream.JetStream, planID string) error {
	kv, err := js.KeyValue(ctx, bus.BucketPlans)
	if err != nil {
		return nil
	}
	entry, err := kv.Get(ctx, planID)
	if err != nil {
		return nil
	}
	p, err := decodePlan(entry.Value())
	phase := "unknown phase"
	if err == nil {
		phase = string(p.Phase)
	}
	return fmt.Errorf("plan %s already exists (%s): plans are immutable, use a new plan id (follow this one with `ibuctl status %s --watch`)", planID, phase, planID)
}

// waitDryRun waits for the scheduler's DryRun answer and prints it.
func waitDryRun(ctx context.Context, iox IO, sub *planEvents, res *upgradeResult, w io.Writer, out outputFormat, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = dryRunTimeout
	}
	wctx, cancel := waitContext(ctx, timeout)
	defer cancel()
	err := followPlan(wctx, iox, sub, res.EventID, func(st events.PlanStatusChanged) bool {
		if st.Reason != "DryRun" {
			return false
		}
		res.DryRun = &st
		return true
	})
	if err != nil {
		return waitError(err, res.Request.PlanID, timeout, "the dry-run answer", nil)
	}
	if out == outputTable {
		st := res.DryRun
		fmt.Fprintf(w, "dry run of plan %s: %d clusters, estimated duration %s (maintenance windows not counted)\n",
			st.PlanID, st.Counts.Total, orDash(eta(st.ETASeconds)))
		if st.Message != "" {
			fmt.Fprintf(w, "  %s\n", st.Message)
		}
	}
	return nil
}

// waitPlanEnd prints a line per status change until the plan ends.
func waitPlanEnd(ctx context.Context, iox IO, sub *planEvents, res *upgradeResult, w io.Writer, timeout time.Duration) error {
	wctx, cancel := waitContext(ctx, timeout)
	defer cancel()
	fmt.Fprintf(w, "waiting for plan %s to end (Ctrl-C stops waiting, not the plan)\n", res.Request.PlanID)
	last := ""
	err := followPlan(wctx, iox, sub, res.EventID, func(st events.PlanStatusChanged) bool {
		res.Status = &st
		if line := statusLine(st, len(res.Request.Steps)); line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		return isTerminalPhase(st.Phase)
	})
	if err != nil {
		return waitError(err, res.Request.PlanID, timeout, "the plan to end", res.Status)
	}
	return phaseResult(*res.Status)
}

// phaseResult is nil for a Completed plan and an error for any other end.
func phaseResult(st events.PlanStatusChanged) error {
	if st.Phase == events.PlanCompleted {
		return nil
	}
	detail := joinNonEmpty(": ", st.Reason, flatten(st.Message))
	if detail != "" {
		detail = ": " + detail
	}
	return fmt.Errorf("plan %s ended %s%s (%d of %d clusters failed)", st.PlanID, st.Phase, detail, st.Counts.Failed, st.Counts.Total)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// decodePlan parses an IBU_PLANS value.
func decodePlan(b []byte) (state.Plan, error) {
	var p state.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode plan: %w", err)
	}
	return p, nil
}
