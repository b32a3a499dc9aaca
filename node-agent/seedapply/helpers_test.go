package seedapply

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"ibu.dev/shared/seedimage"
)

// ent is one tar entry for the tests.
type ent struct {
	name string
	typ  byte // tar.TypeReg when 0
	body string
	link string
	mode int64 // 0o644 (files) or 0o755 (dirs) when 0
	uid  int
}

func reg(name, body string) ent         { return ent{name: name, body: body} }
func dir(name string) ent               { return ent{name: name, typ: tar.TypeDir} }
func symlink(name, target string) ent   { return ent{name: name, typ: tar.TypeSymlink, link: target} }
func hardlink(name, target string) ent  { return ent{name: name, typ: tar.TypeLink, link: target} }
func withMode(e ent, mode int64) ent    { e.mode = mode; return e }
func withUID(e ent, uid int) ent        { e.uid = uid; return e }
func special(name string, typ byte) ent { return ent{name: name, typ: typ} }

var mtime = time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC)

func tarOf(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: mtime, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testInfo() seedimage.SeedInfo {
	return seedimage.SeedInfo{
		Version:      "4.16.3",
		ReleaseImage: "quay.io/openshift-release-dev/ocp-release@sha256:" + strings.Repeat("a", 64),
		Fingerprint: seedimage.Fingerprint{
			Architecture: "amd64", Platform: "None", NetworkType: "OVNKubernetes",
			IPFamily: seedimage.IPv4, ContainerStorage: seedimage.StorageSeparatePartition,
		},
		OstreeCommit: strings.Repeat("c", 64),
		Stateroot:    "rhcos_4.16.3",
		BuildTime:    mtime,
	}
}

// layers is what a test seed holds; nil tars get a harmless default.
type layers struct {
	ostree, vars, etc []byte
	deletions         []string
}

func defaultOstree(t testing.TB) []byte {
	return tarOf(t, dir("repo/"), reg("repo/config", "[core]\nmode=archive-z2\n"), dir("repo/objects/"),
		reg("repo/objects/ab/cdef.filez", "object"))
}

func newSeed(t testing.TB, l layers) *seedimage.Seed {
	t.Helper()
	if l.ostree == nil {
		l.ostree = defaultOstree(t)
	}
	if l.vars == nil {
		l.vars = tarOf(t, reg("var/lib/x", "x"))
	}
	if l.etc == nil {
		l.etc = tarOf(t, reg("etc/x", "x"))
	}
	img, err := seedimage.Build(testInfo(), nil, seedimage.Content{
		Ostree: seedimage.BytesOpener(l.ostree), Var: seedimage.BytesOpener(l.vars), Etc: seedimage.BytesOpener(l.etc),
		EtcDeletions: l.deletions,
	})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	s, err := seedimage.New(img)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// viaLayout writes s to an OCI layout and reads it back, as the agent does
// with a pulled seed; it returns the layout directory too.
func viaLayout(t testing.TB, s *seedimage.Seed) (*seedimage.Seed, string) {
	t.Helper()
	dir := t.TempDir()
	if err := seedimage.WriteLayout(dir, s, "seed"); err != nil {
		t.Fatal(err)
	}
	out, err := seedimage.ReadLayout(dir, "seed")
	if err != nil {
		t.Fatal(err)
	}
	return out, dir
}

// blobPath returns the layout file of s's layer of role.
func blobPath(t testing.TB, layout string, s *seedimage.Seed, role seedimage.Role) string {
	t.Helper()
	l, err := s.Layer(role)
	if err != nil {
		t.Fatal(err)
	}
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(layout, "blobs", d.Algorithm, d.Hex)
}

// snapshot describes every path under root: type, mode, owner, content or
// link target. Directory times are left out (they move when entries change).
func snapshot(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v", fi.Mode())
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			desc += fmt.Sprintf(" %d:%d", st.Uid, st.Gid)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %q %s", b, fi.ModTime().UTC().Format(time.RFC3339))
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffSnap(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			d = append(d, fmt.Sprintf("%s: new %q", k, v))
		}
	}
	slices.Sort(d)
	return strings.Join(d, "\n")
}

func writeFiles(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
