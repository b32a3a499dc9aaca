package capture

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// VarExcludes are the /var paths a seed never carries: logs, pods and
// container storage (node-specific and huge), temporary files, and shell
// history. Each is relative to /var; a pattern element may be "*".
var VarExcludes = []string{
	"log", "tmp", "cache", "crash",
	"lib/containers", "lib/kubelet/pods", "lib/cni/networks",
	"roothome/.bash_history", "home/*/.bash_history", "roothome/.cache",
}

// excluded reports whether rel (slash-separated, relative to /var) is or is
// under one of patterns.
func excluded(rel string, patterns []string) bool {
	if strings.HasSuffix(rel, "/.bash_history") || rel == ".bash_history" || strings.HasSuffix(rel, "/.zsh_history") {
		return true
	}
	parts := strings.Split(rel, "/")
	for _, p := range patterns {
		pp := strings.Split(p, "/")
		if len(parts) < len(pp) {
			continue
		}
		match := true
		for i, e := range pp {
			if e != "*" && e != parts[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// tarWriter writes deterministic tars: entries in lexical order, no user or
// group names, no access or change times, so the same tree gives the same
// bytes and an unchanged layer keeps its digest. With zeroTimes the
// modification times are zero too: an exported ostree repository is fresh
// files every time, while its content is addressed by checksum.
type tarWriter struct {
	tw        *tar.Writer
	zeroTimes bool
}

func newTarWriter(w io.Writer) *tarWriter { return &tarWriter{tw: tar.NewWriter(w)} }

func (t *tarWriter) Close() error { return t.tw.Close() }

// add writes the entry at abs as name. Sockets, devices and FIFOs are
// skipped: a seed has no use for them.
func (t *tarWriter) add(abs, name string, fi fs.FileInfo) error {
	mode := fi.Mode()
	if mode&(fs.ModeSocket|fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe) != 0 {
		return nil
	}
	link := ""
	if mode&fs.ModeSymlink != 0 {
		l, err := os.Readlink(abs)
		if err != nil {
			return err
		}
		link = l
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return fmt.Errorf("%s: %w", abs, err)
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	if t.zeroTimes {
		hdr.ModTime = time.Unix(0, 0)
	}
	hdr.Format = tar.FormatPAX
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", abs, err)
	}
	if !mode.IsRegular() {
		return nil
	}
	f, err := os.Open(abs)
	if err != nil {
		return err
	}
	defer f.Close()
	if n, err := io.Copy(t.tw, f); err != nil {
		return fmt.Errorf("%s: %w", abs, err)
	} else if n != hdr.Size {
		return fmt.Errorf("%s changed while captured (%d bytes, expected %d)", abs, n, hdr.Size)
	}
	return nil
}

// tarTree writes dir's content under prefix ("var"), skipping what skip
// says (rel is slash-separated, relative to dir).
func tarTree(w io.Writer, dir, prefix string, skip func(rel string) bool) error {
	return writeTree(newTarWriter(w), dir, prefix, skip)
}

// tarRepo writes an exported ostree repository under prefix, with zero
// times, so that the same commit gives the same layer.
func tarRepo(w io.Writer, dir, prefix string) error {
	t := newTarWriter(w)
	t.zeroTimes = true
	return writeTree(t, dir, prefix, nil)
}

func writeTree(t *tarWriter, dir, prefix string, skip func(rel string) bool) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		name := prefix
		if rel != "." {
			if skip != nil && skip(rel) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			name = path.Join(prefix, rel)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return t.add(p, name, fi)
	})
	if err != nil {
		return fmt.Errorf("tar %s: %w", dir, err)
	}
	return t.Close()
}

// tarEtcChanges writes the entries of etcDir that differ from baseDir (the
// commit's default /etc, usr/etc) under "etc/", and returns the /etc paths
// present in baseDir but deleted from etcDir (only the top of a deleted
// tree), sorted.
func tarEtcChanges(w io.Writer, etcDir, baseDir string) ([]string, error) {
	t := newTarWriter(w)
	err := filepath.WalkDir(etcDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(etcDir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		same, err := sameEntry(p, filepath.Join(baseDir, rel), fi)
		if err != nil {
			return err
		}
		if same {
			return nil
		}
		return t.add(p, path.Join("etc", filepath.ToSlash(rel)), fi)
	})
	if err != nil {
		return nil, fmt.Errorf("tar /etc changes: %w", err)
	}
	var dels []string
	if _, err := os.Lstat(baseDir); err == nil {
		err = filepath.WalkDir(baseDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(baseDir, p)
			if err != nil || rel == "." {
				return err
			}
			if _, err := os.Lstat(filepath.Join(etcDir, rel)); errors.Is(err, fs.ErrNotExist) {
				dels = append(dels, "/etc/"+filepath.ToSlash(rel))
				if d.IsDir() {
					return filepath.SkipDir
				}
			} else if err != nil {
				return err
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list /etc deletions: %w", err)
		}
	}
	return dels, t.Close()
}

// sameEntry: base exists with the same type, mode and content (or link
// target). Directories compare by mode only.
func sameEntry(live, base string, fi fs.FileInfo) (bool, error) {
	bi, err := os.Lstat(base)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if bi.Mode() != fi.Mode() {
		return false, nil
	}
	switch {
	case fi.IsDir():
		return true, nil
	case fi.Mode()&fs.ModeSymlink != 0:
		a, err1 := os.Readlink(live)
		b, err2 := os.Readlink(base)
		return err1 == nil && err2 == nil && a == b, errors.Join(err1, err2)
	case fi.Mode().IsRegular():
		if bi.Size() != fi.Size() {
			return false, nil
		}
		a, err := os.ReadFile(live)
		if err != nil {
			return false, err
		}
		b, err := os.ReadFile(base)
		if err != nil {
			return false, err
		}
		return bytes.Equal(a, b), nil
	}
	return false, nil
}
