package contractdoc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Section is one generated part of a document: the text between
// "<!-- Name:begin -->" and "<!-- Name:end -->" in File (relative to the
// repository root).
type Section struct {
	File    string
	Name    string
	Content string
}

// Sections returns every generated section of the repository's documents.
func Sections() []Section {
	return []Section{
		{File: "README.md", Name: "contract", Content: Contract()},
		{File: "docs/architecture.md", Name: "contract", Content: contract("../")},
		{File: "docs/architecture.md", Name: "topology", Content: Topology()},
		{File: "docs/architecture.md", Name: "buckets", Content: Buckets()},
		{File: "docs/architecture.md", Name: "asks", Content: Asks()},
	}
}

// Current returns the text now between the section's markers in doc.
func (s Section) Current(doc string) (string, error) {
	begin, end := "<!-- "+s.Name+":begin -->\n", "<!-- "+s.Name+":end -->"
	_, rest, ok := strings.Cut(doc, begin)
	body, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		return "", fmt.Errorf("%s has no %s:begin/end markers", s.File, s.Name)
	}
	return body, nil
}

// Replace returns doc with the section's markers enclosing its Content.
func (s Section) Replace(doc string) (string, error) {
	cur, err := s.Current(doc)
	if err != nil {
		return "", err
	}
	begin := "<!-- " + s.Name + ":begin -->\n"
	i := strings.Index(doc, begin) + len(begin)
	return doc[:i] + s.Content + doc[i+len(cur):], nil
}

// Write rewrites every generated section of the documents under root, the
// repository root, and returns the files it changed.
func Write(root string) ([]string, error) {
	var changed []string
	docs := map[string]string{}
	var order []string
	for _, s := range Sections() {
		p := filepath.Join(root, s.File)
		doc, ok := docs[p]
		if !ok {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", s.File, err)
			}
			doc = string(b)
			order = append(order, p)
		}
		next, err := s.Replace(doc)
		if err != nil {
			return nil, err
		}
		docs[p] = next
	}
	for _, p := range order {
		old, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		if string(old) == docs[p] {
			continue
		}
		if err := os.WriteFile(p, []byte(docs[p]), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", p, err)
		}
		changed = append(changed, p)
	}
	return changed, nil
}
