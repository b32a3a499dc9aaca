package imagebuild

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path"
	"sort"
	"time"
)

// NonRootUID is the user (and group) the images run as.
const NonRootUID = 65532

// DefaultCACertificates is where Debian's ca-certificates package keeps the
// bundle the base layer copies.
const DefaultCACertificates = "/etc/ssl/certs/ca-certificates.crt"

// file is one entry of a layer.
type file struct {
	name string // absolute path in the image, without the leading /
	mode int64
	dir  bool
	data []byte
}

// baseFiles is the minimal root: users, groups, CA certificates, /tmp and
// the non-root user's home. No shell, no package manager.
func baseFiles(caBundle []byte) []file {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonRootUID, NonRootUID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", NonRootUID)
	return []file{
		{name: "etc", dir: true, mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "etc/ssl", dir: true, mode: 0o755},
		{name: "etc/ssl/certs", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: caBundle},
		{name: "home", dir: true, mode: 0o755},
		{name: "home/nonroot", dir: true, mode: 0o700},
		{name: "tmp", dir: true, mode: 0o1777},
		{name: "usr", dir: true, mode: 0o755},
		{name: "usr/local", dir: true, mode: 0o755},
		{name: "usr/local/bin", dir: true, mode: 0o755},
	}
}

// readCABundle reads the CA certificates the base carries.
func readCABundle(p string) ([]byte, error) {
	if p == "" {
		p = DefaultCACertificates
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("CA certificates for the base image: %w (install them: apt-get install ca-certificates)", err)
	}
	return b, nil
}

// tarFiles writes files as a tar in name order, owned by root (the home
// directory by the non-root user), every time stamp mtime.
func tarFiles(files []file, mtime time.Time) ([]byte, error) {
	sorted := append([]file(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range sorted {
		h := &tar.Header{
			Name: f.name, Mode: f.mode, ModTime: mtime, AccessTime: time.Time{}, ChangeTime: time.Time{},
			Format: tar.FormatPAX, Uname: "", Gname: "",
		}
		if path.Dir(f.name) == "home" && f.dir {
			h.Uid, h.Gid = NonRootUID, NonRootUID
		}
		if f.dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if !f.dir {
			if _, err := tw.Write(f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
