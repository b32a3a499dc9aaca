package events

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeStructured: DecodeStructured never panics; what it accepts
// re-validates and survives an encode/decode round trip unchanged; what it
// refuses is a *DecodeError wrapping exactly one sentinel.
func FuzzDecodeStructured(f *testing.F) {
	for _, ex := range examples() {
		e, err := New("/clusters/sno-001/node-agent", "sno-001", ex)
		if err != nil {
			f.Fatal(err)
		}
		b, err := EncodeStructured(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, c := range decodeCases(f) {
		if len(c.in) <= 64<<10 { // keep the corpus small; the size check is trivial
			f.Add(c.in)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := DecodeStructured(in)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error is %T, not *DecodeError: %v", err, err)
			}
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error wraps %d sentinels: %v", n, err)
			}
			if e.Context != nil {
				t.Fatalf("error with a non-zero event: %v", err)
			}
			return
		}
		if err := Validate(e); err != nil {
			t.Fatalf("accepted event does not validate: %v", err)
		}
		out, err := EncodeStructured(e)
		if err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		again, err := DecodeStructured(out)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, out)
		}
		if again.Type() != e.Type() || again.ID() != e.ID() || again.Source() != e.Source() ||
			again.Subject() != e.Subject() || !bytes.Equal(again.Data(), e.Data()) {
			t.Fatalf("round trip changed the event:\n in %s\nout %s", in, out)
		}
		spec, _ := Lookup(e.Type())
		if err := decodeData(e.Data(), spec.NewData()); err != nil {
			t.Fatalf("valid data does not decode into %T: %v", spec.NewData(), err)
		}
	})
}
