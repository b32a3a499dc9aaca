package capture

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// SimHost is a simulated seed host: its content is directories, its
// workloads a flag. Tests and the demo use it; faults are injected through
// the Fail fields.
type SimHost struct {
	// Source is what Describe returns.
	Source Source
	// RepoDir, when set, is returned by ExportCommit as the exported
	// archive repository (a benchmark prepares a large one once); otherwise
	// ExportCommit writes a minimal archive-shaped repository.
	RepoDir string
	// FailDescribe, FailQuiesce, FailExport, FailResume make that call fail.
	FailDescribe, FailQuiesce, FailExport, FailResume error
	// BeforeExport, when set, is called as ExportCommit starts (a test
	// holds a capture in flight with it).
	BeforeExport func()

	mu       sync.Mutex
	quiesced bool
	stops    int
}

// Running reports whether the workloads run.
func (h *SimHost) Running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.quiesced
}

// Quiesces is the number of times the workloads were stopped.
func (h *SimHost) Quiesces() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stops
}

// Describe implements Host.
func (h *SimHost) Describe(context.Context) (Source, error) {
	if h.FailDescribe != nil {
		return Source{}, h.FailDescribe
	}
	return h.Source, nil
}

// Quiesce implements Host.
func (h *SimHost) Quiesce(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.quiesced = true
	h.stops++
	return h.FailQuiesce
}

// Resume implements Host.
func (h *SimHost) Resume(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.FailResume != nil {
		return h.FailResume
	}
	h.quiesced = false
	return nil
}

// ExportCommit implements Host.
func (h *SimHost) ExportCommit(_ context.Context, commit, ref, workDir string) (string, error) {
	if h.BeforeExport != nil {
		h.BeforeExport()
	}
	if h.FailExport != nil {
		return "", h.FailExport
	}
	h.mu.Lock()
	quiesced := h.quiesced
	h.mu.Unlock()
	if !quiesced {
		return "", fmt.Errorf("export while the workloads run")
	}
	if h.RepoDir != "" {
		return h.RepoDir, nil
	}
	repo := filepath.Join(workDir, "repo")
	files := map[string]string{
		"config":            "[core]\nrepo_version=1\nmode=archive-z2\n",
		"refs/heads/" + ref: commit + "\n",
		"objects/" + commit[:2] + "/" + commit[2:] + ".commit": "sim commit " + commit + "\n",
	}
	for name, body := range files {
		p := filepath.Join(repo, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	return repo, nil
}
