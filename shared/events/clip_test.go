package events

import "testing"

func TestClip(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"ééé", 2, "éé"}, {"a\xffb", 3, "a\uFFFDb"}, {"", 0, ""}, {"ab", 0, ""},
	} {
		if got := Clip(c.in, c.n); got != c.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestClipMarked(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 3, "abc"}, {"abcdef", 3, "abc…"}, {"ééé", 2, "éé…"}, {"a\xffb", 3, "a\uFFFDb"}, {"a\xffbc", 2, "a\uFFFD…"},
	} {
		if got := ClipMarked(c.in, c.n); got != c.want {
			t.Errorf("ClipMarked(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
