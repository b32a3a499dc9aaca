package bench

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/host/ostree"
	"ibu.dev/node-agent/host/ostreetest"
	"ibu.dev/node-agent/host/sim"
	"ibu.dev/node-agent/host/systemd"
	"ibu.dev/node-agent/journal"
	"ibu.dev/node-agent/seedapply"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/telemetry"
	"ibu.dev/shared/testkit/registrytest"
)

// benchKargs are the kernel arguments of the new deployment, for the agent
// and the bare commands alike.
var benchKargs = []string{"root=UUID=0000", "rw"}

// treeSpec sizes the seed's OS tree.
type treeSpec struct {
	dataFiles  int // files of fileSize random bytes under usr/share/data
	fileSize   int
	kernelSize int // random vmlinuz and initramfs.img sizes (0: WriteTree's tiny kernel, no initramfs)
	initrdSize int
}

// fullTree is the ~50 MB tree of the research notes (A1): a 2 MB kernel, a
// 4 MB initramfs and 440 files of 100 KB, all random.
var fullTree = treeSpec{dataFiles: 440, fileSize: 100 << 10, kernelSize: 2 << 20, initrdSize: 4 << 20}

// ostreeSeed is an archive-mode repository holding the seed commit, as the
// uncompressed tar that becomes the seed's ostree layer (entries under
// repo/).
type ostreeSeed struct {
	tar       string
	commit    string
	treeBytes int64
	treeFiles int
}

// makeOstreeSeed writes a tree of spec (with the kernel and os-release
// files ostree needs), commits it into a new archive repository and tars
// the repository.
func makeOstreeSeed(tb testing.TB, spec treeSpec) ostreeSeed {
	tb.Helper()
	ostreetest.Require(tb)
	dir := tb.TempDir()
	tree := filepath.Join(dir, "tree")
	ostreetest.WriteTree(tb, tree, seedVersion, "seed")
	rng := rand.New(rand.NewChaCha8([32]byte{'i', 'b', 'u'}))
	write := func(rel string, n int) {
		b := make([]byte, n)
		for i := 0; i < n; i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		p := filepath.Join(tree, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	modules := filepath.Join("usr", "lib", "modules", seedVersion)
	if spec.kernelSize > 0 {
		write(filepath.Join(modules, "vmlinuz"), spec.kernelSize)
	}
	if spec.initrdSize > 0 {
		write(filepath.Join(modules, "initramfs.img"), spec.initrdSize)
	}
	for i := range spec.dataFiles {
		write(filepath.Join("usr", "share", "data", fmt.Sprintf("f%04d", i)), spec.fileSize)
	}
	s := ostreeSeed{}
	if err := filepath.WalkDir(tree, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		s.treeBytes += fi.Size()
		s.treeFiles++
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	repo := filepath.Join(dir, "repo")
	runCmd(tb, "ostree", "init", "--repo="+repo, "--mode=archive")
	s.commit = strings.TrimSpace(runCmd(tb, "ostree", "commit", "--repo="+repo, "--orphan", "--tree=dir="+tree,
		"--subject=seed "+seedVersion, "--add-metadata-string=version="+seedVersion))
	if err := os.RemoveAll(tree); err != nil {
		tb.Fatal(err)
	}
	s.tar = filepath.Join(dir, "ostree-repo.tar")
	tarDir(tb, repo, "repo", s.tar)
	return s
}

// tarDir writes the tree at src into an uncompressed tar at out, its
// entries under prefix/.
func tarDir(tb testing.TB, src, prefix, out string) {
	tb.Helper()
	f, err := os.Create(out)
	if err != nil {
		tb.Fatal(err)
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(filepath.Join(prefix, rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = name
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		_, err = io.Copy(tw, in)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tb.Fatalf("tar %s: %v", src, err)
	}
}

func runCmd(tb testing.TB, argv ...string) string {
	tb.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		stderr := ""
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			stderr = strings.TrimSpace(string(ee.Stderr))
		}
		tb.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, stderr)
	}
	return string(out)
}

// cmdLog is a slog handler that collects the ostree backend's "ran"
// records: how many times each ostree command ran and for how long.
type cmdLog struct {
	mu    *sync.Mutex
	count map[string]int
	total map[string]time.Duration
	order *[]string
}

func newCmdLog() cmdLog {
	return cmdLog{mu: &sync.Mutex{}, count: map[string]int{}, total: map[string]time.Duration{}, order: &[]string{}}
}

func (c cmdLog) Enabled(context.Context, slog.Level) bool { return true }
func (c cmdLog) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c cmdLog) WithGroup(string) slog.Handler            { return c }

func (c cmdLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "ran" {
		return nil
	}
	var name string
	var d time.Duration
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "argv":
			if argv, ok := a.Value.Any().([]string); ok {
				name = commandName(argv)
			}
		case "duration":
			d = a.Value.Duration()
		}
		return true
	})
	c.add(name, d)
	return nil
}

func (c cmdLog) add(name string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.count[name]; !ok {
		*c.order = append(*c.order, name)
	}
	c.count[name]++
	c.total[name] += d
}

// merge adds o's figures to c.
func (c cmdLog) merge(o cmdLog) {
	o.mu.Lock()
	order := slices.Clone(*o.order)
	count, total := maps.Clone(o.count), maps.Clone(o.total)
	o.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range order {
		if _, ok := c.count[name]; !ok {
			*c.order = append(*c.order, name)
		}
		c.count[name] += count[name]
		c.total[name] += total[name]
	}
}

// commandName turns an argv into "ostree admin deploy" and the like.
func commandName(argv []string) string {
	i := slices.IndexFunc(argv, func(s string) bool { return filepath.Base(s) == "ostree" })
	if i < 0 {
		if len(argv) == 0 {
			return "?"
		}
		return filepath.Base(argv[0])
	}
	words := []string{"ostree"}
	for _, a := range argv[i+1:] {
		if strings.HasPrefix(a, "-") {
			continue
		}
		words = append(words, a)
		if a != "admin" {
			break
		}
	}
	return strings.Join(words, " ")
}

// timerControl is *testing.B's timer; tests pass noTimer.
type timerControl interface {
	StartTimer()
	StopTimer()
}

type noTimer struct{}

func (noTimer) StartTimer() {}
func (noTimer) StopTimer()  {}

// noReboot refuses reboots: Prep never asks for one, and this host must
// not really go down.
type noReboot struct{}

func (noReboot) Reboot(context.Context, string) error {
	return errors.New("the benchmark host does not reboot")
}

// agentPrep runs one agent on a fresh real-ostree sysroot, waits for it to
// register, then times desired Prep -> Prep Completed (the only part under
// tc's timer). It returns that time, the ostree commands the agent ran
// during Prep, and its steps' durations.
func agentPrep(tb testing.TB, tc timerControl, h *hub, bd *board, seedRef, cluster string) (time.Duration, cmdLog, []string, map[string]time.Duration) {
	tb.Helper()
	sysroot := ostreetest.NewSysroot(tb)
	dir := tb.TempDir()
	cmds := newCmdLog()
	srs := ostree.New(sysroot.Dir, ostree.WithBootedFile(sysroot.BootedFile), ostree.WithoutImmutable(),
		ostree.WithLogger(slog.New(cmds)))
	j, err := journal.Open(filepath.Join(dir, "journal"))
	if err != nil {
		tb.Fatal(err)
	}
	a, err := agent.New(agent.Config{
		ClusterID: cluster, Version: ostreetest.InitialVersion, Fingerprint: benchFingerprint(),
		WorkDir: filepath.Join(dir, "work"), KernelArgs: benchKargs, HeartbeatInterval: time.Hour,
	}, agent.Deps{
		JS: h.js, Stateroots: srs, Rebooter: noReboot{}, Boot: systemd.BootID{}, Images: sim.NewImages(0, 0),
		Journal: j, Telemetry: telemetry.Telemetry{Logger: discardLogger()},
	})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("agent %s: %v", cluster, err)
		}
	}()
	bd.wait(tb, []string{cluster}, stages.IdlePosition, 0, time.Minute)
	registered := newCmdLog()
	registered.merge(cmds) // what registering ran, to subtract

	syscall.Sync() // nothing dirty from the setup for the agent's syncfs to flush
	tc.StartTimer()
	start := time.Now()
	h.desire(tb, []string{cluster}, stages.Prep, 1, seedRef)
	bd.wait(tb, []string{cluster}, prepDone, 1, 5*time.Minute)
	took := time.Since(start)
	tc.StopTimer()

	prep := newCmdLog()
	cmds.mu.Lock()
	for _, name := range *cmds.order {
		if n := cmds.count[name] - registered.count[name]; n > 0 {
			prep.count[name] = n
			prep.total[name] = cmds.total[name] - registered.total[name]
			*prep.order = append(*prep.order, name)
		}
	}
	cmds.mu.Unlock()
	if got := sysroot.Status(); len(got) != 2 || got[0].Stateroot != ostreetest.InitialStateroot || got[1].Stateroot != newStateroot {
		tb.Fatalf("after Prep deployments = %+v, want %s then %s", got, ostreetest.InitialStateroot, newStateroot)
	}
	order, steps := stepDurations(tb, h, cluster)
	return took, prep, order, steps
}

// barePrep does the same work with the bare commands on a fresh sysroot:
// untar the repository, pull-local the commit, os-init, deploy not as
// default. Only the commands are under tc's timer.
func barePrep(tb testing.TB, tc timerControl, seed ostreeSeed) (time.Duration, cmdLog) {
	tb.Helper()
	sysroot := ostreetest.NewSysroot(tb)
	work := tb.TempDir()
	cmds := newCmdLog()
	timed := func(name string, argv ...string) {
		start := time.Now()
		runCmd(tb, argv...)
		cmds.add(name, time.Since(start))
	}
	ostreeCmd := func(args ...string) []string { return append(slices.Clone(sysroot.Command), args...) }
	deploy := ostreeCmd("admin", "deploy", "--sysroot="+sysroot.Dir, "--os="+newStateroot, "--not-as-default", "--no-prune", "--karg-none")
	for _, k := range benchKargs {
		deploy = append(deploy, "--karg-append="+k)
	}
	deploy = append(deploy, seed.commit)

	syscall.Sync()
	tc.StartTimer()
	start := time.Now()
	timed("tar -xf", "tar", "-xf", seed.tar, "-C", work)
	timed("ostree pull-local", ostreeCmd("pull-local", "--repo="+sysroot.Repo, filepath.Join(work, "repo"), seed.commit)...)
	timed("ostree admin os-init", ostreeCmd("admin", "os-init", "--sysroot="+sysroot.Dir, newStateroot)...)
	timed("ostree admin deploy", deploy...)
	took := time.Since(start)
	tc.StopTimer()

	if got := sysroot.Status(); len(got) != 2 || got[1].Stateroot != newStateroot {
		tb.Fatalf("after the bare commands deployments = %+v", got)
	}
	return took, cmds
}

// dissectPullSeed times the parts of the agent's PullSeed step one by one,
// with the same calls: pull, write the OCI layout, read it back, verify,
// extract the ostree layer.
func dissectPullSeed(tb testing.TB, seedRef string) ([]string, map[string]time.Duration) {
	tb.Helper()
	ctx := tb.Context()
	dir := tb.TempDir()
	layout := filepath.Join(dir, "seed-layout")
	order := []string{"seedimage.Pull", "seedimage.WriteLayout", "seedimage.ReadLayout", "seedimage.Verify",
		"seedapply.ExtractOstree (+syncfs)", "(layer gunzip+sha256 alone)"}
	out := map[string]time.Duration{}
	var remote, local *seedimage.Seed
	var err error
	syscall.Sync()
	for i, f := range []func() error{
		func() error { remote, err = seedimage.Pull(ctx, seedRef); return err },
		func() error { return seedimage.WriteLayout(layout, remote.Image, "seed") },
		func() error { local, err = seedimage.ReadLayout(layout, "seed"); return err },
		func() error { return seedimage.Verify(ctx, local) },
		func() error { _, err := seedapply.ExtractOstree(ctx, local, dir); return err },
		func() error { return gunzipHash(local) },
	} {
		start := time.Now()
		if err := f(); err != nil {
			tb.Fatalf("%s: %v", order[i], err)
		}
		out[order[i]] = time.Since(start)
	}
	return order, out
}

// gunzipHash reads the seed's ostree layer uncompressed into a SHA-256,
// the decompression and hashing that extraction (and Verify) do besides
// writing files.
func gunzipHash(s *seedimage.Seed) error {
	l, err := s.Layer(seedimage.RoleOstree)
	if err != nil {
		return err
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(sha256.New(), rc)
	return err
}

// prepResult is what prepCompare measured, summed over its iterations.
type prepResult struct {
	n              int
	agent, bare    time.Duration
	agentCmds      cmdLog
	bareCmds       cmdLog
	stepOrder      []string
	steps          map[string]time.Duration
	pullOrder      []string
	pull           map[string]time.Duration
	layerGz        int64
	seed           ostreeSeed
	setupSeed      time.Duration
	seedBuildPush  time.Duration
	iterationSetup time.Duration
}

// prepCompare builds and pushes the seed of spec, then n times runs the
// agent's Prep and the bare commands, each on a fresh sysroot.
func prepCompare(tb testing.TB, tc timerControl, spec treeSpec, n int) prepResult {
	tb.Helper()
	ostreetest.Require(tb)
	tc.StopTimer()
	start := time.Now()
	seed := makeOstreeSeed(tb, spec)
	r := prepResult{seed: seed, setupSeed: time.Since(start), agentCmds: newCmdLog(), bareCmds: newCmdLog(), steps: map[string]time.Duration{}}
	start = time.Now()
	h := startHub(tb)
	bd := watchBoard(tb, h)
	reg := registrytest.Start(tb)
	ref := pushSeed(tb, reg, seedimage.FileOpener(seed.tar), seed.commit, fakeImages(2))
	r.seedBuildPush = time.Since(start)
	if s, err := seedimage.Pull(tb.Context(), ref); err == nil {
		if l, err := s.Layer(seedimage.RoleOstree); err == nil {
			r.layerGz, _ = l.Size()
		}
	}
	for i := range n {
		runAgent := func() {
			took, cmds, order, steps := agentPrep(tb, tc, h, bd, ref, fmt.Sprintf("ostree-bench-%d", i))
			r.agent += took
			r.agentCmds.merge(cmds)
			for _, s := range order {
				if !slices.Contains(r.stepOrder, s) {
					r.stepOrder = append(r.stepOrder, s)
				}
				r.steps[s] += steps[s]
			}
		}
		runBare := func() {
			took, cmds := barePrep(tb, tc, seed)
			r.bare += took
			r.bareCmds.merge(cmds)
		}
		// Alternate which goes first, so that neither always runs on the
		// other's leftovers (page cache, writeback).
		if i%2 == 0 {
			runAgent()
			runBare()
		} else {
			runBare()
			runAgent()
		}
		r.n++
	}
	r.pullOrder, r.pull = dissectPullSeed(tb, ref)
	return r
}

func (r prepResult) print(w io.Writer) {
	per := func(d time.Duration) string { return fmtDur(d / time.Duration(r.n)) }
	fmt.Fprintf(w, "seed tree: %.1f MB in %d files; ostree layer %.1f MB gzipped; commit %s\n",
		float64(r.seed.treeBytes)/1e6, r.seed.treeFiles, float64(r.layerGz)/1e6, r.seed.commit[:12])
	fmt.Fprintf(w, "setup (not timed): tree+commit+tar %s, seed build+push %s\n", fmtDur(r.setupSeed), fmtDur(r.seedBuildPush))
	fmt.Fprintf(w, "agent: %s per Prep (desired Prep -> status Prep Completed), %d run(s)\n", per(r.agent), r.n)
	for _, s := range r.stepOrder {
		fmt.Fprintf(w, "  step %-28s %8s\n", s, per(r.steps[s]))
	}
	for _, c := range *r.agentCmds.order {
		fmt.Fprintf(w, "  cmd  %-28s %8s  (%d calls)\n", c, per(r.agentCmds.total[c]), r.agentCmds.count[c]/r.n)
	}
	fmt.Fprintf(w, "  PullSeed dissected (one extra run, same calls):\n")
	for _, s := range r.pullOrder {
		fmt.Fprintf(w, "       %-33s %8s\n", s, fmtDur(r.pull[s]))
	}
	fmt.Fprintf(w, "bare: %s per run (untar, pull-local, os-init, deploy --not-as-default)\n", per(r.bare))
	for _, c := range *r.bareCmds.order {
		fmt.Fprintf(w, "  cmd  %-28s %8s\n", c, per(r.bareCmds.total[c]))
	}
	fmt.Fprintf(w, "ratio: %.2f\n", r.agent.Seconds()/r.bare.Seconds())
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

// BenchmarkPrepRealOstree compares the agent's Prep on the real ostree
// backend with the bare ostree commands doing the same work, for a ~50 MB
// seed commit (440 random files of 100 KB, a 2 MB kernel, a 4 MB
// initramfs). Each iteration uses two fresh sysroots (made outside the
// timer); the seed is built and pushed once. Run it once:
//
//	go test -run '^$' -bench BenchmarkPrepRealOstree -benchtime 1x ./bench/
//
// The agent's time runs from writing desired Prep to seeing status Prep
// Completed through a KV watch, and includes pulling the seed from the
// in-process registry, verifying and extracting it; the bare time starts
// from the repository's tar already on disk. It prints both, the agent's
// time per step (step.finished durationMs) and per ostree command, the
// parts of PullSeed, and last "ratio: <agent ÷ bare>".
func BenchmarkPrepRealOstree(b *testing.B) {
	ostreetest.Require(b)
	r := prepCompare(b, b, fullTree, b.N)
	b.ReportMetric(r.agent.Seconds()/float64(r.n), "agent-s/op")
	b.ReportMetric(r.bare.Seconds()/float64(r.n), "bare-s/op")
	b.ReportMetric(r.agent.Seconds()/r.bare.Seconds(), "ratio")
	r.print(os.Stdout)
}

// TestPrepRealOstreeSmoke runs the comparison once on a tiny tree, so that
// the helpers are exercised by `go test`.
func TestPrepRealOstreeSmoke(t *testing.T) {
	r := prepCompare(t, noTimer{}, treeSpec{dataFiles: 3, fileSize: 1 << 10}, 1)
	if r.agent <= 0 || r.bare <= 0 || len(r.stepOrder) == 0 {
		t.Fatalf("nothing measured: %+v", r)
	}
	for _, want := range []string{"Prep/PullSeed", "Prep/ImportCommit", "Prep/DeployStateroot"} {
		if !slices.Contains(r.stepOrder, want) {
			t.Errorf("no step.finished for %s: %v", want, r.stepOrder)
		}
	}
	if r.agentCmds.count["ostree pull-local"] != 1 || r.agentCmds.count["ostree admin deploy"] != 1 {
		t.Errorf("agent's ostree commands: %v", r.agentCmds.count)
	}
	if testing.Verbose() {
		r.print(t.Output())
	}
}
