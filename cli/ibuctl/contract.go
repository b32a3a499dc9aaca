package ibuctl

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"ibu.dev/shared/events"
)

func runContract(_ context.Context, io IO, args []string) error {
	fs := newFlags("contract", io)
	if err := parse(fs, args); err != nil {
		return err
	}
	_, err := fmt.Fprint(io.Out, ContractTable())
	return err
}

// ContractTable renders every event type of the contract as a markdown
// table; the README embeds it and a test keeps the two equal.
func ContractTable() string {
	var b strings.Builder
	b.WriteString("| type | subject | consumed by | schema | meaning |\n|---|---|---|---|---|\n")
	for _, s := range events.All() {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | [%s](shared/events/%s) | %s |\n",
			s.Type, subjectPattern(s), consumer(s), strings.TrimPrefix(s.SchemaFile(), "schemas/"), s.SchemaFile(),
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

func runValidate(_ context.Context, io IO, args []string) error {
	fs := newFlags("validate", io)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: validate FILE... (- for standard input)", ErrUsage)
	}
	bad := 0
	for _, name := range fs.Args() {
		b, err := readInput(io, name)
		if err != nil {
			return err
		}
		e, err := events.DecodeStructured(b)
		if err != nil {
			bad++
			fmt.Fprintf(io.Out, "%s: INVALID %s: %v\n", name, events.Reason(err), err)
			continue
		}
		fmt.Fprintf(io.Out, "%s: ok %s id=%s subject=%s\n", name, e.Type(), e.ID(), e.Subject())
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d events invalid", bad, fs.NArg())
	}
	return nil
}

func readInput(iox IO, name string) ([]byte, error) {
	if name == "-" {
		b, err := io.ReadAll(io.LimitReader(iox.In, events.MaxEventSize+1))
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		return b, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read event: %w", err)
	}
	defer f.Close()
	// Read one byte past the limit so the decoder reports TooLarge.
	b, err := io.ReadAll(io.LimitReader(f, events.MaxEventSize+1))
	if err != nil {
		return nil, fmt.Errorf("read event %s: %w", name, err)
	}
	return b, nil
}
