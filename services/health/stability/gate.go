package stability

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"

	"ibu.dev/shared/events"
)

// Defaults of a gate.
const (
	DefaultWindow   = 60 * time.Second
	DefaultTimeout  = 30 * time.Minute
	DefaultInterval = 5 * time.Second
)

// Reasons of a failed gate.
const (
	ReasonTimedOut     = "TimedOut"
	ReasonUnknownCheck = "UnknownCheck"
	ReasonNoChecks     = "NoChecksSelected"
	ReasonUnreachable  = "ClusterUnreachable"
	ReasonUnknownTier  = "UnknownTier"
)

// Selection picks the checks of a gate: by name, by tier, or (both
// empty) all of them.
type Selection struct {
	Checks []string
	Tiers  []events.HealthTier
}

func (s Selection) pick() ([]check, error) {
	for _, n := range s.Checks {
		if !slices.Contains(Names(), n) {
			return nil, fmt.Errorf("%w: %q (known: %s)", errUnknownCheck, n, strings.Join(Names(), ", "))
		}
	}
	for _, t := range s.Tiers {
		if t != events.TierMandatory && t != events.TierDeferred && t != events.TierAdvisory {
			return nil, fmt.Errorf("%w: %q", errUnknownTier, t)
		}
	}
	var out []check
	for _, c := range allChecks {
		if (len(s.Checks) == 0 || slices.Contains(s.Checks, c.name)) && (len(s.Tiers) == 0 || slices.Contains(s.Tiers, c.tier)) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, errNoChecks
	}
	return out, nil
}

var (
	errUnknownCheck = errors.New("unknown check")
	errUnknownTier  = errors.New("unknown tier")
	errNoChecks     = errors.New("the selection matches no check")
)

// Round runs the selected checks once and returns a result per check.
// An API error fails its check (reason APIError); it is not an error of
// the round.
func Round(ctx context.Context, dc dynamic.Interface, sel Selection) ([]events.CheckResult, error) {
	checks, err := sel.pick()
	if err != nil {
		return nil, err
	}
	return round(ctx, dc, checks), nil
}

func round(ctx context.Context, dc dynamic.Interface, checks []check) []events.CheckResult {
	out := make([]events.CheckResult, len(checks))
	for i, c := range checks {
		r := c.run(ctx, dc)
		out[i] = events.CheckResult{Name: c.name, Tier: c.tier, Passed: r.passed, Reason: r.reason, Message: r.message}
	}
	return out
}

// healthy: every gating check passed (Advisory ones never gate).
func healthy(rs []events.CheckResult) bool {
	for _, r := range rs {
		if !r.Passed && r.Tier != events.TierAdvisory {
			return false
		}
	}
	return true
}

// Gate is one stabilisation wait.
type Gate struct {
	Client    dynamic.Interface
	Selection Selection
	// Window: health must hold continuously this long (0 passes on the
	// first healthy round).
	Window time.Duration
	// Timeout: a gate never waits forever; past it, it fails TimedOut.
	Timeout time.Duration
	// Interval between rounds (default DefaultInterval).
	Interval time.Duration
	// OnRound, when set, sees every round's results (tests, progress).
	OnRound func([]events.CheckResult)
	Now     func() time.Time
}

// Outcome is how a gate ended.
type Outcome struct {
	Passed   bool
	Reason   string // when not passed
	Message  string
	Checks   []events.CheckResult // the last round
	Rounds   int
	Resets   int // times health was lost after it had held
	Duration time.Duration
}

// Wait runs rounds until health has held for the window or the deadline
// passes. Only ctx ending returns an error.
func (g *Gate) Wait(ctx context.Context) (Outcome, error) {
	now := g.Now
	if now == nil {
		now = time.Now
	}
	interval, timeout := g.Interval, g.Timeout
	if interval <= 0 {
		interval = DefaultInterval
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	start := now()
	checks, err := g.Selection.pick()
	if err != nil {
		reason := ReasonUnknownCheck
		switch {
		case errors.Is(err, errNoChecks):
			reason = ReasonNoChecks
		case errors.Is(err, errUnknownTier):
			reason = ReasonUnknownTier
		}
		return Outcome{Reason: reason, Message: err.Error()}, nil
	}
	var out Outcome
	var stableSince time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		rctx, cancel := context.WithTimeout(ctx, max(interval, 10*time.Second))
		res := round(rctx, g.Client, checks)
		cancel()
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		t := now()
		out.Rounds++
		out.Checks = res
		out.Duration = t.Sub(start)
		if g.OnRound != nil {
			g.OnRound(res)
		}
		if healthy(res) {
			if stableSince.IsZero() {
				stableSince = t
			}
			if t.Sub(stableSince) >= g.Window {
				out.Passed = true
				out.Message = fmt.Sprintf("healthy for %s (%d rounds, %d resets)", t.Sub(stableSince).Round(time.Millisecond), out.Rounds, out.Resets)
				return out, nil
			}
		} else {
			if !stableSince.IsZero() {
				out.Resets++
			}
			stableSince = time.Time{}
		}
		left := timeout - t.Sub(start)
		if left <= 0 {
			out.Reason = ReasonTimedOut
			if healthy(res) {
				out.Message = fmt.Sprintf("healthy for only %s of the %s window when the %s deadline passed", t.Sub(stableSince).Round(time.Millisecond), g.Window, timeout)
			} else {
				out.Message = fmt.Sprintf("not healthy within %s: %s", timeout, failures(res))
			}
			return out, nil
		}
		timer.Reset(min(interval, left))
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-timer.C:
		}
	}
}

// failures names each failing check and its culprits.
func failures(rs []events.CheckResult) string {
	var parts []string
	for _, r := range rs {
		if !r.Passed && r.Tier != events.TierAdvisory {
			parts = append(parts, fmt.Sprintf("%s %s: %s", r.Name, r.Reason, r.Message))
		}
	}
	return strings.Join(parts, " | ")
}
