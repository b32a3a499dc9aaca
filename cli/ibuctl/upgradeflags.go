package ibuctl

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
)

// stepSpec is one --step flag: the actions, and the concurrency and timeout
// if given (0: --max-concurrency, and the scheduler's default timeout).
type stepSpec struct {
	actions     []stages.Action
	concurrency int
	timeout     time.Duration
}

// parseStep parses 'ACTION[,ACTION...][:CONCURRENCY[:TIMEOUT]]', e.g.
// 'Prep', 'Upgrade,Finalize:5:2h' or 'Upgrade,Finalize::90m'. Action names
// are case-insensitive; '+' may separate them too.
func parseStep(s string) (stepSpec, error) {
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return stepSpec{}, fmt.Errorf("step %q: want ACTIONS[:CONCURRENCY[:TIMEOUT]]", s)
	}
	var st stepSpec
	for _, a := range strings.FieldsFunc(parts[0], func(r rune) bool { return r == ',' || r == '+' }) {
		act, err := parseAction(strings.TrimSpace(a))
		if err != nil {
			return stepSpec{}, fmt.Errorf("step %q: %w", s, err)
		}
		if slices.Contains(st.actions, act) {
			return stepSpec{}, fmt.Errorf("step %q: action %s given twice", s, act)
		}
		st.actions = append(st.actions, act)
	}
	if len(st.actions) == 0 {
		return stepSpec{}, fmt.Errorf("step %q: no action (want e.g. Prep or Upgrade,Finalize)", s)
	}
	if len(parts) > 1 && strings.TrimSpace(parts[1]) != "" {
		n, err := strconv.Atoi(strings.TrimSpace(parts[1]))
		if err != nil || n < 1 {
			return stepSpec{}, fmt.Errorf("step %q: concurrency %q is not a positive number", s, parts[1])
		}
		st.concurrency = n
	}
	if len(parts) > 2 && strings.TrimSpace(parts[2]) != "" {
		d, err := time.ParseDuration(strings.TrimSpace(parts[2]))
		if err != nil || d <= 0 {
			return stepSpec{}, fmt.Errorf("step %q: timeout %q is not a positive duration such as 90m or 2h", s, parts[2])
		}
		st.timeout = d
	}
	return st, nil
}

// parseAction matches a plan action by name, case-insensitively.
func parseAction(s string) (stages.Action, error) {
	all := stages.PlanActions()
	for _, a := range all {
		if strings.EqualFold(s, string(a)) {
			return a, nil
		}
	}
	names := make([]string, len(all))
	for i, a := range all {
		names[i] = string(a)
	}
	return "", fmt.Errorf("unknown action %q: want one of %s", s, strings.Join(names, ", "))
}

// planSteps turns the --step flags into the contract's steps: the default
// is [Prep] then [Upgrade, Finalize]; a step without its own concurrency
// gets maxConcurrency.
func planSteps(specs []stepSpec, maxConcurrency int) []events.PlanStep {
	if len(specs) == 0 {
		specs = []stepSpec{
			{actions: []stages.Action{stages.ActionPrep}},
			{actions: []stages.Action{stages.ActionUpgrade, stages.ActionFinalize}},
		}
	}
	steps := make([]events.PlanStep, 0, len(specs))
	for _, s := range specs {
		c := s.concurrency
		if c == 0 {
			c = maxConcurrency
		}
		steps = append(steps, events.PlanStep{Actions: s.actions,
			RolloutStrategy: events.RolloutStrategy{MaxConcurrency: c, Timeout: events.Duration(s.timeout)}})
	}
	return steps
}

// parseWindow parses a maintenance window 'DAYS HH:MM-HH:MM [TIMEZONE]',
// e.g. 'Mon-Fri 01:00-05:00 Europe/Paris'. DAYS is a day, a range (Fri-Mon
// wraps round the week), a comma-separated list of those, or daily (also
// '*'). The time zone is an IANA name, UTC when left out. An end before
// the start crosses midnight.
func parseWindow(s string) (events.MaintenanceWindow, error) {
	f := strings.Fields(s)
	if len(f) < 2 || len(f) > 3 {
		return events.MaintenanceWindow{}, fmt.Errorf("window %q: want 'DAYS HH:MM-HH:MM [TIMEZONE]', e.g. 'Mon-Fri 01:00-05:00 Europe/Paris'", s)
	}
	days, err := parseDays(f[0])
	if err != nil {
		return events.MaintenanceWindow{}, fmt.Errorf("window %q: %w", s, err)
	}
	from, to, ok := strings.Cut(f[1], "-")
	if !ok {
		return events.MaintenanceWindow{}, fmt.Errorf("window %q: want the hours as HH:MM-HH:MM", s)
	}
	start, err := parseHHMM(from)
	if err != nil {
		return events.MaintenanceWindow{}, fmt.Errorf("window %q: start: %w", s, err)
	}
	end, err := parseHHMM(to)
	if err != nil {
		return events.MaintenanceWindow{}, fmt.Errorf("window %q: end: %w", s, err)
	}
	if start == end {
		return events.MaintenanceWindow{}, fmt.Errorf("window %q: starts and ends at %s, so it never opens", s, start)
	}
	tz := "UTC"
	if len(f) == 3 {
		tz = f[2]
	}
	if _, err := time.LoadLocation(tz); err != nil || tz == "Local" || tz == "" {
		return events.MaintenanceWindow{}, fmt.Errorf("window %q: unknown time zone %q (want an IANA name such as Europe/Paris or UTC)", s, tz)
	}
	return events.MaintenanceWindow{Days: days, Start: start, End: end, TimeZone: tz}, nil
}

// weekdays in order, Monday first.
func weekdays() []events.Weekday {
	return []events.Weekday{events.Monday, events.Tuesday, events.Wednesday, events.Thursday,
		events.Friday, events.Saturday, events.Sunday}
}

// parseDay matches a day by its three-letter or full English name.
func parseDay(s string) (int, error) {
	full := []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
	for i, d := range weekdays() {
		if strings.EqualFold(s, string(d)) || strings.EqualFold(s, full[i]) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", s)
}

// parseDays parses 'Mon-Fri', 'Sat,Sun', 'Mon,Wed-Fri', 'daily' or '*'
// into distinct days in week order.
func parseDays(s string) ([]events.Weekday, error) {
	all := weekdays()
	if s == "*" || strings.EqualFold(s, "daily") {
		return all, nil
	}
	var on [7]bool
	for _, part := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, err := parseDay(from)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parseDay(to); err != nil {
				return nil, err
			}
		}
		for i := a; ; i = (i + 1) % 7 {
			on[i] = true
			if i == b {
				break
			}
		}
	}
	var days []events.Weekday
	for i, d := range all {
		if on[i] {
			days = append(days, d)
		}
	}
	return days, nil
}

// parseHHMM accepts H:MM or HH:MM and returns HH:MM.
func parseHHMM(s string) (string, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || len(h) < 1 || len(h) > 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return "", fmt.Errorf("%q is not a time of day HH:MM (00:00 to 23:59)", s)
	}
	return fmt.Sprintf("%02d:%02d", hh, mm), nil
}

// parsePullSecret parses 'KIND:NAME[:NAMESPACE]' for a Kubernetes Secret
// (kind kubernetes-secret, or secret) and 'KIND:NAME:PATH' for a docker
// config file (kind dockerconfig-file, or file; PATH absolute).
func parsePullSecret(s string) (*events.SecretRef, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) < 2 || parts[1] == "" {
		return nil, fmt.Errorf("pull secret %q: want kubernetes-secret:NAME[:NAMESPACE] or dockerconfig-file:NAME:/ABSOLUTE/PATH", s)
	}
	ref := &events.SecretRef{Name: parts[1]}
	switch strings.ToLower(parts[0]) {
	case events.SecretKindKubernetes, "secret":
		ref.Kind = events.SecretKindKubernetes
		if len(parts) == 3 {
			if parts[2] == "" {
				return nil, fmt.Errorf("pull secret %q: empty namespace", s)
			}
			ref.Namespace = parts[2]
		}
	case events.SecretKindDockerConfigFile, "file":
		ref.Kind = events.SecretKindDockerConfigFile
		if len(parts) < 3 || !path.IsAbs(parts[2]) {
			return nil, fmt.Errorf("pull secret %q: a dockerconfig-file needs an absolute path: dockerconfig-file:NAME:/ABSOLUTE/PATH", s)
		}
		ref.Path = parts[2]
	default:
		return nil, fmt.Errorf("pull secret %q: unknown kind %q: want kubernetes-secret or dockerconfig-file", s, parts[0])
	}
	return ref, nil
}

// parseObjectRefs parses 'NAMESPACE/NAME,...' (ConfigMaps).
func parseObjectRefs(s string) ([]events.ObjectRef, error) {
	var refs []events.ObjectRef
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		ns, name, ok := strings.Cut(p, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("%q: want NAMESPACE/NAME", p)
		}
		refs = append(refs, events.ObjectRef{Namespace: ns, Name: name})
	}
	return refs, nil
}

// parseIDs parses a comma-separated list of cluster ids, each checked.
func parseIDs(s string) ([]string, error) {
	var ids []string
	for _, p := range strings.Split(s, ",") {
		id := strings.TrimSpace(p)
		if err := events.ValidID(id); err != nil {
			return nil, fmt.Errorf("cluster id: %w", err)
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
