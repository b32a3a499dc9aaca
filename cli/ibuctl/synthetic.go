package ibuctl

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"ibu.dev/shared/fingerprint"
	"ibu.dev/shared/seedimage"
)

// localRegistry serves the OCI distribution protocol in-process on loopback
// (go-containerregistry's registry), behind HTTP basic auth, so the demo
// pushes and pulls through the same code a real registry would see.
type localRegistry struct {
	srv        *httptest.Server
	user, pass string
}

func startRegistry(user, pass string) *localRegistry {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r := &localRegistry{user: user, pass: pass}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != r.user || p != r.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="ibu-demo"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, req)
	}))
	return r
}

func (r *localRegistry) host() string { return r.srv.Listener.Addr().String() }
func (r *localRegistry) close()       { r.srv.Close() }

// syntheticSeed makes the content of a small seed image: tar layers with a
// few files each and an image list of n pinned references. The content is
// synthetic (no real ostree commit); the format, labels, digests and
// registry traffic are the real ones.
func syntheticSeed(version string, images int) (seedimage.SeedInfo, []string, seedimage.Content, error) {
	commit := sha256.Sum256([]byte("ostree commit " + version))
	release := sha256.Sum256([]byte("release " + version))
	info := seedimage.SeedInfo{
		Version:      version,
		ReleaseImage: "quay.io/openshift-release-dev/ocp-release@sha256:" + hex.EncodeToString(release[:]),
		Fingerprint:  demoFingerprint(),
		KernelArgs:   []string{"rcupdate.rcu_normal_after_boot=0", "systemd.cpu_affinity=0,1"},
		OstreeCommit: hex.EncodeToString(commit[:]),
		Stateroot:    "rhcos_" + version,
		BuildTime:    time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	}
	list := make([]string, images)
	for i := range list {
		d := sha256.Sum256(fmt.Appendf(nil, "%s image %d", version, i))
		list[i] = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + hex.EncodeToString(d[:])
	}
	var content seedimage.Content
	var err error
	layer := func(files map[string]string) seedimage.Opener {
		b, e := tarOf(files)
		if e != nil && err == nil {
			err = e
		}
		return seedimage.BytesOpener(b)
	}
	content.Ostree = layer(map[string]string{"repo/config": "[core]\nrepo_version=1\nmode=archive-z2\n",
		"repo/objects/": "", "repo/refs/heads/" + info.Stateroot: info.OstreeCommit + "\n"})
	content.Var = layer(map[string]string{"var/lib/kubelet/config.json": "{}\n", "var/lib/etcd/member/snap/db": version})
	content.Etc = layer(map[string]string{"etc/kubernetes/kubelet.conf": "# kubelet " + version + "\n"})
	content.EtcDeletions = []string{"/etc/motd"}
	return info, list, content, err
}

func demoFingerprint() fingerprint.Fingerprint {
	return fingerprint.Fingerprint{
		Architecture: "amd64", Platform: "None", NetworkType: "OVNKubernetes", IPFamily: fingerprint.IPv4,
		ContainerStorage: fingerprint.StorageSeparatePartition,
		Operators: []fingerprint.Operator{
			{Name: "lifecycle-agent", Version: "4.16.0"}, {Name: "redhat-oadp-operator", Version: "1.4.1"},
			{Name: "sriov-network-operator", Version: "4.16.0"},
		},
	}
}

func tarOf(files map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range sortedKeys(files) {
		body := files[name]
		if strings.HasSuffix(name, "/") {
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
				return nil, err
			}
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
