package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/agent/simspoke"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/stages"
)

// Config shapes a simulated fleet.
type Config struct {
	// N is how many clusters.
	N int
	// IDFormat names cluster i (from 1) with fmt.Sprintf; default "sno-%03d".
	IDFormat string
	// Dir holds each cluster's files, in Dir/<id>.
	Dir string
	// Stateroot is the stateroot every host boots first; default "rhcos".
	Stateroot string
	// Agent is cluster i's (from 0) agent configuration; ClusterID is set
	// to its id.
	Agent func(i int, id string) agent.Config
	// JS is the hub connection cluster i's agent uses.
	JS func(i int, id string) (jetstream.JetStream, error)
	// Prepare, if set, may change a spoke before its agent starts.
	Prepare func(i int, id string, s *simspoke.Spoke) error
	// Logger is every agent's logger; default none.
	Logger *slog.Logger
}

// Exit is an agent that stopped.
type Exit struct {
	ID  string
	Err error
}

// Lost is the error an exit is while the fleet should be running.
func (x Exit) Lost() error {
	if x.Err == nil {
		return fmt.Errorf("agent %s stopped on its own", x.ID)
	}
	return fmt.Errorf("agent %s: %w", x.ID, x.Err)
}

// Fleet is N node agents on simulated hosts running in this process, each
// through its reboots, until Stop.
type Fleet struct {
	ids    []string
	spokes map[string]*simspoke.Spoke
	cancel context.CancelFunc
	wg     sync.WaitGroup
	exits  chan Exit
}

// Start starts the fleet's agents. They run until Stop, not until ctx ends:
// ctx bounds only the start.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	if cfg.IDFormat == "" {
		cfg.IDFormat = "sno-%03d"
	}
	if cfg.Stateroot == "" {
		cfg.Stateroot = "rhcos"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &Fleet{spokes: make(map[string]*simspoke.Spoke, cfg.N), cancel: cancel, exits: make(chan Exit, cfg.N)}
	for i := range cfg.N {
		if err := ctx.Err(); err != nil {
			return nil, errors.Join(err, f.Stop(time.Minute))
		}
		id := fmt.Sprintf(cfg.IDFormat, i+1)
		js, err := cfg.JS(i, id)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("connect agent %s: %w", id, err), f.Stop(time.Minute))
		}
		acfg := cfg.Agent(i, id)
		acfg.ClusterID = id
		s := simspoke.New(acfg, filepath.Join(cfg.Dir, id), cfg.Stateroot)
		s.Logger = cfg.Logger
		if cfg.Prepare != nil {
			if err := cfg.Prepare(i, id, s); err != nil {
				return nil, errors.Join(fmt.Errorf("prepare agent %s: %w", id, err), f.Stop(time.Minute))
			}
		}
		f.ids = append(f.ids, id)
		f.spokes[id] = s
		f.wg.Go(func() { f.exits <- Exit{ID: id, Err: s.Run(runCtx, js)} })
	}
	return f, nil
}

// IDs are the clusters' ids, in order.
func (f *Fleet) IDs() []string { return f.ids }

// Spoke is cluster id's spoke (nil if there is none).
func (f *Fleet) Spoke(id string) *simspoke.Spoke { return f.spokes[id] }

// Exits delivers each agent that stops; while the fleet should run, any is
// a failure (Exit.Lost). Stop reports those not received.
func (f *Fleet) Exits() <-chan Exit { return f.exits }

// Stop stops every agent and waits for them, at most timeout; it returns
// the errors of the agents whose exit nobody received.
func (f *Fleet) Stop(timeout time.Duration) error {
	f.cancel()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	var errs []error
	select {
	case <-done:
	case <-t.C:
		errs = append(errs, fmt.Errorf("the agents did not stop within %s", timeout))
	}
	for {
		select {
		case x := <-f.exits:
			if x.Err != nil {
				errs = append(errs, fmt.Errorf("agent %s: %w", x.ID, x.Err))
			}
		default:
			return errors.Join(errs...)
		}
	}
}

// WaitIdle waits until every agent of f has registered and reports Idle,
// watching IBU_STATUS (no polling). An agent that stops ends the wait with
// its error; so does ctx, with its cause.
func (f *Fleet) WaitIdle(ctx context.Context, js jetstream.JetStream, timeout time.Duration) error {
	kv, err := js.KeyValue(ctx, bus.BucketStatus)
	if err != nil {
		return fmt.Errorf("open %s: %w", bus.BucketStatus, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := kv.WatchAll(wctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", bus.BucketStatus, err)
	}
	defer func() { _ = w.Stop() }()
	idle := make(map[string]bool, len(f.ids))
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(idle) < len(f.ids) {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watch of %s closed", bus.BucketStatus)
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut || f.spokes[e.Key()] == nil {
				continue
			}
			var v struct{ stages.Position }
			if err := json.Unmarshal(e.Value(), &v); err != nil {
				return fmt.Errorf("status of %s: %w", e.Key(), err)
			}
			if v.Position == stages.IdlePosition {
				idle[e.Key()] = true
			}
		case x := <-f.exits:
			return x.Lost()
		case <-deadline.C:
			return fmt.Errorf("%d of %d agents registered within %s", len(idle), len(f.ids), timeout)
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}
