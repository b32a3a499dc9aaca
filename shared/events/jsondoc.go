package events

import (
	"encoding/json"
	"errors"
	"strings"
)

// parseDoc turns JSON text that json.Valid has accepted into the generic
// value the schema validator reads (objects as map[string]any, numbers as
// json.Number so integers stay exact), and reports the first member name
// that appears twice in one object. It is one pass over the bytes, where a
// Token-based duplicate scan plus a Decode took two passes and most of the
// decoder's allocations on the consume path.
func parseDoc(data []byte) (doc any, dup string, err error) {
	p := docParser{b: data}
	doc = p.value()
	if p.err == nil {
		p.ws()
		if p.i != len(p.b) {
			p.fail("trailing data after the JSON value")
		}
	}
	return doc, p.dup, p.err
}

var errDocSyntax = errors.New("malformed JSON")

type docParser struct {
	b   []byte
	i   int
	dup string
	err error
}

func (p *docParser) fail(msg string) {
	if p.err == nil {
		p.err = errors.Join(errDocSyntax, errors.New(msg))
	}
}

func (p *docParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *docParser) value() any {
	p.ws()
	if p.err != nil || p.i >= len(p.b) {
		p.fail("unexpected end of input")
		return nil
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.str()
	case c == 't':
		return p.literal("true", true)
	case c == 'f':
		return p.literal("false", false)
	case c == 'n':
		return p.literal("null", nil)
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	p.fail("unexpected character")
	return nil
}

func (p *docParser) object() any {
	p.i++ // '{'
	m := map[string]any{}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m
	}
	for p.err == nil {
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			p.fail("object key is not a string")
			return nil
		}
		k := p.str()
		if _, seen := m[k]; seen && p.dup == "" {
			p.dup = k
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			p.fail("missing ':' after object key")
			return nil
		}
		p.i++
		m[k] = p.value()
		p.ws()
		if p.i >= len(p.b) {
			p.fail("unterminated object")
			return nil
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return m
		default:
			p.fail("missing ',' or '}' in object")
			return nil
		}
	}
	return nil
}

func (p *docParser) array() any {
	p.i++ // '['
	a := []any{}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return a
	}
	for p.err == nil {
		a = append(a, p.value())
		p.ws()
		if p.i >= len(p.b) {
			p.fail("unterminated array")
			return nil
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return a
		default:
			p.fail("missing ',' or ']' in array")
			return nil
		}
	}
	return nil
}

// str reads a string; one without escapes is sliced, one with escapes is
// handed to encoding/json, which knows every escape and surrogate rule.
func (p *docParser) str() string {
	start := p.i
	p.i++ // opening quote
	escaped := false
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '\\':
			escaped = true
			p.i += 2
			continue
		case '"':
			p.i++
			if !escaped {
				return string(p.b[start+1 : p.i-1])
			}
			var s string
			if err := json.Unmarshal(p.b[start:p.i], &s); err != nil {
				p.fail("bad string escape")
			}
			return s
		}
		p.i++
	}
	p.fail("unterminated string")
	return ""
}

func (p *docParser) literal(word string, v any) any {
	if !strings.HasPrefix(string(p.b[p.i:min(len(p.b), p.i+len(word))]), word) {
		p.fail("bad literal")
		return nil
	}
	p.i += len(word)
	return v
}

func (p *docParser) number() any {
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			p.i++
			continue
		}
		break
	}
	n := json.Number(p.b[start:p.i])
	if _, err := n.Float64(); err != nil {
		p.fail("bad number")
	}
	return n
}
