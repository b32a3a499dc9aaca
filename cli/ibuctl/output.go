package ibuctl

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// outputFormat is how a command prints data: -o table|json|yaml.
type outputFormat string

// The output formats.
const (
	outputTable outputFormat = "table"
	outputJSON  outputFormat = "json"
	outputYAML  outputFormat = "yaml"
)

// outputFlag registers -o and --output on fs; parseOutput checks the value.
func outputFlag(fs *flag.FlagSet) *string {
	s := new(string)
	fs.StringVar(s, "o", string(outputTable), "output format: table, json or yaml")
	fs.StringVar(s, "output", string(outputTable), "output format: table, json or yaml (same as -o)")
	return s
}

func parseOutput(s string) (outputFormat, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "table":
		return outputTable, nil
	case "json":
		return outputJSON, nil
	case "yaml", "yml":
		return outputYAML, nil
	}
	return "", fmt.Errorf("%w: -o %q: want table, json or yaml", ErrUsage, s)
}

// writeData prints v as indented JSON or as YAML. YAML is the JSON document
// re-encoded (same field names, durations and times as strings), so both
// formats always carry the same data.
func writeData(w io.Writer, f outputFormat, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output as JSON: %w", err)
	}
	if f == outputYAML {
		if b, err = jsonToYAML(b); err != nil {
			return err
		}
	} else {
		b = append(b, '\n')
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// jsonToYAML converts a JSON document to block-style YAML, keeping the key
// order and quoting strings that would otherwise read as another type.
func jsonToYAML(b []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("convert output to YAML: %w", err)
	}
	var plain func(n *yaml.Node)
	plain = func(n *yaml.Node) {
		// JSON's flow mappings, sequences and quoted strings become block
		// style; the encoder quotes what YAML 1.2 would read as another
		// type. Strings that YAML 1.1 reads as booleans stay quoted.
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" || !isYAML11Bool(n.Value) {
			n.Style = 0
		}
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("convert output to YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("convert output to YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// isYAML11Bool reports the words YAML 1.1 parsers read as booleans.
func isYAML11Bool(s string) bool {
	switch strings.ToLower(s) {
	case "y", "yes", "n", "no", "on", "off":
		return true
	}
	return false
}

// table writes aligned columns. A table with a header shows empty cells
// as "-"; one without (a list of fields) leaves them empty.
type table struct {
	tw   *tabwriter.Writer
	dash bool
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0), dash: len(header) > 0}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" && t.dash {
			cells[i] = "-"
		}
		// A tab or newline in a cell would break the columns.
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(cells[i])
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error {
	if err := t.tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// humanDuration renders d coarsely, as operators read ages and ETAs:
// 45s, 12m, 3h12m, 2d4h.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		m, s := int(d/time.Minute), int(d%time.Minute/time.Second)
		if s == 0 || m >= 10 {
			return fmt.Sprintf("%dm", m)
		}
		return fmt.Sprintf("%dm%ds", m, s)
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
}

// age is the time since t, or "" if t is unset.
func age(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return humanDuration(now.Sub(t))
}

// eta renders an ETA in seconds; "" when unknown.
func eta(sec *int64) string {
	if sec == nil {
		return ""
	}
	return humanDuration(time.Duration(*sec) * time.Second)
}

// truncate shortens s to n characters with an ellipsis.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n || n < 2 {
		return s
	}
	return string(r[:n-1]) + "…"
}

// isTerminal reports whether w is a terminal, so that a live view may
// clear the screen; anything else (a pipe, a file, a test buffer) gets
// plain successive renderings.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// clearScreen moves the cursor home and clears the screen (ANSI).
const clearScreen = "\x1b[H\x1b[2J"
