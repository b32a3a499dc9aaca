package ibuctl

import (
	"context"
	"fmt"
	"io"
	"os"

	"ibu.dev/shared/contractdoc"
	"ibu.dev/shared/events"
)

func runContract(_ context.Context, io IO, args []string) error {
	fs := newFlags("contract", io)
	write := fs.Bool("write", false, "regenerate the generated sections of README.md and docs/architecture.md under --root instead of printing the table")
	root := fs.String("root", ".", "the repository root, for --write")
	if err := parse(fs, args); err != nil {
		return err
	}
	if !*write {
		_, err := fmt.Fprint(io.Out, contractdoc.Contract())
		return err
	}
	changed, err := contractdoc.Write(*root)
	if err != nil {
		return err
	}
	for _, f := range changed {
		if _, err := fmt.Fprintln(io.Out, "wrote", f); err != nil {
			return err
		}
	}
	return nil
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
