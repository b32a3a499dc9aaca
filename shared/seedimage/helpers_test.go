package seedimage

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// tarOf returns a deterministic tar of name -> content.
func tarOf(t testing.TB, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(files); i += 2 {
		hdr := &tar.Header{Name: files[i], Mode: 0o644, Size: int64(len(files[i+1])), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func digestRef(repo string, c byte) string {
	return repo + "@sha256:" + strings.Repeat(string(c), 64)
}

func testInfo() SeedInfo {
	return SeedInfo{
		Version:      "4.16.3",
		ReleaseImage: digestRef("quay.io/openshift-release-dev/ocp-release", 'a'),
		Fingerprint: Fingerprint{
			Architecture:     "amd64",
			Platform:         "None",
			NetworkType:      "OVNKubernetes",
			IPFamily:         IPv4,
			TrustBundleHash:  "sha256:1234",
			ContainerStorage: StorageSeparatePartition,
			Operators:        []Operator{{Name: "lvms-operator", Version: "4.16.1"}, {Name: "sriov-network-operator", Version: "4.16.0"}},
		},
		KernelArgs:   []string{"rcupdate.rcu_normal_after_boot=0"},
		OstreeCommit: strings.Repeat("c", 64),
		Stateroot:    "rhcos_4.16.3",
		BuildTime:    time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC),
	}
}

func testImages() []string {
	return []string{
		digestRef("quay.io/openshift-release-dev/ocp-v4.0-art-dev", 'd'),
		digestRef("registry.redhat.io/lvms4/lvms-rhel9-operator", 'e'),
		digestRef("quay.io/openshift-release-dev/ocp-v4.0-art-dev", 'b'),
	}
}

type testContent struct {
	ostree, vars, etc []byte
	deletions         []string
}

func newTestContent(t testing.TB, etcVersion string) testContent {
	return testContent{
		ostree:    tarOf(t, "repo/config", "[core]\nmode=archive-z2\n", "repo/objects/ab/cdef.filez", strings.Repeat("ostree object ", 4096)),
		vars:      tarOf(t, "lib/etcd/member/snap/db", strings.Repeat("etcd ", 2048), "lib/kubelet/config.json", "{}"),
		etc:       tarOf(t, "etc/hostname", "seed\n", "etc/chrony.conf", "server "+etcVersion+"\n"),
		deletions: []string{"/etc/old.conf", "/etc/NetworkManager/system-connections/seed.nmconnection"},
	}
}

func (c testContent) content() Content {
	return Content{
		Ostree: BytesOpener(c.ostree), Var: BytesOpener(c.vars), Etc: BytesOpener(c.etc),
		EtcDeletions: c.deletions,
		Extra:        map[string][]byte{"ostree.origin": []byte("[origin]\nrefspec=ocp:4.16\n")},
	}
}

func buildTestSeed(t testing.TB, etcVersion string) (v1.Image, testContent) {
	t.Helper()
	c := newTestContent(t, etcVersion)
	img, err := Build(testInfo(), testImages(), c.content())
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return img, c
}

func readLayer(t testing.TB, s *Seed, role Role) []byte {
	t.Helper()
	l, err := s.Layer(role)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
