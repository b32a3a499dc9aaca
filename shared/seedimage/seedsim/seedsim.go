// Package seedsim makes small synthetic seed images for simulated hosts:
// the demo, end-to-end tests and fleet benchmarks. The layers hold a few
// files each in the layout the node agent expects (an archive-repo-shaped
// ostree tree, var/ and etc/ trees); the format, labels, digests and
// registry traffic are the real ones. A real ostree commit comes from a
// real seed cluster (the seed-builder), not from here.
package seedsim

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"ibu.dev/shared/fingerprint"
	"ibu.dev/shared/seedimage"
)

// Fingerprint is the cluster fingerprint of synthetic seeds, and of the
// simulated clusters meant to accept them.
func Fingerprint() fingerprint.Fingerprint {
	return fingerprint.Fingerprint{
		Architecture: "amd64", Platform: "None", NetworkType: "OVNKubernetes", IPFamily: fingerprint.IPv4,
		ContainerStorage: fingerprint.StorageSeparatePartition,
		Operators: []fingerprint.Operator{
			{Name: "lifecycle-agent", Version: "4.16.0"}, {Name: "redhat-oadp-operator", Version: "1.4.1"},
			{Name: "sriov-network-operator", Version: "4.16.0"},
		},
	}
}

// Seed is a synthetic seed ready to Build.
type Seed struct {
	Info    seedimage.SeedInfo
	Images  []string
	Content seedimage.Content
}

// Build assembles the image.
func (s Seed) Build() (v1.Image, error) { return seedimage.Build(s.Info, s.Images, s.Content) }

// New makes a seed of version with n precache images. The ostree commit is
// the SHA-256 of "ostree commit <version>", which simulated hosts accept.
func New(version string, n int) (Seed, error) {
	commit := sha256.Sum256([]byte("ostree commit " + version))
	release := sha256.Sum256([]byte("release " + version))
	info := seedimage.SeedInfo{
		Version:      version,
		ReleaseImage: "quay.io/openshift-release-dev/ocp-release@sha256:" + hex.EncodeToString(release[:]),
		Fingerprint:  Fingerprint(),
		KernelArgs:   []string{"rcupdate.rcu_normal_after_boot=0", "systemd.cpu_affinity=0,1"},
		OstreeCommit: hex.EncodeToString(commit[:]),
		Stateroot:    "rhcos_" + version,
		BuildTime:    time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	}
	images := make([]string, n)
	for i := range images {
		d := sha256.Sum256(fmt.Appendf(nil, "%s image %d", version, i))
		images[i] = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + hex.EncodeToString(d[:])
	}
	ostree, err := tarOf(map[string]string{"repo/config": "[core]\nrepo_version=1\nmode=archive-z2\n",
		"repo/objects/": "", "repo/refs/heads/" + info.Stateroot: info.OstreeCommit + "\n"})
	if err != nil {
		return Seed{}, err
	}
	vars, err := tarOf(map[string]string{"var/lib/kubelet/config.json": "{}\n", "var/lib/etcd/member/snap/db": version})
	if err != nil {
		return Seed{}, err
	}
	etc, err := tarOf(map[string]string{"etc/kubernetes/kubelet.conf": "# kubelet " + version + "\n", "etc/hostname": "seed\n"})
	if err != nil {
		return Seed{}, err
	}
	return Seed{Info: info, Images: images, Content: seedimage.Content{
		Ostree: seedimage.BytesOpener(ostree), Var: seedimage.BytesOpener(vars), Etc: seedimage.BytesOpener(etc),
		EtcDeletions: []string{"/etc/motd"},
	}}, nil
}

// tarOf packs files (a name ending in "/" is a directory) in name order.
func tarOf(files map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		if strings.HasSuffix(name, "/") {
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
				return nil, err
			}
			continue
		}
		body := files[name]
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
