package seedimage

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// Version is an OpenShift-style version: X.Y.Z with an optional
// "-prerelease" (4.16.0-rc.1, 4.17.0-0.nightly-2024-06-01-120000) and an
// optional "+build" suffix, which is ignored. Ordering follows semver.
type Version struct {
	Major, Minor, Patch int
	Pre                 []string // dot-separated prerelease identifiers
}

// ParseVersion parses s, refusing leading zeros, empty identifiers and
// anything but X.Y.Z[-pre][+build].
func ParseVersion(s string) (Version, error) {
	core, _, _ := strings.Cut(s, "+")
	core, pre, hasPre := strings.Cut(core, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("version %q: want X.Y.Z", s)
	}
	var nums [3]int
	for i, p := range parts {
		n, ok := numericIdent(p)
		if !ok {
			return Version{}, fmt.Errorf("version %q: %q is not a number without leading zeros", s, p)
		}
		nums[i] = n
	}
	v := Version{Major: nums[0], Minor: nums[1], Patch: nums[2]}
	if hasPre {
		v.Pre = strings.Split(pre, ".")
		for _, id := range v.Pre {
			if !validPreIdent(id) {
				return Version{}, fmt.Errorf("version %q: bad prerelease identifier %q", s, id)
			}
		}
	}
	return v, nil
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than o.
// A prerelease is older than its release: 4.16.0-rc.1 < 4.16.0.
func (v Version) Compare(o Version) int {
	if c := cmp.Compare(v.Major, o.Major); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Minor, o.Minor); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Patch, o.Patch); c != 0 {
		return c
	}
	switch {
	case len(v.Pre) == 0 && len(o.Pre) == 0:
		return 0
	case len(v.Pre) == 0:
		return 1
	case len(o.Pre) == 0:
		return -1
	}
	for i := 0; i < len(v.Pre) && i < len(o.Pre); i++ {
		if c := comparePreIdent(v.Pre[i], o.Pre[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(v.Pre), len(o.Pre))
}

func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if len(v.Pre) > 0 {
		s += "-" + strings.Join(v.Pre, ".")
	}
	return s
}

// comparePreIdent orders numeric identifiers numerically and before
// alphanumeric ones, which compare in ASCII order.
func comparePreIdent(a, b string) int {
	an, aNum := numericIdent(a)
	bn, bNum := numericIdent(b)
	switch {
	case aNum && bNum:
		return cmp.Compare(an, bn)
	case aNum:
		return -1
	case bNum:
		return 1
	}
	return strings.Compare(a, b)
}

func numericIdent(s string) (int, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// validPreIdent accepts [0-9A-Za-z-]+ except numbers with leading zeros.
func validPreIdent(s string) bool {
	if s == "" {
		return false
	}
	if strings.Trim(s, "0123456789") == "" {
		_, ok := numericIdent(s)
		return ok
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}
