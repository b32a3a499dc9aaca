package seedimage

import (
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression of a seed's content layers. Gzip is the default; zstd
// decompresses several times faster on the targets. The metadata layer is
// always gzip.
type Compression string

// Layer compressions.
const (
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// ParseCompression accepts "", "gzip" (the default) and "zstd".
func ParseCompression(s string) (Compression, error) {
	switch Compression(s) {
	case "", Gzip:
		return Gzip, nil
	case Zstd:
		return Zstd, nil
	}
	return "", fmt.Errorf("compression %q: want gzip or zstd", s)
}

// MediaTypeFor returns the role's layer media type with compression c, ""
// for an unknown role or compression.
func (r Role) MediaTypeFor(c Compression) types.MediaType {
	gz := r.MediaType()
	switch {
	case gz == "":
		return ""
	case c == Gzip:
		return gz
	case c == Zstd && r != RoleMetadata:
		return types.MediaType(strings.TrimSuffix(string(gz), "+gzip") + "+zstd")
	}
	return ""
}

// Accepts reports whether mt is a media type a layer of role may have.
func (r Role) Accepts(mt types.MediaType) bool {
	return mt != "" && (mt == r.MediaTypeFor(Gzip) || mt == r.MediaTypeFor(Zstd))
}

// compressionOf tells a layer's compression by its media type.
func compressionOf(mt types.MediaType) Compression {
	if strings.HasSuffix(string(mt), "+zstd") {
		return Zstd
	}
	return Gzip
}

// decompressHash returns the diff ID and size of a compressed stream.
func decompressHash(r io.Reader, c Compression) (v1.Hash, int64, error) {
	if c == Zstd {
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return v1.Hash{}, 0, err
		}
		defer zr.Close()
		return v1.SHA256(zr)
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer zr.Close()
	return v1.SHA256(zr)
}

func typesMediaType(mt string) types.MediaType { return types.MediaType(mt) }

// decompressReader opens a compressed stream; Close releases the decoder.
func decompressReader(r io.Reader, c Compression) (io.ReadCloser, error) {
	if c == Zstd {
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return zr, nil
}

// compressWriter compresses into w with c, at the default level.
func compressWriter(w io.Writer, c Compression) (io.WriteCloser, error) {
	if c == Zstd {
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zw, nil
	}
	return gzip.NewWriterLevel(w, gzip.DefaultCompression)
}
