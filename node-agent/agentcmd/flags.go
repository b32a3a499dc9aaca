// Package agentcmd is the ibu-agent command: it reads flags (each with an
// IBU_* environment fallback) into a Config, wires the host backends (ostree
// and systemd, or a simulated host), NATS JetStream and telemetry, and runs
// the node agent until its context ends.
package agentcmd

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"ibu.dev/node-agent/agent"
	"ibu.dev/shared/events"
	"ibu.dev/shared/fingerprint"
	"ibu.dev/shared/natsconn"
	"ibu.dev/shared/seedimage"
)

// ErrUsage marks a command-line mistake (a bad flag or environment
// value): the command exits 2.
var ErrUsage = errors.New("usage error")

// usageError is a command-line mistake; its message is the whole error.
type usageError struct{ msg string }

func (e usageError) Error() string        { return e.msg }
func (e usageError) Is(target error) bool { return target == ErrUsage }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// Backends and image stores.
const (
	BackendOstree = "ostree"
	BackendSim    = "sim"

	ImageStoreSim  = "sim"
	ImageStoreNone = "none"
	ImageStoreCRI  = "cri"
)

// Config is the parsed command line.
type Config struct {
	ClusterID string
	Labels    map[string]string

	// NATS is how to reach the hub (Name is set at connect).
	NATS           natsconn.Config
	StreamReplicas int

	Backend    string // BackendOstree or BackendSim
	ImageStore string // ImageStoreSim, ImageStoreNone or ImageStoreCRI
	Sysroot    string // host path of the ostree sysroot
	HostRoot   string // where the host's / is mounted here ("" = this is the host)
	// JournalDir and WorkDir are paths of this process. With the sim
	// backend "" means under SimDir.
	JournalDir string
	WorkDir    string
	Kubeconfig string

	Version      string // the running OpenShift version ("" = the booted commit's)
	Fingerprint  fingerprint.Fingerprint
	SeedAuthFile string
	Services     agent.Services

	// Precache (see precache_flags.go).
	CRIEndpoint        string
	PullAuthFile       string
	PrecacheBestEffort bool
	RegistryMappings   []events.RegistryMapping
	PullConcurrency    int

	Heartbeat          time.Duration
	InitMonitorTimeout time.Duration

	LogLevel  string
	LogFormat string
	// MetricsListen is where /metrics is served ("" = nowhere).
	MetricsListen string

	// SeedCapture makes this a seed cluster's agent: it also serves the
	// seed-builder's capture tasks. ReleaseImage goes into the seed's info.
	SeedCapture  bool
	ReleaseImage string

	HealthAddr string // /healthz and /readyz ("" = none)

	SimStateroot   string
	SimDir         string // "" = a new temporary directory, removed at exit
	SimRebootDelay time.Duration
}

// option is one flag with its environment fallback.
type option struct {
	name    string
	env     string
	arg     string // placeholder in the help ("" for a boolean)
	def     string // default, as parsed ("" = none)
	shown   string // default as the help shows it, when not def
	help    string
	boolean bool
}

func options() []option {
	nats := natsOptions()
	return []option{
		{name: "cluster-id", env: "IBU_CLUSTER_ID", arg: "ID", help: "the cluster's id: a DNS label (1-63 lower-case letters, digits, '-'). Required"},
		{name: "labels", env: "IBU_LABELS", arg: "k=v,...", help: "the cluster's labels, which plans select on"},
		nats[natsconn.FlagURL],
		nats[natsconn.FlagCreds],
		nats[natsconn.FlagCA],
		{name: "stream-replicas", env: "IBU_STREAM_REPLICAS", arg: "N", def: "1", help: "replicas of the streams and buckets the agent creates when the hub has none yet (1-5; existing ones are left alone)"},
		{name: "backend", env: "IBU_BACKEND", arg: "ostree|sim", def: BackendOstree, help: "host backend: ostree (the real host: ostree CLI, systemctl reboot, kernel boot id) or sim (a simulated host in this process that reboots after --sim-reboot-delay)"},
		{name: "image-store", env: "IBU_IMAGE_STORE", arg: "cri|sim|none", shown: "cri with ostree, sim with sim", help: "node image store for precache: cri pulls through the container runtime's CRI image service (--cri-endpoint); none fails every precache step; sim pretends to pull"},
		{name: "sysroot", env: "IBU_SYSROOT", arg: "DIR", def: "/sysroot", help: "the ostree sysroot, as a host path"},
		{name: "host-root", env: "IBU_HOST_ROOT", arg: "DIR", help: "where the host's / is mounted in this container (e.g. /host): ostree and systemctl then run via chroot DIR, and host paths are opened under DIR"},
		{name: "journal-dir", env: "IBU_JOURNAL_DIR", arg: "DIR", shown: "<host-root><sysroot>/ostree/ibu-agent/journal; sim: <sim-dir>/journal", help: "the step journal. It must be on the physical root, outside both stateroots' /etc and /var, so that the agent finds the run to resume whichever stateroot it boots in (after the pivot, or after a rollback)"},
		{name: "work-dir", env: "IBU_WORK_DIR", arg: "DIR", shown: "<host-root><sysroot>/ostree/ibu-agent/work; sim: <sim-dir>/work", help: "scratch space for the seed's extracted ostree repository during Prep; like the journal, outside both stateroots (and under --host-root when set)"},
		{name: "kubeconfig", env: "IBU_KUBECONFIG", arg: "FILE", help: "kubeconfig of the local cluster: what --seed-capture reads the seed cluster's inventory with"},
		{name: "version", env: "IBU_VERSION", arg: "X.Y.Z", help: "the OpenShift version the booted stateroot runs; with --backend ostree the booted deployment's commit version wins when it has one; required with --backend sim"},
		{name: "arch", env: "IBU_ARCH", arg: "ARCH", def: runtime.GOARCH, help: "fingerprint: CPU architecture (amd64, arm64, ppc64le, s390x)"},
		{name: "platform", env: "IBU_PLATFORM", arg: "NAME", def: "None", help: "fingerprint: infrastructure platform (None, BareMetal, ...)"},
		{name: "network-type", env: "IBU_NETWORK_TYPE", arg: "NAME", def: "OVNKubernetes", help: "fingerprint: cluster network type"},
		{name: "ip-family", env: "IBU_IP_FAMILY", arg: "FAMILY", def: string(fingerprint.IPv4), help: "fingerprint: IPv4, IPv6 or DualStack"},
		{name: "container-storage", env: "IBU_CONTAINER_STORAGE", arg: "LAYOUT", def: fingerprint.StorageSeparatePartition, help: "fingerprint: where /var/lib/containers lives: separate-partition or var-lib-containers"},
		{name: "fips", env: "IBU_FIPS", boolean: true, def: "false", help: "fingerprint: FIPS mode is on"},
		{name: "proxy", env: "IBU_PROXY", boolean: true, def: "false", help: "fingerprint: a cluster-wide proxy is configured"},
		{name: "trust-bundle-hash", env: "IBU_TRUST_BUNDLE_HASH", arg: "HASH", help: "fingerprint: hash of the additional trust bundle (empty: none)"},
		{name: "operators", env: "IBU_OPERATORS", arg: "name=version,...", help: "fingerprint: installed operators"},
		{name: "seed-auth-file", env: "IBU_SEED_AUTH_FILE", arg: "FILE", help: "docker config.json with credentials for the seed image's registry (default: the standard docker/podman locations)"},
		{name: "services", env: "IBU_SERVICES", arg: "LIST", help: "hub services that answer this cluster's tasks, comma-separated: backup-restore and health (absent: their steps are skipped with a condition saying so), precache (absent: the agent pulls the seed's image list minus what the node has); empty or none: no service"},
		{name: "heartbeat", env: "IBU_HEARTBEAT", arg: "DURATION", def: "10s", help: "interval between heartbeats"},
		{name: "init-monitor-timeout", env: "IBU_INIT_MONITOR_TIMEOUT", arg: "DURATION", def: "30m", help: "an upgrade not completed this long after the pivot rolls back by itself (unless auto-rollback is off)"},
		{name: "health-addr", env: "IBU_HEALTH_ADDR", arg: "ADDR", help: "listen address of /healthz (alive) and /readyz (connected to NATS, streams and buckets found), e.g. :8081; empty: none"},
		nats[natsconn.FlagInboxPrefix],
		{name: "log-level", env: "IBU_LOG_LEVEL", arg: "LEVEL", def: "info", help: "debug, info, warn or error"},
		{name: "log-format", env: "IBU_LOG_FORMAT", arg: "json|text", def: "json", help: "log format on standard error"},
		{name: "seed-capture", env: "IBU_SEED_CAPTURE", boolean: true, def: "false", help: "this is a seed cluster: also serve the seed-builder's capture tasks (inventory from --kubeconfig; workloads stopped with systemctl during a capture and always started again). Needs --backend ostree, --kubeconfig and --release-image"},
		{name: "release-image", env: "IBU_RELEASE_IMAGE", arg: "REF", help: "with --seed-capture: the release payload the seed cluster runs (name@sha256:...), written into the seed's info"},
		{name: "metrics-listen", env: "IBU_METRICS_LISTEN", arg: "HOST:PORT", help: "serve Prometheus metrics on http://HOST:PORT/metrics (stage and step durations, precache bytes and images, events handled, NATS reconnects); empty: none"},
		{name: "cri-endpoint", env: "IBU_CRI_ENDPOINT", arg: "URL", def: "unix:///var/run/crio/crio.sock", help: "the container runtime's CRI socket, for --image-store cri"},
		{name: "pull-auth-file", env: "IBU_PULL_AUTH_FILE", arg: "FILE", help: "docker config.json with the node's pull secret for precache pulls (default: the runtime's own credentials)"},
		{name: "precache-best-effort", env: "IBU_PRECACHE_BEST_EFFORT", boolean: true, def: "false", help: "Prep completes when images fail to pull; the failures are listed in the status and events"},
		{name: "registry-mappings", env: "IBU_REGISTRY_MAPPINGS", arg: "FROM=TO,...", help: "this site's mirrors: image references starting with FROM (a registry or repository prefix) are pulled from TO"},
		{name: "pull-concurrency", env: "IBU_PULL_CONCURRENCY", arg: "N", def: "10", help: "parallel image pulls on this node (1-100; the fleet's pull budget may hold them back)"},
		{name: "sim-stateroot", env: "IBU_SIM_STATEROOT", arg: "NAME", def: "rhcos", help: "sim backend: the stateroot the simulated host boots first"},
		{name: "sim-dir", env: "IBU_SIM_DIR", arg: "DIR", shown: "a new temporary directory, removed at exit", help: "sim backend: the simulated host's files (journal, work, stateroot /etc and /var); its deployments live in memory, so keep a directory across runs only to inspect it"},
		{name: "sim-reboot-delay", env: "IBU_SIM_REBOOT_DELAY", arg: "DURATION", def: "2s", help: "sim backend: how long a simulated reboot takes"},
	}
}

// natsOptions are the rows of the NATS connection flags by name, as
// natsconn defines them, so that their names, environment variables and
// help are the services' and ibuctl's.
func natsOptions() map[string]option {
	rows := map[string]option{}
	for _, f := range natsconn.Flags() {
		rows[f.Name] = option{name: f.Name, env: f.Env, arg: f.Arg, def: f.Default, help: f.Help}
	}
	return rows
}

// Usage writes the command's help to w.
func Usage(w io.Writer) {
	fmt.Fprint(w, `Usage: ibu-agent --cluster-id ID [flags]

ibu-agent is the ibu node agent: it registers its cluster with the hub over
NATS JetStream, heartbeats, and runs the image-based upgrade stages (Prep,
Upgrade, Rollback, Finalize, Abort) that the cluster's desired state asks
for, resuming from its journal after a crash or a reboot. It runs until
SIGTERM or SIGINT.

Every flag may also be set by the environment variable shown; a flag given
on the command line wins. Tracing is configured by the standard OTEL_*
variables (OTEL_TRACES_EXPORTER=otlp|console|none, ...).

Flags:
`)
	for _, o := range options() {
		arg := o.arg
		if o.boolean {
			arg = "[=true|false]"
		} else {
			arg = " " + arg
		}
		fmt.Fprintf(w, "  --%s%s  ($%s)\n", o.name, arg, o.env)
		help := o.help
		switch {
		case o.shown != "":
			help += " (default " + o.shown + ")"
		case o.def != "" && !o.boolean:
			help += " (default " + o.def + ")"
		}
		for _, line := range wrap(help, 72) {
			fmt.Fprintf(w, "        %s\n", line)
		}
	}
	fmt.Fprint(w, `  --help
        print this help

Exit status: 0 after a signal, 2 on a bad flag, 1 on any other error.
`)
}

func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return append(lines, line)
}

// value is a flag's raw text; booleans accept a bare --flag.
type value struct {
	s       string
	boolean bool
}

func (v *value) String() string     { return v.s }
func (v *value) Set(s string) error { v.s = s; return nil }
func (v *value) IsBoolFlag() bool   { return v.boolean }

// setting is one flag's raw value and where it came from.
type setting struct {
	value string
	where string // "--x" or "--x (from $X)", for messages
	given bool   // on the command line or in the environment
}

// parser turns settings into typed values, collecting one line per
// problem.
type parser struct {
	in   map[string]setting
	errs []string
}

func (p *parser) str(name string) string { return p.in[name].value }
func (p *parser) given(name string) bool { return p.in[name].given }

// bad records a problem with the value of flag name.
func (p *parser) bad(name, format string, a ...any) {
	s := p.in[name]
	p.errs = append(p.errs, fmt.Sprintf("%s %q: %s", s.where, s.value, fmt.Sprintf(format, a...)))
}

// Parse reads args (without the program name) and the environment through
// getenv into a Config. It returns flag.ErrHelp for --help, and an error
// matching ErrUsage, one line per bad flag, for anything else wrong.
func Parse(args []string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	opts := options()
	fs := flag.NewFlagSet("ibu-agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	vals := map[string]*value{}
	for _, o := range opts {
		v := &value{boolean: o.boolean}
		vals[o.name] = v
		fs.Var(v, o.name, o.help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, flag.ErrHelp
		}
		return Config{}, usagef("%v (ibu-agent --help lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return Config{}, usagef("unexpected argument %q: ibu-agent takes only flags (ibu-agent --help lists them)", fs.Arg(0))
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	p := &parser{in: map[string]setting{}}
	for _, o := range opts {
		s := setting{value: o.def, where: "--" + o.name}
		switch {
		case onCommandLine[o.name]:
			s.value, s.given = vals[o.name].s, true
		case strings.TrimSpace(getenv(o.env)) != "":
			s.value, s.given = strings.TrimSpace(getenv(o.env)), true
			s.where = fmt.Sprintf("--%s (from $%s)", o.name, o.env)
		}
		p.in[o.name] = s
	}
	cfg := p.config()
	if len(p.errs) == 0 {
		if err := checkRegistration(cfg); err != nil {
			p.errs = append(p.errs, err.Error())
		}
	}
	if len(p.errs) > 0 {
		return Config{}, usageError{strings.Join(p.errs, "\n")}
	}
	return cfg, nil
}

// checkRegistration validates the registration the flags make against the
// event contract, so that a value the flag checks let through (should they
// drift from the schema) is refused here rather than by the hub.
func checkRegistration(c Config) error {
	version := c.Version
	if version == "" {
		version = "0.0.0" // the booted commit's, known at start
	}
	reg := events.ClusterRegistered{
		ClusterID: c.ClusterID, Labels: c.Labels, Version: version,
		Stateroots:      []events.Stateroot{{Name: c.SimStateroot}},
		BootedStateroot: c.SimStateroot, AgentVersion: agentVersion(), Fingerprint: c.Fingerprint,
	}
	b, err := json.Marshal(reg)
	if err != nil {
		return fmt.Errorf("encode the registration: %w", err)
	}
	if err := events.ValidateData(events.TypeClusterRegistered, b); err != nil {
		return fmt.Errorf("the flags make an invalid cluster registration: %v", err)
	}
	return nil
}

// Patterns of the registration event's schema.
var (
	labelKeyRE   = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	labelValueRE = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$`)
	k8sNameRE    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	nameTokenRE  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,31}$`)
	stateRootRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	trustHashRE  = regexp.MustCompile(`^[A-Za-z0-9:._-]{0,128}$`)
)

func (p *parser) config() Config {
	var c Config
	c.ClusterID = p.str("cluster-id")
	if !p.given("cluster-id") {
		p.errs = append(p.errs, "--cluster-id is required (or $IBU_CLUSTER_ID): the cluster's id, a DNS label such as sno-0042")
	} else if err := events.ValidID(c.ClusterID); err != nil {
		p.bad("cluster-id", "%v", err)
	}
	c.Labels = p.labels("labels")

	c.NATS = natsconn.Config{
		URL:         p.natsURL(natsconn.FlagURL),
		Creds:       p.file(natsconn.FlagCreds),
		CA:          p.file(natsconn.FlagCA),
		InboxPrefix: p.str(natsconn.FlagInboxPrefix),
	}
	c.StreamReplicas = p.intRange("stream-replicas", 1, 5)
	c.HealthAddr = p.str("health-addr")

	c.Backend = p.oneOf("backend", BackendOstree, BackendSim)
	c.ImageStore = p.str("image-store")
	if !p.given("image-store") {
		c.ImageStore = ImageStoreCRI
		if c.Backend == BackendSim {
			c.ImageStore = ImageStoreSim
		}
	} else {
		c.ImageStore = p.oneOf("image-store", ImageStoreCRI, ImageStoreSim, ImageStoreNone)
		if c.Backend == BackendSim && c.ImageStore == ImageStoreNone {
			p.bad("image-store", "the sim backend has only the sim image store; drop the flag or use --backend ostree")
		}
	}

	c.Sysroot = p.absPath("sysroot")
	c.HostRoot = p.str("host-root")
	if p.given("host-root") {
		c.HostRoot = p.absPath("host-root")
		if c.HostRoot != "" {
			if fi, err := os.Stat(c.HostRoot); err != nil || !fi.IsDir() {
				p.bad("host-root", "not a directory; want where the host's / is mounted, such as /host")
			}
		}
	}
	c.JournalDir = p.dir("journal-dir", c, "journal")
	c.WorkDir = p.dir("work-dir", c, "work")
	if c.Backend == BackendOstree && c.HostRoot != "" && filepath.IsAbs(c.WorkDir) && !under(c.WorkDir, c.HostRoot) {
		p.bad("work-dir", "must be under --host-root %s: ostree, run in the host's root, imports the seed from it", c.HostRoot)
	}
	c.Kubeconfig = p.file("kubeconfig")

	c.Version = p.str("version")
	if c.Version != "" {
		if _, err := seedimage.ParseVersion(c.Version); err != nil || len(c.Version) > 64 {
			p.bad("version", "want an OpenShift version X.Y.Z[-pre], such as 4.16.3 or 4.17.0-rc.1")
		}
	} else if c.Backend == BackendSim {
		p.errs = append(p.errs, "--version is required with --backend sim (or $IBU_VERSION): the version the simulated host runs, such as 4.16.3")
	}

	c.Fingerprint = fingerprint.Fingerprint{
		Architecture:     p.oneOf("arch", "amd64", "arm64", "ppc64le", "s390x"),
		Platform:         p.token("platform"),
		NetworkType:      p.token("network-type"),
		IPFamily:         fingerprint.IPFamily(p.oneOfFold("ip-family", string(fingerprint.IPv4), string(fingerprint.IPv6), string(fingerprint.DualStack))),
		ContainerStorage: p.oneOf("container-storage", fingerprint.StorageSeparatePartition, fingerprint.StorageVarLibContainers),
		FIPS:             p.boolean("fips"),
		Proxy:            p.boolean("proxy"),
		TrustBundleHash:  p.str("trust-bundle-hash"),
		Operators:        p.operators("operators"),
	}
	if !trustHashRE.MatchString(c.Fingerprint.TrustBundleHash) {
		p.bad("trust-bundle-hash", "want at most 128 letters, digits, ':', '.', '_' or '-', such as sha256:0f3a...")
	}

	c.SeedAuthFile = p.authFile("seed-auth-file")
	c.Services = p.services("services")
	p.precache(&c)
	c.Heartbeat = p.duration("heartbeat")
	c.InitMonitorTimeout = p.duration("init-monitor-timeout")
	c.LogLevel = p.logLevel("log-level")
	c.LogFormat = p.oneOf("log-format", "json", "text")
	c.MetricsListen = p.str("metrics-listen")
	c.SeedCapture = p.boolean("seed-capture")
	c.ReleaseImage = p.str("release-image")
	if c.SeedCapture {
		switch {
		case c.Backend != BackendOstree:
			p.bad("seed-capture", "needs --backend ostree: a capture exports the booted ostree commit")
		case c.Kubeconfig == "":
			p.bad("seed-capture", "needs --kubeconfig: the seed-builder checks the cluster's namespaces, CRDs, volumes and nodes before a capture")
		}
		if err := seedimage.ValidateImageRef(c.ReleaseImage); err != nil {
			p.bad("release-image", "with --seed-capture, want the release payload by digest (name@sha256:...): %v", err)
		}
	}

	c.SimStateroot = p.str("sim-stateroot")
	if !stateRootRE.MatchString(c.SimStateroot) {
		p.bad("sim-stateroot", "want an ostree stateroot name: letters, digits, '.', '_', '-', not starting with '.' or '-'")
	}
	c.SimDir = p.str("sim-dir")
	if c.SimDir != "" {
		c.SimDir = p.absPath("sim-dir")
	}
	c.SimRebootDelay = p.durationMin("sim-reboot-delay", 0)
	return c
}

func (p *parser) oneOf(name string, allowed ...string) string {
	v := p.str(name)
	if !slices.Contains(allowed, v) {
		p.bad(name, "want one of %s", strings.Join(allowed, ", "))
	}
	return v
}

// oneOfFold is oneOf ignoring case; it returns the canonical spelling.
func (p *parser) oneOfFold(name string, allowed ...string) string {
	v := p.str(name)
	for _, a := range allowed {
		if strings.EqualFold(v, a) {
			return a
		}
	}
	p.bad(name, "want one of %s", strings.Join(allowed, ", "))
	return v
}

func (p *parser) token(name string) string {
	v := p.str(name)
	if !nameTokenRE.MatchString(v) {
		p.bad(name, "want a name of 1-32 letters and digits starting with a letter")
	}
	return v
}

func (p *parser) boolean(name string) bool {
	b, err := strconv.ParseBool(p.str(name))
	if err != nil {
		p.bad(name, "want true or false")
	}
	return b
}

func (p *parser) intRange(name string, lo, hi int) int {
	n, err := strconv.Atoi(p.str(name))
	if err != nil || n < lo || n > hi {
		p.bad(name, "want a whole number from %d to %d", lo, hi)
	}
	return n
}

func (p *parser) duration(name string) time.Duration {
	d, err := time.ParseDuration(p.str(name))
	if err != nil || d <= 0 {
		p.bad(name, "want a positive duration such as 10s, 5m or 1h30m")
	}
	return d
}

func (p *parser) durationMin(name string, lo time.Duration) time.Duration {
	d, err := time.ParseDuration(p.str(name))
	if err != nil || d < lo {
		p.bad(name, "want a duration of at least %s, such as 2s or 1m", lo)
	}
	return d
}

func (p *parser) logLevel(name string) string {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(p.str(name))); err != nil {
		p.bad(name, "want debug, info, warn or error")
	}
	return p.str(name)
}

func (p *parser) absPath(name string) string {
	v := p.str(name)
	if !filepath.IsAbs(v) {
		p.bad(name, "want an absolute path")
		return v
	}
	return filepath.Clean(v)
}

// file checks that an optional file flag names a regular file.
func (p *parser) file(name string) string {
	v, _ := p.fileOK(name)
	return v
}

// fileOK is file, telling whether the flag names a regular file (the
// check natsconn applies to the credentials and CA files).
func (p *parser) fileOK(name string) (string, bool) {
	v := p.str(name)
	if v == "" {
		return "", false
	}
	if err := natsconn.CheckFile(v); err != nil {
		p.bad(name, "%v", err)
		return v, false
	}
	return v, true
}

// authFile checks that the seed registry credentials are a docker
// config.json.
func (p *parser) authFile(name string) string {
	v, ok := p.fileOK(name)
	if !ok {
		return v
	}
	b, err := os.ReadFile(v)
	if err != nil {
		p.bad(name, "%v", unwrapPath(err))
		return v
	}
	var doc struct {
		Auths map[string]json.RawMessage `json:"auths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Auths == nil {
		p.bad(name, `not a docker config.json with an "auths" object ({"auths": {"registry.example:5000": {"auth": "..."}}})`)
	}
	return v
}

// dir returns a journal or work directory: the flag's value, or under the
// sysroot by default.
func (p *parser) dir(name string, c Config, leaf string) string {
	if !p.given(name) {
		if c.Backend == BackendSim {
			return ""
		}
		return filepath.Join(c.HostRoot, c.Sysroot, "ostree", "ibu-agent", leaf)
	}
	return p.absPath(name)
}

func under(path, root string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func (p *parser) natsURL(name string) string {
	v, err := natsconn.CheckURL(p.str(name))
	if err != nil {
		p.bad(name, "%v", err)
	}
	return v
}

func (p *parser) labels(name string) map[string]string {
	v := p.str(name)
	if v == "" {
		return nil
	}
	out := map[string]string{}
	for item := range strings.SplitSeq(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(item), "=")
		switch {
		case !ok:
			p.bad(name, "%q is not key=value; want k=v,k=v", item)
			return nil
		case !labelKeyRE.MatchString(k) || len(k) > 317:
			p.bad(name, "label key %q is not a Kubernetes label key ([prefix/]name, name: 1-63 letters, digits, '-', '_', '.')", k)
			return nil
		case !labelValueRE.MatchString(val):
			p.bad(name, "label value %q of %s is not a Kubernetes label value (0-63 letters, digits, '-', '_', '.', alphanumeric at both ends)", val, k)
			return nil
		}
		if _, dup := out[k]; dup {
			p.bad(name, "label %s is given twice", k)
			return nil
		}
		out[k] = val
	}
	if len(out) > 64 {
		p.bad(name, "%d labels; at most 64", len(out))
	}
	return out
}

func (p *parser) operators(name string) []fingerprint.Operator {
	v := p.str(name)
	if v == "" {
		return nil
	}
	var out []fingerprint.Operator
	seen := map[string]bool{}
	for item := range strings.SplitSeq(v, ",") {
		n, ver, ok := strings.Cut(strings.TrimSpace(item), "=")
		switch {
		case !ok || ver == "":
			p.bad(name, "%q is not name=version; want name=version,...", item)
			return nil
		case !k8sNameRE.MatchString(n):
			p.bad(name, "operator name %q is not a Kubernetes name (lower-case letters, digits, '-', '.')", n)
			return nil
		case len(ver) > 64:
			p.bad(name, "version of %s is longer than 64 characters", n)
			return nil
		case seen[n]:
			p.bad(name, "operator %s is given twice", n)
			return nil
		}
		seen[n] = true
		out = append(out, fingerprint.Operator{Name: n, Version: ver})
	}
	if len(out) > 512 {
		p.bad(name, "%d operators; at most 512", len(out))
	}
	return out
}

func (p *parser) services(name string) agent.Services {
	var s agent.Services
	v := p.str(name)
	if v == "" || v == "none" {
		return s
	}
	for item := range strings.SplitSeq(v, ",") {
		switch strings.TrimSpace(item) {
		case "backup-restore":
			s.BackupRestore = true
		case "health":
			s.Health = true
		case "precache":
			s.Precache = true
		default:
			p.bad(name, "unknown service %q; want backup-restore, health and/or precache, comma-separated (or none)", strings.TrimSpace(item))
			return agent.Services{}
		}
	}
	return s
}

// unwrapPath drops the *PathError's path (the message names the flag and
// its value already).
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		return pe.Err
	}
	return err
}
