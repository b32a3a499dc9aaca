package contractdoc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ibu.dev/shared/buckets"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
)

const root = "../.."

// The generated sections of README.md and docs/architecture.md must match
// the code they are generated from.
func TestGeneratedSectionsAreCurrent(t *testing.T) {
	for _, s := range Sections() {
		b, err := os.ReadFile(filepath.Join(root, s.File))
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Current(string(b))
		if err != nil {
			t.Fatal(err)
		}
		if got != s.Content {
			t.Errorf("%s: the %s section is stale; regenerate it with `go run ./cli/cmd/ibuctl contract --write`.\nwant:\n%s", s.File, s.Name, s.Content)
		}
	}
}

// The README's contract table is generated; it names every type.
func TestContractNamesEveryType(t *testing.T) {
	table := Contract()
	for _, s := range events.All() {
		if !strings.Contains(table, "`"+s.Type+"`") {
			t.Errorf("type %s missing from the table", s.Type)
		}
	}
}

func TestTopologyNamesEveryStreamBucketAndStore(t *testing.T) {
	table := Topology()
	var names []string
	for _, s := range bus.StreamConfigs() {
		names = append(names, s.Name)
	}
	for _, kv := range bus.KeyValueConfigs() {
		names = append(names, kv.Bucket)
	}
	for _, o := range bus.ObjectStoreConfigs() {
		names = append(names, o.Bucket)
	}
	for _, n := range names {
		if !strings.Contains(table, "`"+n+"`") {
			t.Errorf("%s missing from the topology table", n)
		}
	}
}

func TestReplaceKeepsTheRest(t *testing.T) {
	s := Section{File: "x.md", Name: "t", Content: "new\n"}
	got, err := s.Replace("a\n<!-- t:begin -->\nold\nlines\n<!-- t:end -->\nb\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "a\n<!-- t:begin -->\nnew\n<!-- t:end -->\nb\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := s.Replace("no markers"); err == nil {
		t.Error("a document without markers was accepted")
	}
}

// Every request/answer pair and every catalogued bucket is in its table.
func TestAsksAndBucketsTablesNameEveryEntry(t *testing.T) {
	asks := Asks()
	for _, a := range events.Asks() {
		for _, typ := range []string{a.Request, a.Completed, a.Failed} {
			if !strings.Contains(asks, "`"+typ+"`") {
				t.Errorf("asks table lacks %s", typ)
			}
		}
	}
	table := Buckets()
	for _, s := range buckets.All() {
		if !strings.Contains(table, "`"+s.Name+"`") {
			t.Errorf("buckets table lacks %s", s.Name)
		}
	}
}
