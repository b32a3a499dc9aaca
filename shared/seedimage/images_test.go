package seedimage

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestValidateImageRef(t *testing.T) {
	hex := strings.Repeat("0a", 32)
	for _, tc := range []struct {
		ref string
		ok  bool
	}{
		{"quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + hex, true},
		{"registry.example.com:5000/a/b/c@sha256:" + hex, true},
		{"localhost/x@sha256:" + hex, true},
		{"quay.io/a/b:4.16@sha256:" + hex, false}, // tag and digest
		{"quay.io/a/b:4.16", false},
		{"ubuntu@sha256:" + hex, false}, // registry defaulted
		{"quay.io/a/b@sha256:" + strings.ToUpper(hex), false},
		{"quay.io/a/b@sha256:" + hex[:63], false},
		{"quay.io/a/b@sha512:" + hex + hex, false},
		{"quay.io/A/b@sha256:" + hex, false},
		{"", false},
	} {
		err := ValidateImageRef(tc.ref)
		if tc.ok && err != nil {
			t.Errorf("ValidateImageRef(%q): %v", tc.ref, err)
		}
		if !tc.ok && !errors.Is(err, ErrBadImageRef) {
			t.Errorf("ValidateImageRef(%q) = %v, want ErrBadImageRef", tc.ref, err)
		}
	}
}

func TestNormalizeImages(t *testing.T) {
	a, b := digestRef("quay.io/x/a", 'a'), digestRef("quay.io/x/b", 'b')
	got, err := normalizeImages([]string{b, a, b})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{a, b}) {
		t.Errorf("normalizeImages = %v", got)
	}
	if _, err := normalizeImages([]string{a, "quay.io/x/c:latest"}); !errors.Is(err, ErrBadImageRef) {
		t.Errorf("bad ref accepted: %v", err)
	}
}
