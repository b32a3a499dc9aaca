package contractdoc

import (
	"fmt"
	"strings"

	"ibu.dev/shared/events"
)

// Contract renders every event type of the contract as a markdown table,
// with schema links relative to the repository root.
func Contract() string {
	return contract("")
}

// contract renders the table with schema links prefixed by up (e.g. "../"
// for a document one directory below the root).
func contract(up string) string {
	var b strings.Builder
	b.WriteString("| type | subject | consumed by | schema | meaning |\n|---|---|---|---|---|\n")
	for _, s := range events.All() {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | [%s](%sshared/events/%s) | %s |\n",
			s.Type, subjectPattern(s), consumer(s), strings.TrimPrefix(s.SchemaFile(), "schemas/"), up, s.SchemaFile(),
			strings.ReplaceAll(s.Description, "|", "\\|"))
	}
	return b.String()
}

// subjectPattern shows where a type travels, with <cluster> or <plan> in
// place of the id. It builds the subject for a sample id with the contract's
// own function and swaps the id for the placeholder, so the table cannot
// drift from what services publish.
func subjectPattern(s events.Spec) string {
	const sample = "x0x0x"
	subj, err := events.SubjectFor(s.Type, sample)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	placeholder := "<cluster>"
	if s.Scope == events.ScopePlan {
		placeholder = "<plan>"
	}
	return strings.Replace(subj, sample, placeholder, 1)
}

func consumer(s events.Spec) string {
	switch s.Scope {
	case events.ScopeRequest:
		if strings.HasPrefix(s.Name, "seed.") {
			return "seed-builder"
		}
		return "scheduler"
	case events.ScopeTask:
		return s.Service
	default:
		return "audit stream (scheduler, ibuctl)"
	}
}
