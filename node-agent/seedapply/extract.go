package seedapply

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"ibu.dev/shared/seedimage"
)

// maxTrailing bounds what may follow a tar's end-of-archive marker (GNU tar
// pads to a 10 KiB record; this allows far more).
const maxTrailing = 1 << 20

// extractLayer unpacks the seed's layer (or chain of layers) of role into
// dir. Entries must lie
// under prefix ("" for none), which is stripped. Everything is written
// through an os.Root on dir, so that nothing lands outside it even if a
// check here were missed; the checks give the clear errors. After the
// archive ends the rest of the stream is read, so that the gzip checksum
// is checked, and the whole uncompressed stream is compared with the diff
// ID in the seed's config. That check ends the stream: a layer that fails
// it has already written its (confined) files, which ExtractOstree
// discards with its staging directory and a retried ApplyVar or ApplyEtc
// overwrites.
//
// What is written: directories, regular files, symlinks (their targets are
// not checked: they are resolved by the new system, not here), hard links
// to a file already in dir. Modes are kept (permission, setuid, setgid and
// sticky bits); numeric owner and group only when running as root;
// modification times of files and directories. Extended attributes (so
// SELinux labels) are not restored. A directory entry's mode is applied
// at the end, so that a read-only directory can still be filled.
//
// A role of a chained seed has several layers: they are applied in order
// into dir by one extractor (its limits count the whole chain, and the
// directory modes and times are applied once, at the end, the latest entry
// of a directory winning). In the layers after the first, an entry whose
// base name begins with ".wh." is an OCI whiteout: the path it names is
// removed (a directory with its tree). Its name goes through the same
// checks as any entry, its parents must be real directories (never a
// symlink), and the removal goes through the os.Root, so that a whiteout
// cannot reach outside dir; an opaque whiteout (".wh..wh..opq") is refused.
func extractLayer(ctx context.Context, seed *seedimage.Seed, role seedimage.Role, dir, prefix string, o options) error {
	chain, err := seed.Chain(role)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	x := &extractor{walker: newWalker(root), prefix: prefix, o: o, buf: make([]byte, 256<<10)}
	for i, l := range chain {
		x.delta = i > 0
		if err := x.layer(ctx, l.Layer, l.DiffID); err != nil {
			if len(chain) > 1 {
				return fmt.Errorf("layer %d of %d (%s): %w", i+1, len(chain), l.Descriptor.Digest, err)
			}
			return err
		}
	}
	return x.finish()
}

// layer unpacks one layer of the chain and checks its diff ID.
func (x *extractor) layer(ctx context.Context, l v1.Layer, diffID v1.Hash) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return fmt.Errorf("open layer: %w", badLayer(err))
	}
	defer rc.Close()
	h := sha256.New()
	in := &ctxReader{ctx: ctx, r: io.TeeReader(rc, h)}
	tr := tar.NewReader(in)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
			err = nil // GODEBUG=tarinsecurepath=0: our own checks refuse it below
		}
		if err != nil {
			return readErr(ctx, "read tar", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return readErr(ctx, fmt.Sprintf("entry %q", hdr.Name), err)
		}
	}
	n, err := io.Copy(io.Discard, io.LimitReader(in, maxTrailing+1))
	if err != nil {
		return readErr(ctx, "read layer", err)
	}
	if n > maxTrailing {
		return fmt.Errorf("%w: more than %d bytes after the end of the archive", seedimage.ErrBadLayer, maxTrailing)
	}
	if err := rc.Close(); err != nil {
		return readErr(ctx, "close layer", err)
	}
	return checkDiffID(h, diffID)
}

func checkDiffID(h hash.Hash, want v1.Hash) error {
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if want.Algorithm != "sha256" || got != want {
		return fmt.Errorf("%w: uncompressed layer is %s, config says %s", seedimage.ErrDigestMismatch, got, want)
	}
	return nil
}

// readErr wraps an error met while reading or writing the layer: the
// context's error as is, our own refusals as is, anything from the stream
// as a bad layer.
func readErr(ctx context.Context, what string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", what, cerr)
	}
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.Is(err, ErrUnsafeEntry), errors.Is(err, ErrLimit), errors.As(err, &pe), errors.As(err, &le):
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, badLayer(err))
}

func badLayer(err error) error {
	if errors.Is(err, seedimage.ErrBadLayer) || errors.Is(err, seedimage.ErrDigestMismatch) {
		return err
	}
	return fmt.Errorf("%w: %w", seedimage.ErrBadLayer, err)
}

// ctxReader stops a long read when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type extractor struct {
	*walker
	delta   bool // the layer is a delta: whiteouts delete
	prefix  string
	o       options
	buf     []byte
	entries int
	bytes   int64
	dirs    []dirMeta // directory modes and times, applied by finish
}

type dirMeta struct {
	rel   string
	mode  fs.FileMode
	mtime time.Time
}

func unsafeEntry(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsafeEntry, fmt.Sprintf(format, a...))
}

// target maps a tar name to a path relative to the target directory; ""
// for the target directory itself.
func (x *extractor) target(name string) (string, error) {
	switch {
	case name == "":
		return "", unsafeEntry("empty name")
	case strings.ContainsRune(name, 0):
		return "", unsafeEntry("NUL in name")
	case strings.HasPrefix(name, "/"):
		return "", unsafeEntry("absolute path")
	}
	if slices.Contains(strings.Split(name, "/"), "..") {
		return "", unsafeEntry("parent directory reference")
	}
	rel := path.Clean(name)
	if x.prefix != "" {
		if rel == x.prefix {
			return "", nil
		}
		var ok bool
		if rel, ok = strings.CutPrefix(rel, x.prefix+"/"); !ok {
			return "", unsafeEntry("outside %s/", x.prefix)
		}
	}
	if rel == "." {
		return "", nil
	}
	return rel, nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	x.entries++
	if x.entries > x.o.limits.MaxEntries {
		return fmt.Errorf("%w: more than %d entries", ErrLimit, x.o.limits.MaxEntries)
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX global records: nothing to write
	}
	if x.delta {
		if dir, base := path.Split(hdr.Name); strings.HasPrefix(base, seedimage.WhiteoutPrefix) {
			return x.whiteout(dir, strings.TrimPrefix(base, seedimage.WhiteoutPrefix))
		}
	}
	rel, err := x.target(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return unsafeEntry("would replace the target directory")
		}
		return nil // the target keeps its own mode and owner
	}
	mode := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.dir(rel, hdr, mode)
	case tar.TypeReg: // the reader turns the old TypeRegA into TypeReg or TypeDir
		return x.file(rel, hdr, mode, r)
	case tar.TypeSymlink:
		return x.symlink(rel, hdr)
	case tar.TypeLink:
		return x.hardlink(rel, hdr)
	case tar.TypeChar, tar.TypeBlock:
		return unsafeEntry("device node")
	case tar.TypeFifo:
		return unsafeEntry("FIFO")
	}
	return unsafeEntry("unsupported type %q", hdr.Typeflag)
}

// whiteout removes dir+name (dir is the entry's directory part, as in the
// tar), which earlier layers of the chain wrote; a path already gone is
// fine.
func (x *extractor) whiteout(dir, name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return unsafeEntry("whiteout of %q", name)
	case strings.HasPrefix(name, seedimage.WhiteoutPrefix):
		return unsafeEntry("opaque whiteouts are not supported")
	}
	rel, err := x.target(dir + name)
	if err != nil {
		return err
	}
	if rel == "" {
		return unsafeEntry("whiteout of the target directory")
	}
	exists, err := x.checkParents(rel, "")
	if err != nil || !exists {
		return err
	}
	if _, err := x.root.Lstat(rel); existsNot(err) {
		return nil
	} else if err != nil {
		return err
	}
	return x.remove(rel)
}

func (x *extractor) mkdirParent(p string) error { return x.root.Mkdir(p, 0o755) }

// clear removes whatever is at rel unless it is a directory and keepDir.
func (x *extractor) clear(rel string, keepDir bool) (isDir bool, err error) {
	fi, err := x.root.Lstat(rel)
	if existsNot(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.IsDir() && keepDir {
		return true, nil
	}
	return false, x.remove(rel)
}

func (x *extractor) dir(rel string, hdr *tar.Header, mode fs.FileMode) error {
	if err := x.makeParents(rel, x.mkdirParent); err != nil {
		return err
	}
	exists, err := x.clear(rel, true)
	if err != nil {
		return err
	}
	if !exists {
		if err := x.root.Mkdir(rel, 0o700); err != nil {
			return err
		}
	}
	if err := x.chown(rel, hdr); err != nil {
		return err
	}
	if err := x.root.Chmod(rel, mode|0o700); err != nil { // writable until finish
		return err
	}
	x.ok[rel] = true
	x.dirs = append(x.dirs, dirMeta{rel: rel, mode: mode, mtime: hdr.ModTime})
	return nil
}

func (x *extractor) file(rel string, hdr *tar.Header, mode fs.FileMode, r io.Reader) error {
	if hdr.Size < 0 {
		return unsafeEntry("negative size")
	}
	if x.bytes += hdr.Size; x.bytes > x.o.limits.MaxBytes {
		return fmt.Errorf("%w: more than %d bytes of files", ErrLimit, x.o.limits.MaxBytes)
	}
	if err := x.makeParents(rel, x.mkdirParent); err != nil {
		return err
	}
	const flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL // O_EXCL: never through a symlink
	f, err := x.root.OpenFile(rel, flags, 0o600)
	if errors.Is(err, fs.ErrExist) { // replace what is there (a re-run)
		if _, err = x.clear(rel, false); err == nil {
			f, err = x.root.OpenFile(rel, flags, 0o600)
		}
	}
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(f, r, x.buf)
	if err == nil && x.o.chown {
		err = f.Chown(hdr.Uid, hdr.Gid)
	}
	if err == nil {
		err = f.Chmod(mode) // after Chown, which clears setuid and setgid
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return x.root.Chtimes(rel, hdr.ModTime, hdr.ModTime)
}

func (x *extractor) symlink(rel string, hdr *tar.Header) error {
	if hdr.Linkname == "" || strings.ContainsRune(hdr.Linkname, 0) {
		return unsafeEntry("symlink with an empty or NUL target")
	}
	if err := x.makeParents(rel, x.mkdirParent); err != nil {
		return err
	}
	if _, err := x.clear(rel, false); err != nil {
		return err
	}
	if err := x.root.Symlink(hdr.Linkname, rel); err != nil {
		return err
	}
	return x.chown(rel, hdr)
}

func (x *extractor) hardlink(rel string, hdr *tar.Header) error {
	target, err := x.target(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
	}
	if target == "" {
		return unsafeEntry("hard link to the target directory")
	}
	if target == rel {
		return nil
	}
	exists, err := x.checkParents(target, fmt.Sprintf("hard link target %q", hdr.Linkname))
	if err != nil {
		return err
	}
	var fi fs.FileInfo
	if exists {
		fi, err = x.root.Lstat(target)
	}
	if !exists || existsNot(err) {
		return unsafeEntry("hard link to %q, which is not in the layer before it", hdr.Linkname)
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return unsafeEntry("hard link to directory %q", hdr.Linkname)
	}
	if err := x.makeParents(rel, x.mkdirParent); err != nil {
		return err
	}
	if _, err := x.clear(rel, false); err != nil {
		return err
	}
	return x.root.Link(target, rel)
}

func (x *extractor) chown(rel string, hdr *tar.Header) error {
	if !x.o.chown {
		return nil
	}
	return x.root.Lchown(rel, hdr.Uid, hdr.Gid)
}

// finish applies directory modes and times, deepest (latest) first; a
// directory that several layers of a chain carry gets the latest.
func (x *extractor) finish() error {
	done := map[string]bool{}
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if done[d.rel] {
			continue
		}
		done[d.rel] = true
		fi, err := x.root.Lstat(d.rel)
		if err != nil || !fi.IsDir() {
			continue // replaced by a later entry
		}
		if err := x.root.Chmod(d.rel, d.mode); err != nil {
			return err
		}
		if err := x.root.Chtimes(d.rel, d.mtime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

// walker checks that the parents of a path inside a root are real
// directories, never symlinks, caching the directories it has verified.
type walker struct {
	root *os.Root
	ok   map[string]bool
}

func newWalker(root *os.Root) *walker { return &walker{root: root, ok: map[string]bool{}} }

// checkParents reports whether every parent of rel exists; a parent that
// is a symlink is refused as unsafe, one that is not a directory is an
// error. name is what the error names ("" when the caller names it).
func (w *walker) checkParents(rel, name string) (bool, error) {
	missing := false
	err := w.parents(rel, name, func(string) error {
		missing = true
		return errStop
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return !missing, err
}

// makeParents creates the missing parents of rel with mkdir, one at a time
// from the top, after checking the existing ones as checkParents does.
func (w *walker) makeParents(rel string, mkdir func(p string) error) error {
	return w.parents(rel, "", mkdir)
}

var errStop = errors.New("stop")

func (w *walker) parents(rel, name string, missing func(p string) error) error {
	if name != "" {
		name += ": "
	}
	dir := path.Dir(rel)
	if dir == "." || w.ok[dir] {
		return nil
	}
	creating := false
	for i := 0; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		p := dir[:i]
		if w.ok[p] {
			continue
		}
		if !creating {
			fi, err := w.root.Lstat(p)
			switch {
			case existsNot(err):
				creating = true
			case err != nil:
				return err
			case fi.Mode()&fs.ModeSymlink != 0:
				return unsafeEntry("%sparent %s is a symlink", name, p)
			case !fi.IsDir():
				return fmt.Errorf("%sparent %s is not a directory", name, p)
			}
		}
		if creating {
			if err := missing(p); err != nil {
				return err
			}
		}
		w.ok[p] = true
	}
	return nil
}

// remove removes rel and everything under it, and forgets the directories
// it had verified there.
func (w *walker) remove(rel string) error {
	if w.ok[rel] {
		delete(w.ok, rel)
		for p := range w.ok {
			if strings.HasPrefix(p, rel+"/") {
				delete(w.ok, p)
			}
		}
	}
	return w.root.RemoveAll(rel)
}
