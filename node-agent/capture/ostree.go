package capture

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/host/ostree"
	"ibu.dev/shared/seedimage"
)

// ClusterReporter reports what runs on the seed cluster (from its API).
type ClusterReporter interface {
	Report(ctx context.Context) (ClusterReport, error)
}

// ClusterReport is a ClusterReporter's answer.
type ClusterReport struct {
	Namespaces, CRDs, PersistentVolumes []string
	Healthy                             bool
	HealthMessage                       string
}

// StaticCluster reports a fixed ClusterReport.
type StaticCluster ClusterReport

// Report implements ClusterReporter.
func (s StaticCluster) Report(context.Context) (ClusterReport, error) { return ClusterReport(s), nil }

// OstreeHost captures a real ostree host: the booted deployment through
// host.Stateroots, the commit exported with the ostree CLI, the workloads
// stopped and started with commands (systemctl by default).
type OstreeHost struct {
	// Sysroot is the host's sysroot (its repository is Sysroot/ostree/repo).
	Sysroot string
	// Command is the argv prefix that runs ostree (default "ostree").
	Command []string
	// HostRoot is where the host's / is mounted in this process when
	// Command runs ostree in it (chroot HOSTROOT ostree): work paths under
	// it are given to ostree without the prefix. Sysroot is a host path.
	HostRoot   string
	Stateroots host.Stateroots
	Images     host.ImageStore
	Cluster    ClusterReporter
	// Base carries what the host cannot tell of itself: release image,
	// fingerprint, kernel arguments, the stateroot name targets deploy the
	// seed into (default rhcos_<version>). Version and commit come from
	// the booted deployment.
	Base seedimage.SeedInfo
	// Stop and Start are the commands that quiesce and resume the
	// workloads; default: stop kubelet then the container runtime, and
	// start them in the opposite order, as Lifecycle Agent's capture does.
	Stop, Start [][]string
}

// DefaultStop and DefaultStart quiesce and resume an OpenShift node.
var (
	DefaultStop  = [][]string{{"systemctl", "stop", "kubelet.service"}, {"systemctl", "stop", "crio.service"}}
	DefaultStart = [][]string{{"systemctl", "start", "crio.service"}, {"systemctl", "start", "kubelet.service"}}
)

// Describe implements Host.
func (h *OstreeHost) Describe(ctx context.Context) (Source, error) {
	booted, err := h.Stateroots.Booted(ctx)
	if err != nil {
		return Source{}, fmt.Errorf("booted deployment: %w", err)
	}
	root, varDir, err := h.Stateroots.Paths(ctx, booted.Stateroot)
	if err != nil {
		return Source{}, err
	}
	info := h.Base
	info.OstreeCommit = booted.Checksum
	if booted.Version != "" {
		info.Version = booted.Version
	}
	if info.Stateroot == "" || info.Stateroot == booted.Stateroot {
		// A target deploys the seed beside its running stateroot, which
		// has the seed's own name as often as not: name it by version.
		info.Stateroot = "rhcos_" + info.Version
	}
	src := Source{Info: info, Root: root, VarDir: varDir}
	if h.Images != nil {
		if src.Images, err = h.Images.Inventory(ctx); err != nil {
			return Source{}, fmt.Errorf("image inventory: %w", err)
		}
	}
	if h.Cluster == nil {
		return Source{}, fmt.Errorf("no cluster reporter: cannot check namespaces, CRDs, volumes and health")
	}
	rep, err := h.Cluster.Report(ctx)
	if err != nil {
		return Source{}, fmt.Errorf("cluster report: %w", err)
	}
	src.Namespaces, src.CRDs, src.PersistentVolumes = rep.Namespaces, rep.CRDs, rep.PersistentVolumes
	src.Healthy, src.HealthMessage = rep.Healthy, rep.HealthMessage
	return src, nil
}

// Quiesce implements Host.
func (h *OstreeHost) Quiesce(ctx context.Context) error {
	stop := h.Stop
	if stop == nil {
		stop = DefaultStop
	}
	return runAll(ctx, stop)
}

// Resume implements Host.
func (h *OstreeHost) Resume(ctx context.Context) error {
	start := h.Start
	if start == nil {
		start = DefaultStart
	}
	return runAll(ctx, start)
}

// ExportCommit implements Host: a new archive repository with the commit
// pulled from the host's repository and ref pointing at it, made by the
// ostree backend's own command runner (host/ostree).
func (h *OstreeHost) ExportCommit(ctx context.Context, commit, ref, workDir string) (string, error) {
	opts := []ostree.Option{ostree.WithCommand(h.Command...)}
	if h.HostRoot != "" {
		opts = append(opts, ostree.WithHostRoot(h.HostRoot))
	}
	repo := filepath.Join(workDir, "repo")
	if err := ostree.New(h.Sysroot, opts...).ExportCommit(ctx, commit, ref, repo); err != nil {
		return "", err
	}
	return repo, nil
}

func runAll(ctx context.Context, cmds [][]string) error {
	for _, argv := range cmds {
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
		}
	}
	return nil
}
