package seedapply

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ibu.dev/shared/seedimage"
)

var ctx = context.Background()

func TestExtractOstree(t *testing.T) {
	for _, tc := range []struct {
		name string
		tar  []byte
	}{
		{"repo dir", defaultOstree(t)},
		{"tar root", tarOf(t, dir("./"), reg("./config", "[core]\nmode=archive-z2\n"), reg("./objects/ab/cdef.filez", "object"))},
		{"deeper, with other files", tarOf(t, reg("README", "hi"), reg("ostree/repo/config", "[core]\n"),
			reg("ostree/repo/objects/ab/cdef.filez", "object"), reg("ostree/other/config", "not a repo"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := filepath.Join(t.TempDir(), "work")
			repo, err := ExtractOstree(ctx, newSeed(t, layers{ostree: tc.tar}), work)
			if err != nil {
				t.Fatalf("ExtractOstree: %v", err)
			}
			if repo != filepath.Join(work, "ostree-repo") {
				t.Errorf("repo = %s", repo)
			}
			if got := readFile(t, filepath.Join(repo, "objects/ab/cdef.filez")); got != "object" {
				t.Errorf("object = %q", got)
			}
			if !exists(filepath.Join(repo, "config")) || exists(repo+".partial") || !exists(filepath.Join(work, markerName)) {
				t.Errorf("work dir: %v", snapshot(t, work))
			}
		})
	}
}

func TestExtractOstreeIdempotent(t *testing.T) {
	work := t.TempDir()
	seed := newSeed(t, layers{})
	repo, err := ExtractOstree(ctx, seed, work)
	if err != nil {
		t.Fatal(err)
	}
	// A second call for the same layer does not unpack again.
	sentinel := filepath.Join(repo, "sentinel")
	writeFiles(t, repo, map[string]string{"sentinel": "kept"})
	if again, err := ExtractOstree(ctx, seed, work); err != nil || again != repo || !exists(sentinel) {
		t.Fatalf("second call = %s, %v; sentinel kept: %v", again, err, exists(sentinel))
	}

	// Another seed's layer replaces the repository.
	other := newSeed(t, layers{ostree: tarOf(t, reg("repo/config", "[core]\n"), reg("repo/objects/cd/ef.filez", "other"))})
	if _, err := ExtractOstree(ctx, other, work); err != nil {
		t.Fatal(err)
	}
	if exists(sentinel) || exists(filepath.Join(repo, "objects/ab/cdef.filez")) || !exists(filepath.Join(repo, "objects/cd/ef.filez")) {
		t.Errorf("repository not replaced: %v", snapshot(t, repo))
	}

	// A crash mid-extraction: staging left behind, no marker.
	must(t, os.Remove(filepath.Join(work, markerName)))
	writeFiles(t, work, map[string]string{"ostree-repo.partial/junk": "x"})
	if _, err := ExtractOstree(ctx, seed, work); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(work, "ostree-repo.partial")) || !exists(filepath.Join(repo, "objects/ab/cdef.filez")) {
		t.Errorf("after an interrupted run: %v", snapshot(t, work))
	}
}

func TestExtractOstreeNoRepo(t *testing.T) {
	for name, tr := range map[string][]byte{
		"no objects": tarOf(t, reg("repo/config", "x")),
		"two repos":  tarOf(t, reg("a/config", "x"), dir("a/objects/"), reg("b/config", "x"), dir("b/objects/")),
		"too deep":   tarOf(t, reg("a/b/c/d/config", "x"), dir("a/b/c/d/objects/")),
		"symlink":    tarOf(t, reg("real/config", "x"), dir("real/objects/"), symlink("repo", "real"), dir("x/")),
	} {
		t.Run(name, func(t *testing.T) {
			work := t.TempDir()
			_, err := ExtractOstree(ctx, newSeed(t, layers{ostree: tr}), work)
			if name == "symlink" {
				// The real directory is found; the symlink is not followed.
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrNoRepo) {
				t.Fatalf("err = %v, want ErrNoRepo", err)
			}
			if exists(filepath.Join(work, markerName)) {
				t.Error("marker written")
			}
		})
	}
}

func TestApplyVar(t *testing.T) {
	seed, _ := viaLayout(t, newSeed(t, layers{vars: tarOf(t,
		dir("var/"),
		withMode(dir("var/lib/kubelet/"), 0o750),
		reg("var/lib/kubelet/config.json", "{}"),
		reg("var/lib/etcd/member/snap/db", strings.Repeat("etcd ", 1000)), // parents implied
		withMode(reg("var/usrlocal/bin/tool", "#!/bin/sh\n"), 0o4755),
		symlink("var/run", "../run"),
		symlink("var/lib/abs", "/etc/os-release"),
		hardlink("var/lib/kubelet/config.hard", "var/lib/kubelet/config.json"),
		withMode(dir("var/ro/"), 0o555),
		reg("var/ro/file", "in a read-only dir"),
		withUID(reg("var/owned", "x"), 1234),
		reg("./var/dotted", "leading ./"),
	)}))
	varDir := t.TempDir()
	writeFiles(t, varDir, map[string]string{"lib/kubelet/config.json": "old", "unrelated": "stays"})
	must(t, os.Symlink("elsewhere", filepath.Join(varDir, "run"))) // replaced, not followed

	if err := ApplyVar(ctx, seed, varDir); err != nil {
		t.Fatalf("ApplyVar: %v", err)
	}
	first := snapshot(t, varDir)
	for path, want := range map[string]string{
		"lib/kubelet":             "drwxr-x---",
		"lib/kubelet/config.json": `-rw-r--r-- 0:0 "{}"`,
		"lib/kubelet/config.hard": `-rw-r--r-- 0:0 "{}"`,
		"usrlocal/bin/tool":       "urwxr-xr-x",
		"run":                     "-> ../run",
		"lib/abs":                 "-> /etc/os-release",
		"ro":                      "dr-xr-xr-x",
		"ro/file":                 "in a read-only dir",
		"unrelated":               "stays",
		"dotted":                  "leading ./",
	} {
		if !strings.Contains(first[path], want) {
			t.Errorf("%s = %q, want it to contain %q", path, first[path], want)
		}
	}
	if os.Geteuid() == 0 && !strings.Contains(first["owned"], " 1234:1234 ") {
		t.Errorf("owned = %q: owner not kept as root", first["owned"])
	}
	a, _ := os.Stat(filepath.Join(varDir, "lib/kubelet/config.json"))
	b, _ := os.Stat(filepath.Join(varDir, "lib/kubelet/config.hard"))
	if !os.SameFile(a, b) {
		t.Error("hard link is a copy")
	}
	if _, ok := first["var"]; ok {
		t.Error("var/ prefix not stripped")
	}

	// Idempotent.
	if err := ApplyVar(ctx, seed, varDir); err != nil {
		t.Fatalf("second ApplyVar: %v", err)
	}
	if d := diffSnap(first, snapshot(t, varDir)); d != "" {
		t.Errorf("second run changed:\n%s", d)
	}

	if err := ApplyVar(ctx, seed, filepath.Join(varDir, "missing")); err == nil {
		t.Error("missing var dir: no error")
	}
}

func TestApplyEtc(t *testing.T) {
	seed := newSeed(t, layers{
		etc: tarOf(t,
			reg("etc/hostname", "seed\n"),
			reg("etc/machine-id", "seed-id\n"),
			reg("etc/chrony.conf", "server seed\n"),
			withMode(reg("etc/ssh/ssh_host_rsa_key", "seed key"), 0o600),
			reg("etc/ssh/sshd_config", "seed sshd\n"),
			reg("etc/NetworkManager/system-connections/seed.nmconnection", "seed net"),
			reg("etc/default/nodeip-configuration", "KUBELET_NODEIP_HINT=10.0.0.1"),
			reg("etc/new.conf", "from seed"),
		),
		deletions: []string{"/etc/old.conf", "/etc/subdir", "/etc/never/was", "/etc/ssh/ssh_host_ed25519_key"},
	})
	cur := t.TempDir()
	writeFiles(t, cur, map[string]string{
		"hostname": "target\n", "machine-id": "target-id\n", "chrony.conf": "server target\n",
		"ssh/ssh_host_rsa_key": "target rsa", "ssh/ssh_host_ed25519_key": "target ed25519",
		"ssh/sshd_config": "target sshd\n",
		"NetworkManager/system-connections/eth0.nmconnection": "target net",
	})
	must(t, os.Chmod(filepath.Join(cur, "ssh/ssh_host_rsa_key"), 0o600))
	must(t, os.Chmod(filepath.Join(cur, "NetworkManager/system-connections"), 0o700))
	etc := t.TempDir() // the new deployment's /etc, as ostree deployed it
	writeFiles(t, etc, map[string]string{"old.conf": "base", "subdir/a": "base", "os-release": "base", "ssh/ssh_host_ed25519_key": "seed's base"})

	if err := ApplyEtc(ctx, seed, etc, cur, DefaultIdentity()); err != nil {
		t.Fatalf("ApplyEtc: %v", err)
	}
	for name, want := range map[string]string{
		"hostname": "target\n", "machine-id": "target-id\n", // identity
		"ssh/ssh_host_rsa_key": "target rsa", "ssh/ssh_host_ed25519_key": "target ed25519",
		"NetworkManager/system-connections/eth0.nmconnection": "target net",
		"chrony.conf": "server seed\n", "ssh/sshd_config": "seed sshd\n", "new.conf": "from seed", // seed
		"os-release": "base",
	} {
		if got := readFile(t, filepath.Join(etc, name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for _, gone := range []string{"old.conf", "subdir", "NetworkManager/system-connections/seed.nmconnection", "default/nodeip-configuration"} {
		if exists(filepath.Join(etc, gone)) {
			t.Errorf("%s still exists", gone)
		}
	}
	snap := snapshot(t, etc)
	if !strings.HasPrefix(snap["ssh/ssh_host_rsa_key"], "-rw-------") || !strings.HasPrefix(snap["NetworkManager/system-connections"], "drwx------") {
		t.Errorf("identity modes: %q, %q", snap["ssh/ssh_host_rsa_key"], snap["NetworkManager/system-connections"])
	}

	// Idempotent.
	if err := ApplyEtc(ctx, seed, etc, cur, DefaultIdentity()); err != nil {
		t.Fatal(err)
	}
	if d := diffSnap(snap, snapshot(t, etc)); d != "" {
		t.Errorf("second run changed:\n%s", d)
	}

	// A configured identity: also keep chrony.conf; keep nothing at all.
	keep := append(DefaultIdentity(), "chrony.conf")
	if err := ApplyEtc(ctx, seed, etc, cur, keep); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(etc, "chrony.conf")); got != "server target\n" {
		t.Errorf("chrony.conf = %q", got)
	}
	if err := ApplyEtc(ctx, seed, etc, "", nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(etc, "hostname")); got != "seed\n" {
		t.Errorf("without identity, hostname = %q", got)
	}
	if err := ApplyEtc(ctx, seed, etc, "", DefaultIdentity()); err == nil {
		t.Error("identity without a current /etc: no error")
	}
}

func TestCopyIdentityRefreshes(t *testing.T) {
	cur, etc := t.TempDir(), t.TempDir()
	writeFiles(t, cur, map[string]string{"hostname": "h1", "NetworkManager/system-connections/a.nmconnection": "a"})
	must(t, CopyIdentity(ctx, cur, etc, DefaultIdentity()))
	// Between Prep and Upgrade the running cluster's network changed.
	must(t, os.Remove(filepath.Join(cur, "NetworkManager/system-connections/a.nmconnection")))
	writeFiles(t, cur, map[string]string{"hostname": "h2", "NetworkManager/system-connections/b.nmconnection": "b"})
	must(t, CopyIdentity(ctx, cur, etc, DefaultIdentity()))
	if readFile(t, filepath.Join(etc, "hostname")) != "h2" || exists(filepath.Join(etc, "NetworkManager/system-connections/a.nmconnection")) ||
		!exists(filepath.Join(etc, "NetworkManager/system-connections/b.nmconnection")) {
		t.Errorf("after refresh: %v", snapshot(t, etc))
	}
}

func TestIdentityValidate(t *testing.T) {
	if err := DefaultIdentity().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", ".", "/etc/hostname", "../shadow", "a/../../b", "ssh/", "ss*/key", "a[", "a//b"} {
		if err := (Identity{bad}).Validate(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// unsafeCase is a var layer that must be refused without writing outside.
type unsafeCase struct {
	name  string
	tar   func(base string) []byte
	setup func(t *testing.T, varDir string)
	opts  []Option
	want  error
}

func TestUnsafeEntries(t *testing.T) {
	for _, tc := range []unsafeCase{
		{name: "dotdot", tar: func(string) []byte { return tarOf(t, reg("var/../outside/pwned", "x")) }},
		{name: "inner dotdot", tar: func(string) []byte { return tarOf(t, reg("var/a/../../outside/pwned", "x")) }},
		{name: "absolute", tar: func(base string) []byte { return tarOf(t, reg(base+"/outside/pwned", "x")) }},
		{name: "outside prefix", tar: func(string) []byte { return tarOf(t, reg("etc/passwd", "x")) }},
		{name: "replace target", tar: func(string) []byte { return tarOf(t, reg("var", "x")) }},
		{name: "write through relative symlink", tar: func(string) []byte {
			return tarOf(t, symlink("var/link", "../outside"), reg("var/link/pwned", "x"))
		}},
		{name: "write through absolute symlink", tar: func(base string) []byte {
			return tarOf(t, symlink("var/link", base+"/outside"), reg("var/link/pwned", "x"))
		}},
		{name: "dir through symlink", tar: func(string) []byte {
			return tarOf(t, symlink("var/link", "../outside"), dir("var/link/pwned/"))
		}},
		{name: "symlink through symlink", tar: func(string) []byte {
			return tarOf(t, symlink("var/link", "../outside"), symlink("var/link/pwned", "/etc/passwd"))
		}},
		{name: "write through existing symlink", setup: func(t *testing.T, varDir string) {
			must(t, os.Symlink("../outside", filepath.Join(varDir, "link")))
		}, tar: func(string) []byte { return tarOf(t, reg("var/link/pwned", "x")) }},
		{name: "hardlink outside", tar: func(string) []byte { return tarOf(t, hardlink("var/pwned", "var/../outside/secret")) }},
		{name: "hardlink absolute", tar: func(base string) []byte { return tarOf(t, hardlink("var/pwned", base+"/outside/secret")) }},
		{name: "hardlink through symlink", tar: func(string) []byte {
			return tarOf(t, symlink("var/up", ".."), hardlink("var/pwned", "var/up/outside/secret"))
		}},
		{name: "hardlink to missing", tar: func(string) []byte { return tarOf(t, hardlink("var/pwned", "var/nothing")) }},
		{name: "char device", tar: func(string) []byte { return tarOf(t, special("var/null", tar.TypeChar)) }},
		{name: "block device", tar: func(string) []byte { return tarOf(t, special("var/sda", tar.TypeBlock)) }},
		{name: "fifo", tar: func(string) []byte { return tarOf(t, special("var/fifo", tar.TypeFifo)) }},
		{name: "too many entries", opts: []Option{WithLimits(Limits{MaxEntries: 2})}, want: ErrLimit,
			tar: func(string) []byte { return tarOf(t, reg("var/a", "a"), reg("var/b", "b"), reg("var/c", "c")) }},
		{name: "too large", opts: []Option{WithLimits(Limits{MaxBytes: 10})}, want: ErrLimit,
			tar: func(string) []byte { return tarOf(t, reg("var/a", "123456"), reg("var/b", "123456")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			varDir, outside := filepath.Join(base, "var"), filepath.Join(base, "outside")
			writeFiles(t, outside, map[string]string{"secret": "secret"})
			must(t, os.Mkdir(varDir, 0o755))
			if tc.setup != nil {
				tc.setup(t, varDir)
			}
			before := snapshot(t, outside)
			err := ApplyVar(ctx, newSeed(t, layers{vars: tc.tar(base)}), varDir, tc.opts...)
			want := tc.want
			if want == nil {
				want = ErrUnsafeEntry
			}
			if !errors.Is(err, want) || !strings.Contains(err.Error(), "entry") {
				t.Fatalf("err = %v, want %v naming the entry", err, want)
			}
			t.Log(err)
			if d := diffSnap(before, snapshot(t, outside)); d != "" {
				t.Errorf("outside changed:\n%s", d)
			}
			if exists(filepath.Join(base, "pwned")) {
				t.Error("wrote next to the target")
			}
		})
	}
}

func TestUnsafeEtc(t *testing.T) {
	t.Run("deletion through symlink", func(t *testing.T) {
		base := t.TempDir()
		etc, outside := filepath.Join(base, "etc"), filepath.Join(base, "outside")
		writeFiles(t, outside, map[string]string{"secret": "secret"})
		must(t, os.Mkdir(etc, 0o755))
		must(t, os.Symlink("../outside", filepath.Join(etc, "lnk")))
		seed := newSeed(t, layers{deletions: []string{"/etc/lnk/secret"}})
		if err := ApplyEtc(ctx, seed, etc, "", nil); !errors.Is(err, ErrUnsafeEntry) {
			t.Fatalf("err = %v", err)
		}
		if !exists(filepath.Join(outside, "secret")) {
			t.Error("deleted outside")
		}
	})
	t.Run("bad deletion paths", func(t *testing.T) {
		for _, p := range []string{"/etc/../x", "/var/x", "/etc/", "etc/x", "/etc//x"} {
			if err := deleteEtc(ctx, t.TempDir(), []string{p}); !errors.Is(err, ErrUnsafeEntry) {
				t.Errorf("%q: %v", p, err)
			}
		}
	})
	t.Run("identity through seed symlink", func(t *testing.T) {
		base := t.TempDir()
		etc, cur, outside := filepath.Join(base, "etc"), filepath.Join(base, "cur"), filepath.Join(base, "outside")
		writeFiles(t, outside, map[string]string{"ssh_host_rsa_key": "outside"})
		writeFiles(t, cur, map[string]string{"ssh/ssh_host_rsa_key": "target"})
		must(t, os.Mkdir(etc, 0o755))
		seed := newSeed(t, layers{etc: tarOf(t, symlink("etc/ssh", "../outside"))})
		if err := ApplyEtc(ctx, seed, etc, cur, DefaultIdentity()); !errors.Is(err, ErrUnsafeEntry) {
			t.Fatalf("err = %v", err)
		}
		if got := readFile(t, filepath.Join(outside, "ssh_host_rsa_key")); got != "outside" {
			t.Errorf("outside key = %q", got)
		}
	})
}

func TestCorruptLayer(t *testing.T) {
	good := newSeed(t, layers{
		vars: tarOf(t, reg("var/lib/etcd/db", strings.Repeat("etcd data ", 20000))),
		etc:  tarOf(t, reg("etc/a", strings.Repeat("config ", 20000))),
	})
	t.Run("truncated blob", func(t *testing.T) {
		seed, layout := viaLayout(t, good)
		p := blobPath(t, layout, seed, seedimage.RoleEtc)
		fi, err := os.Stat(p)
		must(t, err)
		must(t, os.Truncate(p, fi.Size()/2))
		err = ApplyEtc(ctx, seed, t.TempDir(), "", nil)
		if !errors.Is(err, seedimage.ErrBadLayer) {
			t.Fatalf("err = %v, want ErrBadLayer", err)
		}
	})
	t.Run("flipped bytes", func(t *testing.T) {
		seed, layout := viaLayout(t, good)
		p := blobPath(t, layout, seed, seedimage.RoleVar)
		b, err := os.ReadFile(p)
		must(t, err)
		for i := len(b) / 3; i < len(b)/3+16; i++ {
			b[i] ^= 0xff
		}
		must(t, os.WriteFile(p, b, 0o644))
		err = ApplyVar(ctx, seed, t.TempDir())
		if !errors.Is(err, seedimage.ErrBadLayer) && !errors.Is(err, seedimage.ErrDigestMismatch) {
			t.Fatalf("err = %v, want ErrBadLayer or ErrDigestMismatch", err)
		}
	})
	t.Run("truncated ostree", func(t *testing.T) {
		seed, layout := viaLayout(t, newSeed(t, layers{ostree: tarOf(t, reg("repo/config", "x"),
			reg("repo/objects/ab/cd.filez", strings.Repeat("object ", 50000)))}))
		p := blobPath(t, layout, seed, seedimage.RoleOstree)
		fi, err := os.Stat(p)
		must(t, err)
		must(t, os.Truncate(p, fi.Size()-100))
		work := t.TempDir()
		if _, err := ExtractOstree(ctx, seed, work); !errors.Is(err, seedimage.ErrBadLayer) {
			t.Fatalf("err = %v", err)
		}
		if exists(filepath.Join(work, markerName)) || exists(filepath.Join(work, repoName)) {
			t.Error("a failed extraction left a repository or marker")
		}
	})
	t.Run("swapped blob", func(t *testing.T) {
		// A valid gzipped tar, but not the content the config names.
		seed, layout := viaLayout(t, good)
		other, otherLayout := viaLayout(t, newSeed(t, layers{etc: tarOf(t, reg("etc/a", "other"))}))
		b, err := os.ReadFile(blobPath(t, otherLayout, other, seedimage.RoleEtc))
		must(t, err)
		must(t, os.WriteFile(blobPath(t, layout, seed, seedimage.RoleEtc), b, 0o644))
		if err := ApplyEtc(ctx, seed, t.TempDir(), "", nil); !errors.Is(err, seedimage.ErrDigestMismatch) {
			t.Fatalf("err = %v, want ErrDigestMismatch", err)
		}
	})
	t.Run("not a tar", func(t *testing.T) {
		seed := newSeed(t, layers{vars: []byte(strings.Repeat("garbage!", 200))})
		if err := ApplyVar(ctx, seed, t.TempDir()); !errors.Is(err, seedimage.ErrBadLayer) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("truncated tar", func(t *testing.T) {
		tr := tarOf(t, reg("var/a", strings.Repeat("a", 5000)))
		seed := newSeed(t, layers{vars: tr[:3000]})
		if err := ApplyVar(ctx, seed, t.TempDir()); !errors.Is(err, seedimage.ErrBadLayer) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx)
		cancel()
		if err := ApplyVar(c, good, t.TempDir()); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkApplyVar unpacks a var layer of 2,000 small files in 100
// directories (about what a seed's /etc holds; an ostree repository is
// some 50 times more).
func BenchmarkApplyVar(b *testing.B) {
	var ents []ent
	for d := range 100 {
		for f := range 20 {
			ents = append(ents, reg(fmt.Sprintf("var/d%03d/f%02d", d, f), strings.Repeat("x", 512)))
		}
	}
	seed := newSeed(b, layers{vars: tarOf(b, ents...)})
	varDir := b.TempDir()
	for b.Loop() {
		if err := ApplyVar(ctx, seed, varDir); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/2000, "µs/file")
}
