package contractdoc

import (
	"fmt"
	"strings"

	"ibu.dev/shared/buckets"
	"ibu.dev/shared/events"
)

// Asks renders the contract's request/answer pairs (events.Asks) as a
// markdown table: who asks whom, the task and its two answers.
func Asks() string {
	var b strings.Builder
	b.WriteString("| asker | answered by | task | completed | failed | task subject |\n|---|---|---|---|---|---|\n")
	for _, a := range events.Asks() {
		subject := ""
		if s, ok := events.Lookup(a.Request); ok {
			subject = subjectPattern(s)
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` | `%s` | `%s` | `%s` |\n", a.Asker, a.Service, a.Request, a.Completed, a.Failed, subject)
	}
	return b.String()
}

// Buckets renders the bucket catalogue (buckets.All) as a markdown table.
func Buckets() string {
	var b strings.Builder
	b.WriteString("| bucket | kind | keys | value | created by | written by spokes |\n|---|---|---|---|---|---|\n")
	for _, s := range buckets.All() {
		value := s.Value
		if value != "" {
			value = "`" + value + "`"
		}
		spokes := "no"
		if s.SpokeWritten {
			spokes = "yes, each its own key"
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s | %s | %s |\n", s.Name, s.Kind, s.Keys, value, s.CreatedBy, spokes)
	}
	return b.String()
}
