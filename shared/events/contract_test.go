package events

import (
	"encoding/json"
	"io/fs"
	"math"
	"path"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func loadSchema(t *testing.T, typ string) map[string]any {
	t.Helper()
	b, err := Schemas.ReadFile("schemas/" + typ + ".json")
	if err != nil {
		t.Fatalf("read schema of %s: %v", typ, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse schema of %s: %v", typ, err)
	}
	return doc
}

func exampleFor(t testing.TB, typ string) Data {
	t.Helper()
	for _, ex := range examples() {
		if ex.EventType() == typ {
			return ex
		}
	}
	t.Fatalf("no example of %s", typ)
	return nil
}

// TestRegistryMatchesSchemasAndExamples: every registered type has a schema
// file and an example, every schema file and example a registered type.
func TestRegistryMatchesSchemasAndExamples(t *testing.T) {
	files, err := fs.Glob(Schemas, "schemas/*")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		typ := strings.TrimSuffix(path.Base(f), ".json")
		if !strings.HasSuffix(f, ".json") {
			t.Errorf("schema file %s does not end in .json", f)
		}
		if _, ok := Lookup(typ); !ok {
			t.Errorf("schema file %s has no registered type", f)
		}
		seen[typ] = true
	}
	exTypes := map[string]int{}
	for _, ex := range examples() {
		exTypes[ex.EventType()]++
		if _, ok := Lookup(ex.EventType()); !ok {
			t.Errorf("example of unregistered type %s", ex.EventType())
		}
	}
	for _, s := range All() {
		if !seen[s.Type] {
			t.Errorf("type %s has no schema file %s", s.Type, s.SchemaFile())
		}
		if exTypes[s.Type] != 1 {
			t.Errorf("type %s has %d examples, want 1", s.Type, exTypes[s.Type])
		}
		if _, err := schemaFor(s.Type); err != nil {
			t.Errorf("schema of %s: %v", s.Type, err)
		}
	}
}

// TestSpecs checks the registry entries themselves.
func TestSpecs(t *testing.T) {
	names := map[string]string{}
	for _, s := range All() {
		if !strings.HasPrefix(s.Type, "dev.ibu.") || !strings.HasSuffix(s.Type, ".v1") {
			t.Errorf("%s: type must be dev.ibu.<noun>.<verb>.v1", s.Type)
		}
		if err := validName(s.Name); err != nil {
			t.Errorf("%s: %v", s.Type, err)
		}
		if s.Description == "" {
			t.Errorf("%s: no description", s.Type)
		}
		if (s.Scope == ScopeTask) != (s.Service != "") {
			t.Errorf("%s: Service must be set exactly for tasks", s.Type)
		}
		d, ok := s.NewData().(Data)
		if !ok || d.EventType() != s.Type {
			t.Errorf("%s: NewData returns %T", s.Type, s.NewData())
		}
		if reflect.TypeOf(s.NewData()).Kind() != reflect.Pointer {
			t.Errorf("%s: NewData must return a pointer", s.Type)
		}
		// Two types on one subject are fine only for tasks, whose consumer
		// dispatches by type.
		if s.Scope != ScopeTask {
			key := string(rune('0'+s.Scope)) + s.Name
			if other, dup := names[key]; dup {
				t.Errorf("%s and %s share the subject name %q", s.Type, other, s.Name)
			}
			names[key] = s.Type
		}
	}
}

// TestExamplesRoundTrip builds each example with New, sends it through
// EncodeStructured and DecodeStructured, and decodes the data back into an
// equal Go value.
func TestExamplesRoundTrip(t *testing.T) {
	for _, ex := range examples() {
		t.Run(ex.EventType(), func(t *testing.T) {
			e, err := New("/clusters/sno-001/node-agent", "sno-001", ex)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if err := Validate(e); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			b, err := EncodeStructured(e)
			if err != nil {
				t.Fatalf("EncodeStructured: %v", err)
			}
			got, err := DecodeStructured(b)
			if err != nil {
				t.Fatalf("DecodeStructured: %v\n%s", err, b)
			}
			if got.ID() != e.ID() || got.Type() != e.Type() || got.Source() != e.Source() ||
				got.Subject() != e.Subject() || !got.Time().Equal(e.Time()) {
				t.Fatalf("attributes changed:\n got %v\nwant %v", got, e)
			}
			spec, _ := Lookup(e.Type())
			v := spec.NewData()
			if err := json.Unmarshal(got.Data(), v); err != nil {
				t.Fatal(err)
			}
			if back := reflect.ValueOf(v).Elem().Interface(); !reflect.DeepEqual(back, ex) {
				t.Fatalf("data changed:\n got %#v\nwant %#v", back, ex)
			}
		})
	}
}

func TestDataAs(t *testing.T) {
	ex := exampleFor(t, TypeClusterHeartbeat).(ClusterHeartbeat)
	e, err := New("/clusters/sno-001/node-agent", "sno-001", ex)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := DataAs[ClusterHeartbeat](e)
	if err != nil || hb != ex {
		t.Fatalf("DataAs = %+v, %v", hb, err)
	}
	if _, err := DataAs[StageChanged](e); !isOnly(err, ErrSchema) {
		t.Fatalf("DataAs of the wrong type: %v, want ErrSchema", err)
	}
	if m, err := DataAs[map[string]any](e); err != nil || m["clusterId"] != "sno-001" {
		t.Fatalf("DataAs[map] = %v, %v", m, err)
	}
}

// TestSchemaFiles checks the form of every schema: draft 2020-12, $id, no
// object without additionalProperties, and shared $defs identical across
// files, since they are copies of one definition.
func TestSchemaFiles(t *testing.T) {
	defs := map[string]string{}
	defOwner := map[string]string{}
	for _, s := range All() {
		doc := loadSchema(t, s.Type)
		if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema is %v", s.Type, doc["$schema"])
		}
		if doc["$id"] != s.SchemaID() {
			t.Errorf("%s: $id is %v, want %s", s.Type, doc["$id"], s.SchemaID())
		}
		if doc["title"] != s.Type {
			t.Errorf("%s: title is %v", s.Type, doc["title"])
		}
		walkSchema(doc, s.Type, func(node map[string]any, at string) {
			if _, ok := node["properties"]; ok && node["type"] == "object" && node["additionalProperties"] != false {
				t.Errorf("%s: object with properties must have additionalProperties false", at)
			}
			if node["type"] == "object" && node["properties"] == nil {
				if _, ok := node["additionalProperties"].(map[string]any); !ok {
					t.Errorf("%s: a map must give additionalProperties a schema", at)
				}
				if node["maxProperties"] == nil {
					t.Errorf("%s: a map must have maxProperties", at)
				}
			}
			if node["type"] == "array" && node["maxItems"] == nil {
				t.Errorf("%s: array without maxItems", at)
			}
			if node["type"] == "string" && node["maxLength"] == nil && node["pattern"] == nil && node["enum"] == nil && node["format"] == nil {
				t.Errorf("%s: unbounded string", at)
			}
			if r, ok := node["$ref"].(string); ok && !strings.HasPrefix(r, "#/$defs/") {
				t.Errorf("%s: $ref %s is not local", at, r)
			}
		})
		d, _ := doc["$defs"].(map[string]any)
		for name, def := range d {
			b, _ := json.Marshal(def)
			if prev, ok := defs[name]; ok && prev != string(b) {
				t.Errorf("$defs/%s differs between %s and %s", name, defOwner[name], s.Type)
			}
			defs[name], defOwner[name] = string(b), s.Type
		}
	}
}

func walkSchema(node any, at string, f func(map[string]any, string)) {
	switch n := node.(type) {
	case map[string]any:
		f(n, at)
		keys := make([]string, 0, len(n))
		for k := range n {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "enum" || k == "const" || k == "required" {
				continue
			}
			walkSchema(n[k], at+"/"+k, f)
		}
	case []any:
		for i, v := range n {
			walkSchema(v, at+"/"+string(rune('0'+i%10)), f)
		}
	}
}

// resolve follows local $refs.
func resolve(root, node map[string]any) map[string]any {
	for i := 0; i < 16; i++ {
		r, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		defs, _ := root["$defs"].(map[string]any)
		next, _ := defs[strings.TrimPrefix(r, "#/$defs/")].(map[string]any)
		if next == nil {
			return map[string]any{}
		}
		// Keywords beside $ref (minItems, minProperties, minLength) apply too.
		merged := map[string]any{}
		for k, v := range next {
			merged[k] = v
		}
		for k, v := range node {
			if k != "$ref" && k != "description" {
				merged[k] = v
			}
		}
		node = merged
	}
	return node
}

var (
	timeType     = reflect.TypeOf(time.Time{})
	durationType = reflect.TypeOf(Duration(0))
)

// TestSchemaMatchesGoTypes walks every Go data struct beside its schema:
// the same fields, compatible types and bounds, and omitempty where a zero
// value would be refused (a nil slice encodes as null) or must be kept (a
// required false or 0).
func TestSchemaMatchesGoTypes(t *testing.T) {
	for _, s := range All() {
		doc := loadSchema(t, s.Type)
		matchType(t, doc, doc, reflect.TypeOf(s.NewData()).Elem(), s.Type)
	}
}

func matchType(t *testing.T, root, node map[string]any, typ reflect.Type, at string) {
	t.Helper()
	node = resolve(root, node)
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := func(jsonType string) {
		if node["type"] != jsonType {
			t.Errorf("%s: Go %s but schema type %v, want %s", at, typ, node["type"], jsonType)
		}
	}
	switch {
	case typ == timeType:
		want("string")
		if node["format"] != "date-time" {
			t.Errorf("%s: time.Time needs format date-time", at)
		}
		return
	case typ == durationType:
		want("string")
		if node["pattern"] == nil {
			t.Errorf("%s: Duration needs the duration pattern", at)
		}
		return
	}
	switch typ.Kind() {
	case reflect.Struct:
		want("object")
		props, _ := node["properties"].(map[string]any)
		required := map[string]bool{}
		if r, ok := node["required"].([]any); ok {
			for _, n := range r {
				required[n.(string)] = true
			}
		}
		fields := map[string]bool{}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := f.Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if !f.IsExported() || name == "" || name == "-" {
				t.Errorf("%s.%s: every field needs a json name", at, f.Name)
				continue
			}
			fields[name] = true
			omit := strings.Contains(opts, "omitempty")
			p, ok := props[name].(map[string]any)
			if !ok {
				t.Errorf("%s.%s: not in the schema", at, name)
				continue
			}
			rp := resolve(root, p)
			k := f.Type.Kind()
			switch {
			case k == reflect.Pointer || k == reflect.Slice || k == reflect.Map:
				if !omit {
					t.Errorf("%s.%s: nil would encode as null: needs omitempty", at, name)
				}
				if required[name] && k == reflect.Slice && num(rp["minItems"]) < 1 {
					t.Errorf("%s.%s: required slice needs minItems 1", at, name)
				}
			case k == reflect.Struct && f.Type != timeType:
				if !required[name] {
					t.Errorf("%s.%s: an optional struct must be a pointer", at, name)
				}
			case !required[name]:
				if !omit {
					t.Errorf("%s.%s: optional field needs omitempty", at, name)
				}
			case k == reflect.Bool && omit:
				t.Errorf("%s.%s: required bool must not be omitempty (false would vanish)", at, name)
			case isInt(k) && omit && num(rp["minimum"]) < 1:
				t.Errorf("%s.%s: required number that may be 0 must not be omitempty", at, name)
			}
			matchType(t, root, p, f.Type, at+"."+name)
		}
		for name := range props {
			if !fields[name] {
				t.Errorf("%s.%s: in the schema, not in the Go struct", at, name)
			}
		}
		for name := range required {
			if !fields[name] {
				t.Errorf("%s: required %s is not a field", at, name)
			}
		}
	case reflect.Slice:
		want("array")
		items, _ := node["items"].(map[string]any)
		matchType(t, root, items, typ.Elem(), at+"[]")
	case reflect.Map:
		want("object")
		if typ.Key().Kind() != reflect.String {
			t.Errorf("%s: map keys must be strings", at)
		}
		ap, _ := node["additionalProperties"].(map[string]any)
		matchType(t, root, ap, typ.Elem(), at+"{}")
	case reflect.String:
		want("string")
	case reflect.Bool:
		want("boolean")
	default:
		if !isInt(typ.Kind()) {
			t.Errorf("%s: unexpected Go type %s", at, typ)
			return
		}
		want("integer")
		if node["minimum"] == nil || node["maximum"] == nil {
			t.Errorf("%s: integer needs minimum and maximum", at)
			return
		}
		lo, hi := num(node["minimum"]), num(node["maximum"])
		switch typ.Kind() {
		case reflect.Int, reflect.Int32:
			if lo < math.MinInt32 || hi > math.MaxInt32 {
				t.Errorf("%s: %s bounds [%v, %v] exceed 32 bits", at, typ, lo, hi)
			}
		case reflect.Int64, reflect.Uint64:
			if lo < -(1<<53-1) || hi > 1<<53-1 {
				t.Errorf("%s: bounds [%v, %v] exceed the exact JSON integer range", at, lo, hi)
			}
			if typ.Kind() == reflect.Uint64 && lo < 0 {
				t.Errorf("%s: unsigned with negative minimum", at)
			}
		default:
			t.Errorf("%s: use int, int64 or uint64, not %s", at, typ)
		}
	}
}

func isInt(k reflect.Kind) bool {
	return k >= reflect.Int && k <= reflect.Uint64
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

// TestExamplesCoverSchemas: every property of every schema is set by some
// example, so the examples test every field. Properties of a shared $defs
// entry count once for all types (secretRef's path and namespace exclude
// each other, so no single example can set both).
func TestExamplesCoverSchemas(t *testing.T) {
	all, seen := map[string]bool{}, map[string]bool{}
	for _, ex := range examples() {
		doc := loadSchema(t, ex.EventType())
		b, err := json.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		cover(doc, doc, v, ex.EventType(), all, seen)
	}
	for k := range all {
		if !seen[k] {
			t.Errorf("no example sets %s", k)
		}
	}
}

func cover(root, node map[string]any, v any, key string, all, seen map[string]bool) {
	for i := 0; i < 16; i++ { // follow $refs, keying by the definition
		r, ok := node["$ref"].(string)
		if !ok {
			break
		}
		key = r
		node = resolve(root, map[string]any{"$ref": r})
	}
	if props, ok := node["properties"].(map[string]any); ok {
		obj, _ := v.(map[string]any)
		for k, p := range props {
			all[key+"."+k] = true
			c, set := obj[k]
			if set {
				seen[key+"."+k] = true
			}
			cover(root, p.(map[string]any), c, key+"."+k, all, seen)
		}
	}
	if items, ok := node["items"].(map[string]any); ok {
		arr, _ := v.([]any)
		if len(arr) == 0 {
			cover(root, items, nil, key+"[]", all, seen)
		}
		for _, c := range arr {
			cover(root, items, c, key+"[]", all, seen)
		}
	}
}

func TestDataAsPointer(t *testing.T) {
	e, err := New("/clusters/sno-001/node-agent", "sno-001", exampleFor(t, TypeClusterHeartbeat))
	if err != nil {
		t.Fatal(err)
	}
	if hb, err := DataAs[*ClusterHeartbeat](e); err != nil || hb == nil || hb.Seq != 42 {
		t.Fatalf("DataAs[*T] = %v, %v", hb, err)
	}
	if _, err := DataAs[*StageChanged](e); !isOnly(err, ErrSchema) {
		t.Fatalf("DataAs[*wrong] = %v", err)
	}
}
