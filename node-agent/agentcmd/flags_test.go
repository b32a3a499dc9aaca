package agentcmd_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/agentcmd"
	"ibu.dev/shared/fingerprint"
	"ibu.dev/shared/natsconn"
)

// envOf turns a map into a getenv.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseDefaults(t *testing.T) {
	c, err := agentcmd.Parse([]string{"--cluster-id", "sno-1"}, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := agentcmd.Config{
		ClusterID: "sno-1", NATS: natsconn.Config{URL: "nats://127.0.0.1:4222"}, StreamReplicas: 1,
		Backend: "ostree", ImageStore: "cri", Sysroot: "/sysroot",
		CRIEndpoint: "unix:///var/run/crio/crio.sock", PullConcurrency: 10,
		JournalDir: "/sysroot/ostree/ibu-agent/journal", WorkDir: "/sysroot/ostree/ibu-agent/work",
		Fingerprint: fingerprint.Fingerprint{Architecture: runtime.GOARCH, Platform: "None", NetworkType: "OVNKubernetes",
			IPFamily: fingerprint.IPv4, ContainerStorage: fingerprint.StorageSeparatePartition},
		Heartbeat: 10 * time.Second, InitMonitorTimeout: 30 * time.Minute,
		LogLevel: "info", LogFormat: "json", SimStateroot: "rhcos", SimRebootDelay: 2 * time.Second,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestParse(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	auth := filepath.Join(dir, "auth.json")
	hostRoot := filepath.Join(dir, "host")
	for p, body := range map[string]string{file: "x", auth: `{"auths":{"registry.example:5000":{"auth":"dTpw"}}}`} {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(hostRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c agentcmd.Config)
	}{
		{
			name: "env fallback",
			env: map[string]string{
				"IBU_CLUSTER_ID": "sno-2", "NATS_URL": "nats://hub.example:4222, tls://hub2.example:4222",
				"IBU_LABELS": "site=lyon, ibu.dev/wave=1", "IBU_HEARTBEAT": "5s", "IBU_FIPS": "true",
				"IBU_OPERATORS": "lifecycle-agent=4.16.0,oadp-operator=1.4.1", "IBU_SERVICES": "health, backup-restore,precache",
				"IBU_IP_FAMILY": "dualstack", "IBU_BACKEND": "sim", "IBU_VERSION": "4.16.3",
				"IBU_NATS_CREDS": file, "IBU_NATS_CA": file, "IBU_KUBECONFIG": file, "IBU_SEED_AUTH_FILE": auth,
				"IBU_STREAM_REPLICAS": "3", "IBU_LOG_LEVEL": "debug", "IBU_LOG_FORMAT": "text",
			},
			check: func(t *testing.T, c agentcmd.Config) {
				if c.ClusterID != "sno-2" || c.Heartbeat != 5*time.Second || !c.Fingerprint.FIPS || c.Version != "4.16.3" ||
					c.NATS.URL != "nats://hub.example:4222,tls://hub2.example:4222" || c.StreamReplicas != 3 ||
					c.NATS.Creds != file || c.NATS.CA != file || c.Kubeconfig != file || c.SeedAuthFile != auth ||
					c.LogLevel != "debug" || c.LogFormat != "text" {
					t.Errorf("config %+v", c)
				}
				if want := map[string]string{"site": "lyon", "ibu.dev/wave": "1"}; !reflect.DeepEqual(c.Labels, want) {
					t.Errorf("labels %v", c.Labels)
				}
				if want := []fingerprint.Operator{{Name: "lifecycle-agent", Version: "4.16.0"}, {Name: "oadp-operator", Version: "1.4.1"}}; !reflect.DeepEqual(c.Fingerprint.Operators, want) {
					t.Errorf("operators %v", c.Fingerprint.Operators)
				}
				if c.Services != (agent.Services{BackupRestore: true, Health: true, Precache: true}) {
					t.Errorf("services %+v", c.Services)
				}
				if c.Fingerprint.IPFamily != fingerprint.DualStack {
					t.Errorf("ip family %q", c.Fingerprint.IPFamily)
				}
				// The sim backend keeps its files under --sim-dir.
				if c.Backend != "sim" || c.ImageStore != "sim" || c.JournalDir != "" || c.WorkDir != "" {
					t.Errorf("sim defaults: backend %q store %q journal %q work %q", c.Backend, c.ImageStore, c.JournalDir, c.WorkDir)
				}
			},
		},
		{
			name: "flag wins over env",
			args: []string{"--cluster-id=sno-flag", "--heartbeat", "1m", "--fips=false", "--nats-url", "nats://flag:4222", "--labels", ""},
			env:  map[string]string{"IBU_CLUSTER_ID": "sno-env", "IBU_HEARTBEAT": "5s", "IBU_FIPS": "true", "NATS_URL": "nats://env:4222", "IBU_LABELS": "a=b"},
			check: func(t *testing.T, c agentcmd.Config) {
				if c.ClusterID != "sno-flag" || c.Heartbeat != time.Minute || c.Fingerprint.FIPS || c.NATS.URL != "nats://flag:4222" || c.Labels != nil {
					t.Errorf("config %+v", c)
				}
			},
		},
		{
			name: "bare boolean flag",
			args: []string{"--cluster-id", "sno-1", "--proxy"},
			check: func(t *testing.T, c agentcmd.Config) {
				if !c.Fingerprint.Proxy {
					t.Error("--proxy did not set proxy")
				}
			},
		},
		{
			name: "host root moves the default directories",
			args: []string{"--cluster-id", "sno-1", "--host-root", hostRoot, "--sysroot", "/sysroot/"},
			check: func(t *testing.T, c agentcmd.Config) {
				if c.HostRoot != hostRoot || c.Sysroot != "/sysroot" ||
					c.JournalDir != filepath.Join(hostRoot, "sysroot/ostree/ibu-agent/journal") ||
					c.WorkDir != filepath.Join(hostRoot, "sysroot/ostree/ibu-agent/work") {
					t.Errorf("host root %q sysroot %q journal %q work %q", c.HostRoot, c.Sysroot, c.JournalDir, c.WorkDir)
				}
			},
		},
		{
			name: "sim directories and image store",
			args: []string{"--cluster-id", "sno-1", "--backend", "ostree", "--image-store", "sim", "--journal-dir", "/var/tmp/j", "--sim-reboot-delay", "0s"},
			check: func(t *testing.T, c agentcmd.Config) {
				if c.ImageStore != "sim" || c.JournalDir != "/var/tmp/j" || c.SimRebootDelay != 0 {
					t.Errorf("config %+v", c)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := agentcmd.Parse(tt.args, envOf(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseRefuses(t *testing.T) {
	dir := t.TempDir()
	notAuth := filepath.Join(dir, "not-auth.json")
	if err := os.WriteFile(notAuth, []byte(`{"credHelpers":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	hostRoot := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := []string{"--cluster-id", "sno-1"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings of the one-line message
	}{
		{"missing cluster id", nil, nil, []string{"--cluster-id", "required", "IBU_CLUSTER_ID"}},
		{"bad cluster id", []string{"--cluster-id", "SNO_1"}, nil, []string{"--cluster-id", `"SNO_1"`, "DNS label"}},
		{"reserved cluster id", []string{"--cluster-id", "plan"}, nil, []string{"--cluster-id", "reserved"}},
		{"bad cluster id from env", nil, map[string]string{"IBU_CLUSTER_ID": "a.b"}, []string{"--cluster-id (from $IBU_CLUSTER_ID)", "DNS label"}},
		{"label without =", append(ok, "--labels", "site"), nil, []string{"--labels", "key=value"}},
		{"bad label key", append(ok, "--labels", "-x=1"), nil, []string{"--labels", "label key"}},
		{"bad label value", append(ok, "--labels", "a=b c"), nil, []string{"--labels", "label value"}},
		{"duplicate label", append(ok, "--labels", "a=1,a=2"), nil, []string{"--labels", "twice"}},
		{"nats url scheme", append(ok, "--nats-url", "http://hub:4222"), nil, []string{"--nats-url", "nats://host:port"}},
		{"nats url from env", ok, map[string]string{"NATS_URL": "nats://"}, []string{"--nats-url (from $NATS_URL)"}},
		{"missing creds", append(ok, "--nats-creds", filepath.Join(dir, "nope.creds")), nil, []string{"--nats-creds", "no such file"}},
		{"ca is a directory", append(ok, "--nats-ca", dir), nil, []string{"--nats-ca", "not a regular file"}},
		{"missing kubeconfig", append(ok, "--kubeconfig", filepath.Join(dir, "kc")), nil, []string{"--kubeconfig", "no such file"}},
		{"seed auth not a config.json", append(ok, "--seed-auth-file", notAuth), nil, []string{"--seed-auth-file", `"auths"`}},
		{"replicas zero", append(ok, "--stream-replicas", "0"), nil, []string{"--stream-replicas", "1 to 5"}},
		{"replicas not a number", append(ok, "--stream-replicas", "three"), nil, []string{"--stream-replicas", "1 to 5"}},
		{"backend", append(ok, "--backend", "docker"), nil, []string{"--backend", `"docker"`, "ostree, sim"}},
		{"image store", append(ok, "--image-store", "docker"), nil, []string{"--image-store", "cri, sim, none"}},
		{"cri endpoint", append(ok, "--cri-endpoint", "tcp://node:1234"), nil, []string{"--cri-endpoint", "unix socket"}},
		{"registry mapping", append(ok, "--registry-mappings", "quay.io"), nil, []string{"--registry-mappings", "FROM=TO"}},
		{"sim with no image store", append(ok, "--backend", "sim", "--version", "4.16.3", "--image-store", "none"), nil, []string{"--image-store", "sim backend"}},
		{"relative sysroot", append(ok, "--sysroot", "sysroot"), nil, []string{"--sysroot", "absolute path"}},
		{"host root missing", append(ok, "--host-root", filepath.Join(dir, "nohost")), nil, []string{"--host-root", "not a directory"}},
		{"work dir outside host root", append(ok, "--host-root", hostRoot, "--work-dir", "/var/tmp/work"), nil, []string{"--work-dir", "--host-root"}},
		{"relative journal", append(ok, "--journal-dir", "journal"), nil, []string{"--journal-dir", "absolute path"}},
		{"seed capture on sim", append(ok, "--backend", "sim", "--version", "4.16.3", "--seed-capture", "--release-image", "quay.io/ocp/release@sha256:"+strings.Repeat("a", 64)), nil, []string{"--seed-capture", "--backend ostree"}},
		{"seed capture without kubeconfig", append(ok, "--seed-capture", "--release-image", "quay.io/ocp/release@sha256:"+strings.Repeat("a", 64)), nil, []string{"--seed-capture", "--kubeconfig"}},
		{"seed capture without release image", append(ok, "--seed-capture", "--kubeconfig", kubeconfig), nil, []string{"--release-image", "sha256"}},
		{"version", append(ok, "--version", "4.16"), nil, []string{"--version", "X.Y.Z"}},
		{"sim needs a version", append(ok, "--backend", "sim"), nil, []string{"--version is required", "sim"}},
		{"arch", append(ok, "--arch", "x86_64"), nil, []string{"--arch", "amd64, arm64"}},
		{"platform", append(ok, "--platform", "bare metal"), nil, []string{"--platform", "letters and digits"}},
		{"empty network type", ok, map[string]string{"IBU_NETWORK_TYPE": " "}, nil},
		{"network type", append(ok, "--network-type", "OVN-Kubernetes"), nil, []string{"--network-type"}},
		{"ip family", append(ok, "--ip-family", "IPv5"), nil, []string{"--ip-family", "IPv4, IPv6, DualStack"}},
		{"container storage", append(ok, "--container-storage", "nfs"), nil, []string{"--container-storage", "separate-partition"}},
		{"fips from env", ok, map[string]string{"IBU_FIPS": "maybe"}, []string{"--fips (from $IBU_FIPS)", "true or false"}},
		{"fips flag", append(ok, "--fips=maybe"), nil, []string{"-fips"}},
		{"trust bundle hash", append(ok, "--trust-bundle-hash", "sha256 abc"), nil, []string{"--trust-bundle-hash"}},
		{"operator without version", append(ok, "--operators", "lifecycle-agent"), nil, []string{"--operators", "name=version"}},
		{"operator name", append(ok, "--operators", "Lifecycle=1"), nil, []string{"--operators", "Kubernetes name"}},
		{"service", append(ok, "--services", "health,velero"), nil, []string{"--services", `"velero"`, "backup-restore"}},
		{"heartbeat not a duration", append(ok, "--heartbeat", "10"), nil, []string{"--heartbeat", "positive duration"}},
		{"heartbeat zero", append(ok, "--heartbeat", "0s"), nil, []string{"--heartbeat", "positive duration"}},
		{"init monitor negative", append(ok, "--init-monitor-timeout", "-5m"), nil, []string{"--init-monitor-timeout", "positive duration"}},
		{"log level", append(ok, "--log-level", "loud"), nil, []string{"--log-level", "debug, info, warn or error"}},
		{"log format", append(ok, "--log-format", "xml"), nil, []string{"--log-format", "json, text"}},
		{"sim stateroot", append(ok, "--sim-stateroot", ".hidden"), nil, []string{"--sim-stateroot", "stateroot name"}},
		{"sim reboot delay", append(ok, "--sim-reboot-delay", "-1s"), nil, []string{"--sim-reboot-delay", "at least 0s"}},
		{"relative sim dir", append(ok, "--sim-dir", "sim"), nil, []string{"--sim-dir", "absolute path"}},
		{"unknown flag", append(ok, "--nope"), nil, []string{"-nope", "not defined", "--help"}},
		{"missing value", []string{"--cluster-id"}, nil, []string{"-cluster-id", "needs an argument"}},
		{"positional argument", append(ok, "run"), nil, []string{`"run"`, "only flags"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := agentcmd.Parse(tt.args, envOf(tt.env))
			if tt.want == nil { // a blank environment value is unset: the default applies
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, agentcmd.ErrUsage) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("message is not one line:\n%s", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}

func TestParseReportsEveryBadFlag(t *testing.T) {
	_, err := agentcmd.Parse([]string{"--cluster-id", "X", "--heartbeat", "x", "--backend", "vm"}, envOf(nil))
	if !errors.Is(err, agentcmd.ErrUsage) {
		t.Fatalf("err = %v", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "--cluster-id") || !strings.HasPrefix(lines[1], "--backend") || !strings.HasPrefix(lines[2], "--heartbeat") {
		t.Fatalf("want one line per bad flag, got:\n%s", err)
	}
}

func TestParseHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		if _, err := agentcmd.Parse([]string{arg}, envOf(nil)); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: err = %v, want flag.ErrHelp", arg, err)
		}
	}
}
