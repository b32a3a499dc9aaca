package seedimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
)

// Limits on the metadata layer, which is read into memory.
const (
	maxMetadataFile  = 16 << 20
	maxMetadataTotal = 64 << 20
)

// Metadata is the content of the metadata layer.
type Metadata struct {
	// EtcDeletions are the absolute paths under /etc that the seed deleted
	// relative to its base release, sorted.
	EtcDeletions []string
	// Extra holds further small files by plain file name.
	Extra map[string][]byte
}

// Metadata reads the metadata layer.
func (s *Seed) Metadata() (Metadata, error) {
	l, err := s.Layer(RoleMetadata)
	if err != nil {
		return Metadata{}, err
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return Metadata{}, fmt.Errorf("layer %s: %w", RoleMetadata, err)
	}
	defer rc.Close()
	md, err := readMetadata(rc)
	if err != nil {
		return Metadata{}, fmt.Errorf("layer %s: %w", RoleMetadata, err)
	}
	return md, nil
}

// validate checks deletion paths and extra file names.
func (md Metadata) validate() error {
	var errs []error
	for _, p := range md.EtcDeletions {
		if !strings.HasPrefix(p, "/etc/") || path.Clean(p) != p || strings.ContainsAny(p, "\n\x00") {
			errs = append(errs, fmt.Errorf("%w: etc deletion %q is not a clean absolute path under /etc", ErrBadMetadata, p))
		}
	}
	for name := range md.Extra {
		if name == "" || name == "." || name == ".." || name == EtcDeletionsFile || strings.ContainsAny(name, "/\n\x00") {
			errs = append(errs, fmt.Errorf("%w: extra file name %q is reserved or not a plain file name", ErrBadMetadata, name))
		}
	}
	return errors.Join(errs...)
}

// tar returns the metadata layer's uncompressed content. Headers carry no
// time, owner or order that depends on the build host, so equal metadata
// gives an equal layer digest.
func (md Metadata) tar() ([]byte, error) {
	if err := md.validate(); err != nil {
		return nil, err
	}
	dels := slices.Sorted(slices.Values(md.EtcDeletions))
	files := map[string][]byte{EtcDeletionsFile: []byte(strings.Join(dels, "\n") + "\n")}
	if len(dels) == 0 {
		files[EtcDeletionsFile] = nil
	}
	maps.Copy(files, md.Extra)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     name,
			Mode:     0o644,
			Size:     int64(len(files[name])),
			ModTime:  time.Unix(0, 0),
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("metadata %s: %w", name, err)
		}
		if _, err := tw.Write(files[name]); err != nil {
			return nil, fmt.Errorf("metadata %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return buf.Bytes(), nil
}

// readMetadata parses an uncompressed metadata tar, refusing anything but
// regular files within the size limits.
func readMetadata(r io.Reader) (Metadata, error) {
	md := Metadata{Extra: map[string][]byte{}}
	tr := tar.NewReader(r)
	var total int64
	sawDeletions := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Metadata{}, fmt.Errorf("%w: %v", ErrBadMetadata, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return Metadata{}, fmt.Errorf("%w: %s is not a regular file", ErrBadMetadata, hdr.Name)
		}
		total += hdr.Size
		if hdr.Size > maxMetadataFile || total > maxMetadataTotal {
			return Metadata{}, fmt.Errorf("%w: %s makes the metadata too large", ErrBadMetadata, hdr.Name)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return Metadata{}, fmt.Errorf("%w: %s: %v", ErrBadMetadata, hdr.Name, err)
		}
		if hdr.Name == EtcDeletionsFile {
			sawDeletions = true
			for line := range strings.Lines(string(b)) {
				if line = strings.TrimSuffix(line, "\n"); line != "" {
					md.EtcDeletions = append(md.EtcDeletions, line)
				}
			}
			continue
		}
		md.Extra[hdr.Name] = b
	}
	if !sawDeletions {
		return Metadata{}, fmt.Errorf("%w: no %s", ErrBadMetadata, EtcDeletionsFile)
	}
	return md, md.validate()
}
