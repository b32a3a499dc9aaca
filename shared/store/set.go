package store

import (
	"context"
)

// Informer is what a Set needs of a cache: Cache[T] for any T.
type Informer interface {
	WaitForSync(ctx context.Context) error
	Done() <-chan struct{}
	Err() error
}

// Set is a group of caches that a component decides on together: it waits
// until all have synced, reports the first that ends (a lost watch: the
// component must stop deciding), and waits for all to end.
type Set struct {
	members []Informer
	lost    chan error
}

// NewSet returns an empty Set.
func NewSet() *Set { return &Set{lost: make(chan error, 1)} }

// Add puts c in the set.
func (s *Set) Add(c Informer) {
	s.members = append(s.members, c)
	go func() {
		<-c.Done()
		select {
		case s.lost <- c.Err():
		default: // one report is enough: the set is lost already
		}
	}()
}

// WaitForSync waits until every cache has synced; it returns the first
// error (a cache that ended, or ctx's).
func (s *Set) WaitForSync(ctx context.Context) error {
	for _, c := range s.members {
		if err := c.WaitForSync(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Lost receives the error of the first cache that ends.
func (s *Set) Lost() <-chan error { return s.lost }

// Wait waits until every cache has ended (they end with their context).
func (s *Set) Wait() {
	for _, c := range s.members {
		<-c.Done()
	}
}

// Follow starts a cache of b with o and adds it to s.
func Follow[T any](ctx context.Context, s *Set, b *Bucket[T], o CacheOptions[T]) (*Cache[T], error) {
	c, err := NewCache(ctx, b, o)
	if err != nil {
		return nil, err
	}
	s.Add(c)
	return c, nil
}
