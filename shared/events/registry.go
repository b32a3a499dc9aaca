package events

import (
	"embed"
	"fmt"
	"sort"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Scope says where an event of a type travels.
type Scope int

const (
	// ScopeRequest: a user's request on ibu.request.<name> (stream IBU_REQUESTS).
	ScopeRequest Scope = iota + 1
	// ScopeTask: work for one service about one cluster on
	// ibu.task.<service>.<cluster> (stream IBU_TASKS).
	ScopeTask
	// ScopeCluster: a fact about a cluster on ibu.event.<cluster>.<name>
	// (stream IBU_EVENTS).
	ScopeCluster
	// ScopePlan: a fact about a plan on ibu.event.plan.<plan>.<name>
	// (stream IBU_EVENTS).
	ScopePlan
)

// Spec describes one event type of the contract.
type Spec struct {
	Type        string // CloudEvents type, e.g. dev.ibu.cluster.stage.changed.v1
	Name        string // subject suffix, e.g. stage.changed; tasks travel on ibu.task.<service>.<cluster>, so for them only a label
	Scope       Scope
	Service     string // ScopeTask only: the service that consumes it
	Description string
	new         func() any // a pointer to a zero value of the data type
}

// NewData returns a pointer to a zero value of the type's Go data struct.
func (s Spec) NewData() any { return s.new() }

// SchemaFile is the path of the type's JSON Schema inside Schemas.
func (s Spec) SchemaFile() string { return "schemas/" + s.Type + ".json" }

// SchemaID is the $id of the type's JSON Schema. Schemas are compiled under
// this absolute URL rather than their file path, which the compiler would
// resolve against the working directory.
func (s Spec) SchemaID() string { return SchemaBaseURL + s.Type + ".json" }

// SchemaBaseURL prefixes every schema's $id.
const SchemaBaseURL = "https://ibu.dev/schemas/events/"

// Schemas holds one JSON Schema (draft 2020-12) per event type, named
// <type>.json. They are the published form of the contract: tools in other
// languages validate against the same files.
//
//go:embed schemas/*.json
var Schemas embed.FS

var (
	registry = map[string]Spec{}
	compiled = map[string]*jsonschema.Schema{}
)

func register(s Spec) {
	if _, dup := registry[s.Type]; dup {
		panic("events: duplicate type " + s.Type)
	}
	registry[s.Type] = s
}

// Lookup returns the Spec of a CloudEvents type.
func Lookup(typ string) (Spec, bool) {
	s, ok := registry[typ]
	return s, ok
}

// All returns every Spec, sorted by type.
func All() []Spec {
	out := make([]Spec, 0, len(registry))
	for _, s := range registry {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

var compileOnce sync.Once
var compileErr error

// schemaFor returns the compiled schema of a type. All schemas are compiled
// on first use; a schema that does not compile is a programming error caught
// by the package's tests.
func schemaFor(typ string) (*jsonschema.Schema, error) {
	compileOnce.Do(func() { compileErr = compileAll() })
	if compileErr != nil {
		return nil, compileErr
	}
	sch, ok := compiled[typ]
	if !ok {
		return nil, fmt.Errorf("no schema for %s", typ)
	}
	return sch, nil
}

func compileAll() error {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// Formats (date-time) are only annotations in 2020-12 unless asserted;
	// ibu's schemas mean them as checks.
	c.AssertFormat()
	for typ, s := range registry {
		f, err := Schemas.Open(s.SchemaFile())
		if err != nil {
			return fmt.Errorf("open schema of %s: %w", typ, err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("parse schema of %s: %w", typ, err)
		}
		if err := c.AddResource(s.SchemaID(), doc); err != nil {
			return fmt.Errorf("add schema of %s: %w", typ, err)
		}
	}
	for typ, s := range registry {
		sch, err := c.Compile(s.SchemaID())
		if err != nil {
			return fmt.Errorf("compile schema of %s: %w", typ, err)
		}
		compiled[typ] = sch
	}
	return nil
}
