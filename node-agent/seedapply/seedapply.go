// Package seedapply lays a seed image into a new stateroot: it unpacks the
// seed's ostree repository for import, its /var and its /etc changes, and
// keeps this cluster's identity files. Seed layers are network input: every
// tar entry is confined to its target directory and bounded in size.
package seedapply

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"ibu.dev/shared/seedimage"
)

// Errors. Each error of these kinds wraps the sentinel, with the entry or
// path it concerns. A layer that is not a readable tar (truncated, not
// gzip) wraps seedimage.ErrBadLayer; one whose content does not match its
// diff ID wraps seedimage.ErrDigestMismatch.
var (
	// ErrUnsafeEntry: a tar entry (or a deletion) would write or remove
	// outside its target, through a symlink, or is a device node, a FIFO
	// or an unsupported type.
	ErrUnsafeEntry = errors.New("unsafe tar entry")
	// ErrLimit: the layer holds more bytes or entries than allowed.
	ErrLimit = errors.New("seed layer exceeds limit")
	// ErrNoRepo: the ostree layer holds no ostree repository.
	ErrNoRepo = errors.New("no ostree repository in the layer")
)

// Limits bound what one layer may write: MaxBytes of regular file content
// and MaxEntries tar entries. A zero field takes the layer's default.
type Limits struct {
	MaxBytes   int64
	MaxEntries int
}

// Default limits per layer. An OpenShift ostree commit is a few GB in some
// 100,000 objects; /var carries etcd; the /etc changes are small.
var defaultLimits = map[seedimage.Role]Limits{
	seedimage.RoleOstree: {MaxBytes: 64 << 30, MaxEntries: 4_000_000},
	seedimage.RoleVar:    {MaxBytes: 64 << 30, MaxEntries: 4_000_000},
	seedimage.RoleEtc:    {MaxBytes: 1 << 30, MaxEntries: 200_000},
}

// Option configures an apply call.
type Option func(*options)

type options struct {
	limits Limits
	chown  bool
}

// WithLimits replaces the layer's default limits (zero fields keep them).
func WithLimits(l Limits) Option { return func(o *options) { o.limits = l } }

func newOptions(role seedimage.Role, opts []Option) options {
	o := options{chown: os.Geteuid() == 0}
	for _, opt := range opts {
		opt(&o)
	}
	d := defaultLimits[role]
	if o.limits.MaxBytes <= 0 {
		o.limits.MaxBytes = d.MaxBytes
	}
	if o.limits.MaxEntries <= 0 {
		o.limits.MaxEntries = d.MaxEntries
	}
	return o
}

// Names inside ExtractOstree's workDir.
const (
	repoName   = "ostree-repo"
	markerName = "ostree-repo.done" // holds the digests of the extracted layers
)

// ExtractOstree unpacks the seed's ostree layer (an archive-mode repository;
// in a chained seed, the role's layers in order) into workDir/ostree-repo and returns that path. The repository is the
// directory of the tar that holds a "config" file and an "objects"
// directory (the tar's root, or a directory such as repo/ at most three
// levels down). It is unpacked into a staging directory and renamed into
// place, then the file system is synced and a marker naming the layer
// digests is written: a call after that, for the same layers, returns at
// once; any other state is cleared and unpacked again.
func ExtractOstree(ctx context.Context, seed *seedimage.Seed, workDir string, opts ...Option) (string, error) {
	repo, err := extractOstree(ctx, seed, workDir, newOptions(seedimage.RoleOstree, opts))
	if err != nil {
		return "", fmt.Errorf("extract ostree layer: %w", err)
	}
	return repo, nil
}

func extractOstree(ctx context.Context, seed *seedimage.Seed, workDir string, o options) (string, error) {
	chain, err := seed.Chain(seedimage.RoleOstree)
	if err != nil {
		return "", err
	}
	// The marker names the chain's layers: one digest for a format 1 seed,
	// as before.
	digests := make([]string, 0, len(chain))
	for _, l := range chain {
		digests = append(digests, l.Descriptor.Digest.String())
	}
	digest := strings.Join(digests, " ")
	repo := filepath.Join(workDir, repoName)
	marker := filepath.Join(workDir, markerName)
	if b, err := os.ReadFile(marker); err == nil && strings.TrimSpace(string(b)) == digest {
		if fi, err := os.Lstat(repo); err == nil && fi.IsDir() {
			return repo, nil
		}
	}
	staging := repo + ".partial"
	for _, p := range []string{marker, repo, staging} {
		if err := os.RemoveAll(p); err != nil {
			return "", fmt.Errorf("clear previous attempt: %w", err)
		}
	}
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return "", err
	}
	if err := os.Mkdir(staging, 0o700); err != nil {
		return "", err
	}
	if err := extractLayer(ctx, seed, seedimage.RoleOstree, staging, "", o); err != nil {
		return "", err
	}
	sub, err := findRepo(staging)
	if err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(staging, sub), repo); err != nil {
		return "", err
	}
	if err := os.RemoveAll(staging); err != nil {
		return "", err
	}
	if err := syncFS(workDir); err != nil {
		return "", fmt.Errorf("sync: %w", err)
	}
	if err := writeFileAtomic(marker, []byte(digest+"\n")); err != nil {
		return "", fmt.Errorf("write marker: %w", err)
	}
	return repo, nil
}

// findRepo returns the path, relative to dir, of the shallowest directory
// holding a regular file "config" and a directory "objects" (symlinks are
// not followed), at most three levels down.
func findRepo(dir string) (string, error) {
	level := []string{"."}
	for depth := 0; depth <= 3 && len(level) > 0; depth++ {
		var found, next []string
		for _, rel := range level {
			p := filepath.Join(dir, rel)
			cfg, err1 := os.Lstat(filepath.Join(p, "config"))
			objs, err2 := os.Lstat(filepath.Join(p, "objects"))
			if err1 == nil && err2 == nil && cfg.Mode().IsRegular() && objs.IsDir() {
				found = append(found, rel)
				continue
			}
			entries, err := os.ReadDir(p)
			if err != nil {
				return "", err
			}
			for _, e := range entries {
				if e.IsDir() { // a symlink is not IsDir
					next = append(next, filepath.Join(rel, e.Name()))
				}
			}
		}
		switch len(found) {
		case 0:
			level = next
		case 1:
			return found[0], nil
		default:
			return "", fmt.Errorf("%w: several candidates: %s", ErrNoRepo, strings.Join(found, ", "))
		}
	}
	return "", fmt.Errorf("%w: no directory with a config file and an objects directory", ErrNoRepo)
}

// ApplyVar unpacks the seed's var layer into varDir, the new stateroot's
// /var, which must exist. The layer's entries are paths under "var/" (as
// tar -C / var writes them; a leading "./" is allowed); the prefix is
// stripped, and an entry outside it is refused as unsafe. The "var"
// directory entry itself is skipped: varDir keeps its own mode and owner.
// Existing files are replaced; a second call gives the same result.
func ApplyVar(ctx context.Context, seed *seedimage.Seed, varDir string, opts ...Option) error {
	if err := applyVar(ctx, seed, varDir, newOptions(seedimage.RoleVar, opts)); err != nil {
		return fmt.Errorf("apply var layer to %s: %w", varDir, err)
	}
	return nil
}

func applyVar(ctx context.Context, seed *seedimage.Seed, varDir string, o options) error {
	if err := isDir(varDir); err != nil {
		return err
	}
	if err := extractLayer(ctx, seed, seedimage.RoleVar, varDir, "var", o); err != nil {
		return err
	}
	return syncFS(varDir)
}

// ApplyEtc makes etcDir, the new deployment's /etc (which must exist), the
// seed's /etc kept with this cluster's identity: it unpacks the seed's etc
// layer (paths under "etc/", stripped as ApplyVar does with "var/"), removes
// the seed's deletions (the metadata layer's etc.deletions), then replaces
// every path that keep matches with its copy from currentEtc, the running
// system's /etc (see CopyIdentity). A path of keep missing from currentEtc
// ends up missing from etcDir. A second call gives the same result.
func ApplyEtc(ctx context.Context, seed *seedimage.Seed, etcDir, currentEtc string, keep Identity, opts ...Option) error {
	if err := applyEtc(ctx, seed, etcDir, currentEtc, keep, newOptions(seedimage.RoleEtc, opts)); err != nil {
		return fmt.Errorf("apply etc layer to %s: %w", etcDir, err)
	}
	return nil
}

func applyEtc(ctx context.Context, seed *seedimage.Seed, etcDir, currentEtc string, keep Identity, o options) error {
	if err := keep.Validate(); err != nil {
		return err
	}
	if len(keep) > 0 && currentEtc == "" {
		return errors.New("identity to keep but no current /etc to copy it from")
	}
	if err := isDir(etcDir); err != nil {
		return err
	}
	if err := extractLayer(ctx, seed, seedimage.RoleEtc, etcDir, "etc", o); err != nil {
		return err
	}
	md, err := seed.Metadata()
	if err != nil {
		return err
	}
	if err := deleteEtc(ctx, etcDir, md.EtcDeletions); err != nil {
		return err
	}
	if len(keep) > 0 {
		if err := copyIdentity(ctx, currentEtc, etcDir, keep, o.chown); err != nil {
			return err
		}
	}
	return syncFS(etcDir)
}

// deleteEtc removes each absolute /etc path of dels from etcDir; a path
// already gone is fine. A path that is not clean and under /etc, or whose
// parent in etcDir is a symlink, is refused.
func deleteEtc(ctx context.Context, etcDir string, dels []string) error {
	root, err := os.OpenRoot(etcDir)
	if err != nil {
		return err
	}
	defer root.Close()
	w := newWalker(root)
	for _, p := range dels {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, ok := strings.CutPrefix(p, "/etc/")
		if !ok || rel == "" || filepath.Clean(p) != p || strings.ContainsRune(p, 0) {
			return fmt.Errorf("etc deletion %q: %w: not a clean path under /etc", p, ErrUnsafeEntry)
		}
		exists, err := w.checkParents(rel, fmt.Sprintf("etc deletion %q", p))
		if err != nil {
			return err
		}
		if !exists {
			continue
		}
		if err := w.remove(rel); err != nil {
			return fmt.Errorf("etc deletion %s: %w", p, err)
		}
	}
	return nil
}

func isDir(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", p)
	}
	return nil
}

// writeFileAtomic writes data to path through a synced temp file, a rename
// and a sync of the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// existsNot reports whether err says the file does not exist.
func existsNot(err error) bool { return errors.Is(err, fs.ErrNotExist) }
