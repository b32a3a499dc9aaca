package events

import (
	"strings"
	"unicode/utf8"
)

// Clip makes s valid UTF-8 (invalid bytes become U+FFFD) of at most n
// characters, as schemas count them: what fits a field's maxLength.
func Clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == n {
			break
		}
		count++
	}
	return s[:i]
}

// ClipMarked is Clip followed by "…" when it cut s, for text a reader
// should know is incomplete.
func ClipMarked(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if c := Clip(s, n); len(c) < len(s) {
		return c + "…"
	}
	return s
}
