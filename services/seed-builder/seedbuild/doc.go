// Package seedbuild is the seed-builder service: on a seed build request it
// checks the seed cluster and the registry, has the cluster's node agent
// capture its host into the object store, assembles the layered seed image
// from those artifacts, pushes it by digest, reads it back, and only then
// writes the tag. Builds are recorded in IBU_SEED_BUILDS.
package seedbuild
