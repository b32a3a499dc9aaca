package sim

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Images is a simulated node image store: a set of image references, with
// a per-image pull delay and size, and fault injection. (The shared,
// content-addressed blob cache that lets a fleet demo pull real layers
// lands with the precache service.)
type Images struct {
	mu      sync.Mutex
	present map[string]bool
	delay   time.Duration
	size    int64
	fail    map[string]error
	pulls   int
}

// NewImages returns an empty store whose pulls take delay and count size
// bytes each.
func NewImages(delay time.Duration, size int64, present ...string) *Images {
	m := &Images{present: map[string]bool{}, delay: delay, size: size, fail: map[string]error{}}
	for _, p := range present {
		m.present[p] = true
	}
	return m
}

// FailPull makes every pull of image fail with err until cleared with nil.
func (m *Images) FailPull(image string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		delete(m.fail, image)
		return
	}
	m.fail[image] = err
}

// Pulls is the number of pulls that transferred an image.
func (m *Images) Pulls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pulls
}

// Inventory lists the images present, sorted.
func (m *Images) Inventory(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.present))
	for p := range m.present {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

// Pull adds image after the configured delay, unless present or failing.
func (m *Images) Pull(ctx context.Context, image string) (int64, error) {
	m.mu.Lock()
	if m.present[image] {
		m.mu.Unlock()
		return 0, nil
	}
	err := m.fail[image]
	m.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("pull %s: %w", image, err)
	}
	if m.delay > 0 {
		t := time.NewTimer(m.delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.present[image] {
		m.present[image] = true
		m.pulls++
	}
	return m.size, nil
}

// Remove deletes image.
func (m *Images) Remove(_ context.Context, image string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.present, image)
	return nil
}
