package seedimage

import "testing"

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" means a parse error
	}{
		{"4.16.3", "4.16.3"},
		{"4.16.0-rc.1", "4.16.0-rc.1"},
		{"4.17.0-0.nightly-2024-06-01-120000", "4.17.0-0.nightly-2024-06-01-120000"},
		{"4.16.3+build.5", "4.16.3"},
		{"0.0.0", "0.0.0"},
		{"4.16", ""},
		{"4.16.3.1", ""},
		{"v4.16.3", ""},
		{"4.016.3", ""},
		{"4.16.x", ""},
		{"4.16.3-", ""},
		{"4.16.3-rc..1", ""},
		{"4.16.3-rc.01", ""},
		{"4.16.3-rc_1", ""},
		{"", ""},
		{"99999999999999999999.0.0", ""},
	} {
		v, err := ParseVersion(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseVersion(%q) = %v, want an error", tc.in, v)
		case tc.want != "" && err != nil:
			t.Errorf("ParseVersion(%q): %v", tc.in, err)
		case tc.want != "" && v.String() != tc.want:
			t.Errorf("ParseVersion(%q) = %s, want %s", tc.in, v, tc.want)
		}
	}
}

func TestVersionCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"4.16.3", "4.16.3", 0},
		{"4.16.3", "4.16.4", -1},
		{"4.17.0", "4.16.9", 1},
		{"5.0.0", "4.99.99", 1},
		{"4.16.10", "4.16.9", 1},
		{"4.16.0-rc.1", "4.16.0", -1},
		{"4.16.0-rc.1", "4.16.0-rc.2", -1},
		{"4.16.0-rc.10", "4.16.0-rc.2", 1},
		{"4.16.0-ec.3", "4.16.0-rc.1", -1},
		{"4.16.0-rc", "4.16.0-rc.1", -1},
		{"4.16.0-1", "4.16.0-rc", -1},
		{"4.16.0-rc.1", "4.15.9", 1},
		{"4.16.0+a", "4.16.0+b", 0},
	} {
		a, err := ParseVersion(tc.a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseVersion(tc.b)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Compare(b); got != tc.want {
			t.Errorf("%s vs %s = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := b.Compare(a); got != -tc.want {
			t.Errorf("%s vs %s = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}
