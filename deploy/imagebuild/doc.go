// Package imagebuild builds ibu's container images without a Docker
// daemon, on go-containerregistry: a static Go binary (CGO_ENABLED=0) per
// platform on a minimal base made in code (CA certificates, /etc/passwd
// with the non-root user 65532, no shell), with OCI media types and
// labels, in one multi-platform image index. Builds are reproducible:
// -trimpath and no build id, sorted tar entries, every time stamp set to
// SOURCE_DATE_EPOCH (or zero), so the same commit gives the same digests.
package imagebuild
