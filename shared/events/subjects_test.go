package events

import (
	"errors"
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	for _, c := range []struct {
		id     string
		ok     bool
		phrase string // in the error
	}{
		{"sno1", true, ""},
		{"sno-001", true, ""},
		{"0", true, ""},
		{strings.Repeat("a", 63), true, ""},
		{"plans", true, ""},
		{"plan", false, "ibu.event.plan.* is the namespace of plan events"},
		{"", false, "empty"},
		{strings.Repeat("a", 64), false, "DNS label"},
		{"SNO1", false, "DNS label"},
		{"-sno", false, "DNS label"},
		{"sno-", false, "DNS label"},
		{"sno.1", false, "DNS label"},
		{"sno*", false, "DNS label"},
		{"sno>", false, "DNS label"},
		{"sno 1", false, "DNS label"},
		{"sno\n", false, "DNS label"},
		{"snö", false, "DNS label"},
	} {
		err := ValidID(c.id)
		if (err == nil) != c.ok {
			t.Errorf("ValidID(%q) = %v, want ok=%v", c.id, err, c.ok)
			continue
		}
		if err != nil && (!errors.Is(err, ErrInvalidID) || !strings.Contains(err.Error(), c.phrase)) {
			t.Errorf("ValidID(%q) = %v, want ErrInvalidID mentioning %q", c.id, err, c.phrase)
		}
	}
}

func TestSubjectFor(t *testing.T) {
	for _, c := range []struct {
		typ, id, want string
	}{
		{TypePlanCreateRequested, "", "ibu.request.plan.create"},
		{TypePlanAbortRequested, "ignored", "ibu.request.plan.abort"},
		{TypeSeedBuildRequested, "", "ibu.request.seed.build"},
		{TypePlanStatusChanged, "upgrade-4-16-3", "ibu.event.plan.upgrade-4-16-3.status.changed"},
		{TypeStageChanged, "sno-001", "ibu.event.sno-001.stage.changed"},
		{TypeSeedBuildCompleted, "seed-lab", "ibu.event.seed-lab.seed.build.completed"},
		{TypeRejected, "sno-001", "ibu.event.sno-001.rejected"},
		{TypePrecacheRequested, "sno-001", "ibu.task.precache.sno-001"},
		{TypePrecachePlanned, "sno-001", "ibu.event.sno-001.precache.planned"},
		{TypeBackupRequested, "sno-001", "ibu.task.backup-restore.sno-001"},
		{TypeRestoreRequested, "sno-001", "ibu.task.backup-restore.sno-001"},
		{TypeHealthCheckRequested, "sno-001", "ibu.task.health.sno-001"},
	} {
		got, err := SubjectFor(c.typ, c.id)
		if err != nil || got != c.want {
			t.Errorf("SubjectFor(%s, %q) = %q, %v; want %q", c.typ, c.id, got, err, c.want)
		}
	}
	for _, c := range []struct{ typ, id string }{
		{TypeStageChanged, "plan"},
		{TypeStageChanged, "a.b"},
		{TypeStageChanged, ""},
		{TypePlanStatusChanged, "*"},
		{TypeHealthCheckRequested, ">"},
		{TypeHealthCheckRequested, "sno 1"},
	} {
		if got, err := SubjectFor(c.typ, c.id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("SubjectFor(%s, %q) = %q, %v; want ErrInvalidID", c.typ, c.id, got, err)
		}
	}
	if _, err := SubjectFor("dev.ibu.nope.v1", "sno1"); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type: %v", err)
	}
}

// TestSubjectsMatchFilters: every subject of every type is under its
// stream's filter and has the expected number of tokens, none empty.
func TestSubjectsMatchFilters(t *testing.T) {
	for _, s := range All() {
		subj, err := SubjectFor(s.Type, "sno-001")
		if err != nil {
			t.Fatalf("%s: %v", s.Type, err)
		}
		prefix := map[Scope]string{ScopeRequest: SubjectRequests, ScopeTask: SubjectTasks,
			ScopeCluster: SubjectEvents, ScopePlan: SubjectEvents}[s.Scope]
		if !strings.HasPrefix(subj, strings.TrimSuffix(prefix, ">")) {
			t.Errorf("%s: %s is not under %s", s.Type, subj, prefix)
		}
		for _, tok := range strings.Split(subj, ".") {
			if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
				t.Errorf("%s: bad token %q in %s", s.Type, tok, subj)
			}
		}
		if s.Scope == ScopeTask && strings.Count(subj, ".") != 3 {
			t.Errorf("%s: task subject %s must be ibu.task.<service>.<cluster>", s.Type, subj)
		}
	}
}

func TestSubjectHelpers(t *testing.T) {
	ok := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := ok(DLQSubject(ServiceHealth)); got != "ibu.dlq.health" {
		t.Errorf("DLQSubject = %s", got)
	}
	if got := ok(RequestSubject("plan.create")); got != "ibu.request.plan.create" {
		t.Errorf("RequestSubject = %s", got)
	}
	for _, bad := range []func() (string, error){
		func() (string, error) { return DLQSubject("health.>") },
		func() (string, error) { return DLQSubject("") },
		func() (string, error) { return TaskSubject("Health", "sno1") },
		func() (string, error) { return RequestSubject("plan..create") },
		func() (string, error) { return RequestSubject("plan.*") },
		func() (string, error) { return ClusterEventSubject("sno1", "stage changed") },
		func() (string, error) { return PlanEventSubject("p1", ">") },
	} {
		if s, err := bad(); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
}
