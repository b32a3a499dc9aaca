package seedimage

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNoDelta says that a delta layer cannot express the change (an entry
// whose name looks like a whiteout, an opaque whiteout in the previous
// chain): the caller writes a full layer instead.
var ErrNoDelta = errors.New("no delta possible")

// entryKey is what decides that an entry is unchanged: its header fields
// that the extraction uses, and its content's SHA-256.
type entryKey struct {
	typ   byte
	mode  int64
	uid   int
	gid   int
	size  int64
	link  string
	mtime int64
	pax   string
	sum   [sha256.Size]byte
}

// entryName is the cleaned tar name ("var/lib/x"), the key of an index.
func entryName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func readKey(hdr *tar.Header, r io.Reader) (entryKey, error) {
	k := entryKey{typ: hdr.Typeflag, mode: hdr.Mode, uid: hdr.Uid, gid: hdr.Gid, size: hdr.Size,
		link: hdr.Linkname, mtime: hdr.ModTime.Unix()}
	if len(hdr.PAXRecords) > 0 {
		var b strings.Builder
		for _, key := range slices.Sorted(maps.Keys(hdr.PAXRecords)) {
			if key == "path" || key == "linkpath" || key == "size" || key == "mtime" || key == "atime" || key == "ctime" {
				continue // carried by the header fields above
			}
			fmt.Fprintf(&b, "%s=%s\x00", key, hdr.PAXRecords[key])
		}
		k.pax = b.String()
	}
	if hdr.Typeflag == tar.TypeReg {
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return k, err
		}
		copy(k.sum[:], h.Sum(nil))
	}
	return k, nil
}

// ChainIndex is what a role's chain of layers extracts to: every path,
// with its header and content digest, after the deltas' whiteouts.
type ChainIndex struct {
	entries map[string]entryKey
}

// Len is the number of paths.
func (ix *ChainIndex) Len() int { return len(ix.entries) }

// IndexChain reads the uncompressed tars of a role's chain, in order (the
// first full, the others deltas), into an index. Nothing is written.
func IndexChain(ctx context.Context, layers []v1.Layer) (*ChainIndex, error) {
	ix := &ChainIndex{entries: map[string]entryKey{}}
	for i, l := range layers {
		if err := ix.add(ctx, l, i > 0); err != nil {
			return nil, fmt.Errorf("index layer %d: %w", i, err)
		}
	}
	return ix, nil
}

func (ix *ChainIndex) add(ctx context.Context, l v1.Layer, delta bool) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return registryError(err)
	}
	defer rc.Close()
	tr := tar.NewReader(ctxReader{ctx, rc})
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
			err = nil // the name is only a key here
		}
		if err != nil {
			return fmt.Errorf("%w: read tar: %v", ErrBadLayer, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name := entryName(hdr.Name)
		if delta {
			dir, base := path.Split(name)
			if gone, ok := strings.CutPrefix(base, WhiteoutPrefix); ok {
				if gone == "" || strings.HasPrefix(gone, WhiteoutPrefix) {
					return fmt.Errorf("%w: opaque or empty whiteout %q", ErrNoDelta, hdr.Name)
				}
				ix.remove(dir + gone)
				continue
			}
		}
		k, err := readKey(hdr, tr)
		if err != nil {
			return fmt.Errorf("%w: read %s: %v", ErrBadLayer, hdr.Name, err)
		}
		if old, ok := ix.entries[name]; ok && old.typ == tar.TypeDir && k.typ != tar.TypeDir {
			ix.remove(name) // a directory replaced by a file: its tree goes
		}
		ix.entries[name] = k
	}
}

// remove drops name and, if it was a directory, everything under it.
func (ix *ChainIndex) remove(name string) {
	old, ok := ix.entries[name]
	delete(ix.entries, name)
	if !ok || old.typ != tar.TypeDir {
		return
	}
	for p := range ix.entries {
		if strings.HasPrefix(p, name+"/") {
			delete(ix.entries, p)
		}
	}
}

// DeltaPlan says which entries of a new full tar differ from a previous
// chain, and which paths of the chain the new tar no longer has.
type DeltaPlan struct {
	changed map[string]bool
	deleted []string // the top of each deleted tree, sorted

	// Entries and Bytes count the new tar's entries and file bytes;
	// ChangedEntries and ChangedBytes the part a delta carries.
	Entries, ChangedEntries int
	Bytes, ChangedBytes     int64
}

// Deleted is the number of whiteouts the delta carries.
func (p *DeltaPlan) Deleted() int { return len(p.deleted) }

// Empty: the new tar extracts to what the chain does already.
func (p *DeltaPlan) Empty() bool { return len(p.changed) == 0 && len(p.deleted) == 0 }

// PlanDelta reads a new full tar (uncompressed) and compares it with ix.
// It fails with ErrNoDelta when a delta cannot express it.
func PlanDelta(ctx context.Context, ix *ChainIndex, full io.Reader) (*DeltaPlan, error) {
	p := &DeltaPlan{changed: map[string]bool{}}
	seen := map[string]bool{}
	tr := tar.NewReader(ctxReader{ctx, full})
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
			err = nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: read tar: %v", ErrBadLayer, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name := entryName(hdr.Name)
		if strings.HasPrefix(path.Base(name), WhiteoutPrefix) {
			return nil, fmt.Errorf("%w: entry %q has a whiteout's name", ErrNoDelta, hdr.Name)
		}
		k, err := readKey(hdr, tr)
		if err != nil {
			return nil, fmt.Errorf("%w: read %s: %v", ErrBadLayer, hdr.Name, err)
		}
		seen[name] = true
		p.Entries++
		p.Bytes += hdr.Size
		old, ok := ix.entries[name]
		// A hard link follows its target: if the target is rewritten, so
		// is the link, or it would keep the old file.
		if !ok || old != k || (hdr.Typeflag == tar.TypeLink && p.changed[entryName(hdr.Linkname)]) {
			p.changed[name] = true
			p.ChangedEntries++
			p.ChangedBytes += hdr.Size
		}
	}
	gone := map[string]bool{}
	for name := range ix.entries {
		if !seen[name] && name != "" {
			gone[name] = true
		}
	}
	for name := range gone {
		top := true
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			if gone[d] {
				top = false
				break
			}
		}
		if top && !strings.Contains(name, "/") {
			// A whiteout of the layer's top directory would delete the
			// extraction's target itself: not a delta's business.
			return nil, fmt.Errorf("%w: the new tar lacks the top entry %q", ErrNoDelta, name)
		}
		if top {
			p.deleted = append(p.deleted, name)
		}
	}
	slices.Sort(p.deleted)
	return p, nil
}

// WriteDelta writes the delta layer's uncompressed tar to w: a whiteout
// for each deleted tree, then every changed entry of full (the same new
// tar PlanDelta read, read again) as it is there.
func (p *DeltaPlan) WriteDelta(ctx context.Context, w io.Writer, full io.Reader) error {
	tw := tar.NewWriter(w)
	for _, name := range p.deleted {
		dir, base := path.Split(name)
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: dir + WhiteoutPrefix + base, Mode: 0o600,
			ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
	}
	tr := tar.NewReader(ctxReader{ctx, full})
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("%w: read tar: %v", ErrBadLayer, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader || !p.changed[entryName(hdr.Name)] {
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write %s: %w", hdr.Name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("copy %s: %w", hdr.Name, err)
		}
	}
	return tw.Close()
}

// Decompress opens a compressed layer stream by its media type (gzip or
// zstd).
func Decompress(r io.Reader, mt string) (io.ReadCloser, error) {
	return decompressReader(r, compressionOf(typesMediaType(mt)))
}

// Compress returns a writer that compresses into w as media type mt asks
// (gzip or zstd). Close flushes it; it does not close w.
func Compress(w io.Writer, mt string) (io.WriteCloser, error) {
	return compressWriter(w, compressionOf(typesMediaType(mt)))
}
