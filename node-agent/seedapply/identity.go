package seedapply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// Identity lists the paths of /etc, relative to it, that belong to the
// cluster being upgraded rather than to the seed: in the new /etc each is
// replaced by its copy from the running system's /etc, or removed if the
// running system has none. A directory is copied whole. Only the last
// element of a path may hold a path.Match pattern ("ssh/ssh_host_*").
type Identity []string

// DefaultIdentity is the host identity that no later step recreates: what
// Lifecycle Agent leaves out of the seed's /etc or restores from the target
// after the pivot, minus what its recert rewrites and what the Machine
// Config Operator manages (chrony.conf, proxy.env: copying those would make
// the MCO see drift; add them if your clusters need them).
//
//   - hostname: the node's name (LCA excludes it from the seed and sets it).
//   - machine-id: systemd's host ID; a seed's would be shared by the fleet.
//   - ssh/ssh_host_*: the server SSH host keys (LCA restores the originals).
//   - NetworkManager/system-connections: the node's network (LCA excludes
//     the seed's and copies the target's).
//   - default/nodeip-configuration: the node IP hint (LCA writes it).
//   - default/sno_dnsmasq_configuration_overrides: the single-node DNS
//     names and IP (LCA writes it).
//   - iscsi/initiatorname.iscsi, nvme/hostnqn, nvme/hostid: storage host
//     identities, unique per host like machine-id.
//
// Not kept: kubernetes/static-pod-resources and other cluster crypto. They
// belong to the seed's release; the cluster's keys are carried over by
// re-certification (recert in LCA), not by copying old files.
func DefaultIdentity() Identity {
	return Identity{
		"hostname",
		"machine-id",
		"ssh/ssh_host_*",
		"NetworkManager/system-connections",
		"default/nodeip-configuration",
		"default/sno_dnsmasq_configuration_overrides",
		"iscsi/initiatorname.iscsi",
		"nvme/hostnqn",
		"nvme/hostid",
	}
}

// Validate checks that each path is clean, relative and inside /etc, with a
// valid pattern in its last element only.
func (id Identity) Validate() error {
	var errs []error
	for _, p := range id {
		dir, base := path.Split(p)
		switch {
		case p == "" || p == "." || path.Clean(p) != p || path.IsAbs(p) || strings.ContainsRune(p, 0):
			errs = append(errs, fmt.Errorf("identity path %q is not a clean relative path", p))
		case p == ".." || strings.HasPrefix(p, "../"):
			errs = append(errs, fmt.Errorf("identity path %q leaves /etc", p))
		case strings.ContainsAny(dir, `*?[\`):
			errs = append(errs, fmt.Errorf("identity path %q: only the last element may be a pattern", p))
		default:
			if _, err := path.Match(base, ""); err != nil {
				errs = append(errs, fmt.Errorf("identity path %q: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}

// CopyIdentity replaces, in toEtc, every path that keep matches with its
// copy from fromEtc (or removes it if fromEtc has none): modes, times, and
// owners when running as root. ApplyEtc calls it; the Upgrade's pre-pivot
// step calls it again to carry changes made since Prep. It refuses to
// write through a symlink in toEtc.
func CopyIdentity(ctx context.Context, fromEtc, toEtc string, keep Identity) error {
	if err := keep.Validate(); err != nil {
		return fmt.Errorf("copy identity: %w", err)
	}
	if err := copyIdentity(ctx, fromEtc, toEtc, keep, os.Geteuid() == 0); err != nil {
		return fmt.Errorf("copy identity from %s to %s: %w", fromEtc, toEtc, err)
	}
	return nil
}

func copyIdentity(ctx context.Context, fromEtc, toEtc string, keep Identity, chown bool) error {
	src, err := os.OpenRoot(fromEtc)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenRoot(toEtc)
	if err != nil {
		return err
	}
	defer dst.Close()
	c := &copier{ctx: ctx, src: src, dst: newWalker(dst), chown: chown}
	for _, p := range keep {
		if exists, err := c.dst.checkParents(p, fmt.Sprintf("identity path %q", p)); err != nil {
			return err
		} else if exists {
			old, err := match(dst, p)
			if err != nil {
				return err
			}
			for _, rel := range old {
				if err := c.dst.remove(rel); err != nil {
					return err
				}
			}
		}
		cur, err := match(src, p)
		if err != nil {
			return err
		}
		for _, rel := range cur {
			if err := c.dst.makeParents(rel, c.mkdirLike); err != nil {
				return err
			}
			if err := c.copy(rel); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
		}
	}
	return nil
}

// match returns the paths in root that pattern p names, without following
// a symlink in the last element.
func match(root *os.Root, p string) ([]string, error) {
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if !strings.ContainsAny(base, `*?[\`) {
		if _, err := root.Lstat(p); existsNot(err) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		return []string{p}, nil
	}
	if dir == "" {
		dir = "."
	}
	f, err := root.Open(dir)
	if existsNot(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if ok, _ := path.Match(base, e.Name()); ok {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	return out, nil
}

type copier struct {
	ctx   context.Context
	src   *os.Root
	dst   *walker
	chown bool
}

// mkdirLike creates directory p in the destination like p in the source.
func (c *copier) mkdirLike(p string) error {
	fi, err := c.src.Stat(p)
	if err != nil {
		return err
	}
	if err := c.dst.root.Mkdir(p, 0o700); err != nil {
		return err
	}
	return c.meta(p, fi)
}

// copy copies rel, which does not exist in the destination, from the source.
func (c *copier) copy(rel string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	fi, err := c.src.Lstat(rel)
	if err != nil {
		return err
	}
	switch {
	case fi.IsDir():
		if err := c.dst.root.Mkdir(rel, 0o700); err != nil {
			return err
		}
		c.dst.ok[rel] = true
		d, err := c.src.Open(rel)
		if err != nil {
			return err
		}
		entries, err := d.ReadDir(-1)
		d.Close()
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := c.copy(path.Join(rel, e.Name())); err != nil {
				return err
			}
		}
		return c.meta(rel, fi)
	case fi.Mode().IsRegular():
		in, err := c.src.Open(rel)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := c.dst.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return c.meta(rel, fi)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := c.src.Readlink(rel)
		if err != nil {
			return err
		}
		if err := c.dst.root.Symlink(target, rel); err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && c.chown {
			return c.dst.root.Lchown(rel, int(st.Uid), int(st.Gid))
		}
		return nil
	}
	return fmt.Errorf("not a regular file, directory or symlink (%s)", fi.Mode().Type())
}

// meta gives the destination's rel (a file or directory) fi's owner, mode
// and modification time.
func (c *copier) meta(rel string, fi fs.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && c.chown {
		if err := c.dst.root.Lchown(rel, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	mode := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if err := c.dst.root.Chmod(rel, mode); err != nil {
		return err
	}
	return c.dst.root.Chtimes(rel, fi.ModTime(), fi.ModTime())
}
