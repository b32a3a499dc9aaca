package pullplan

import (
	"cmp"
	"slices"
	"strings"

	"ibu.dev/shared/events"
)

// ImageInfo is what the planner knows of one image: its layers (empty when
// the manifest could not be read from the hub; the node still tries).
type ImageInfo struct {
	Ref    string // as the node pulls it (mapped to the mirror), name@sha256:...
	Layers []events.Layer
	Size   int64 // config + layers
}

// Mirror rewrites ref by the longest mapping whose From is ref's prefix at
// a path boundary ("quay.io/ocp" maps "quay.io/ocp/x@..." but not
// "quay.io/ocpx@...").
func Mirror(ref string, mappings []events.RegistryMapping) string {
	best := -1
	for i, m := range mappings {
		from := strings.TrimSuffix(m.From, "/")
		if from == "" || !strings.HasPrefix(ref, from) {
			continue
		}
		if rest := ref[len(from):]; rest != "" && !strings.ContainsRune("/@:", rune(rest[0])) {
			continue
		}
		if best < 0 || len(from) > len(strings.TrimSuffix(mappings[best].From, "/")) {
			best = i
		}
	}
	if best < 0 {
		return ref
	}
	return strings.TrimSuffix(mappings[best].To, "/") + ref[len(strings.TrimSuffix(mappings[best].From, "/")):]
}

// Missing returns the seed's images the node lacks, mapped, in seed order
// without duplicates. An image counts as present under its original or its
// mapped name.
func Missing(seedImages, present []string, mappings []events.RegistryMapping) (missing []string, alreadyPresent int) {
	have := make(map[string]bool, len(present))
	for _, p := range present {
		have[p] = true
	}
	seen := map[string]bool{}
	for _, img := range seedImages {
		m := Mirror(img, mappings)
		if seen[m] {
			continue
		}
		seen[m] = true
		if have[img] || have[m] {
			alreadyPresent++
			continue
		}
		missing = append(missing, m)
	}
	return missing, alreadyPresent
}

// Order sorts the images so that those whose layers many other images
// share come first: each image scores the bytes it shares with the rest of
// the plan (sum over its layers of size × (images holding the layer − 1)).
// Pulling those first fetches the common base layers once, early, and
// every later image finds them on the node. Ties keep the seed's order.
func Order(images []ImageInfo) []ImageInfo {
	holders := map[string]int{}
	for _, img := range images {
		for _, l := range uniqueLayers(img.Layers) {
			holders[l.Digest]++
		}
	}
	score := func(img ImageInfo) int64 {
		var s int64
		for _, l := range uniqueLayers(img.Layers) {
			s += max(l.SizeBytes, 1) * int64(holders[l.Digest]-1)
		}
		return s
	}
	out := slices.Clone(images)
	scores := make(map[string]int64, len(out))
	for _, img := range out {
		scores[img.Ref] = score(img)
	}
	slices.SortStableFunc(out, func(a, b ImageInfo) int { return cmp.Compare(scores[b.Ref], scores[a.Ref]) })
	return out
}

// UniqueBytes is the size of the distinct layers of images (what a node
// that shares layers fetches).
func UniqueBytes(images []ImageInfo) int64 {
	seen := map[string]bool{}
	var n int64
	for _, img := range images {
		for _, l := range img.Layers {
			if !seen[l.Digest] {
				seen[l.Digest] = true
				n += l.SizeBytes
			}
		}
	}
	return n
}

func uniqueLayers(ls []events.Layer) []events.Layer {
	return slices.CompactFunc(slices.SortedFunc(slices.Values(ls), func(a, b events.Layer) int {
		return strings.Compare(a.Digest, b.Digest)
	}), func(a, b events.Layer) bool { return a.Digest == b.Digest })
}
