package ibuctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/natsconn"
)

// readTimeout bounds a one-shot read of the KV buckets.
const readTimeout = 30 * time.Second

// natsFlags are the connection flags every hub command takes: natsconn's,
// with the environment read through io.
type natsFlags struct{ natsconn.Config }

func addNATSFlags(fs *flag.FlagSet, io IO) *natsFlags {
	f := &natsFlags{}
	f.Register(fs, func(key string) string { return env(io, key, "") })
	return f
}

func (f *natsFlags) connect() (*nats.Conn, jetstream.JetStream, error) {
	if err := f.Validate(); err != nil {
		return nil, nil, err
	}
	return connect(f.Config)
}

// parseArgs parses fs's flags wherever they stand among the positional
// arguments (`plan get ID -o json` as well as `plan get -o json ID`) and
// returns the positional ones. help is true after -h: the command then
// does nothing more.
func parseArgs(fs *flag.FlagSet, args []string) (pos []string, help bool, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, true, nil
			}
			return nil, false, fmt.Errorf("%w: %v", ErrUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, false, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), false, nil // everything after -- is positional
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// openBucket opens one of ibu's KV buckets with an error that says what to
// do when it does not exist.
func openBucket(ctx context.Context, js jetstream.JetStream, name string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open KV bucket %s: not found: is this an ibu hub? (the services create it; so does `ibuctl hub`)", name)
	}
	if err != nil {
		return nil, fmt.Errorf("open KV bucket %s: %w", name, err)
	}
	return kv, nil
}

// kvEntries reads every current value of a bucket with one watcher (no
// per-key requests), in key order of the stream.
func kvEntries(ctx context.Context, kv jetstream.KeyValue) ([]jetstream.KeyValueEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read KV bucket %s: %w", kv.Bucket(), err)
	}
	defer w.Stop()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("read KV bucket %s: watcher closed", kv.Bucket())
			}
			if e == nil {
				return out, nil
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, fmt.Errorf("read KV bucket %s: %w", kv.Bucket(), ctx.Err())
		}
	}
}

// planEventFilter is the subject filter of every event about a plan,
// ibu.event.plan.<plan>.>, derived from the contract's subject function.
func planEventFilter(planID string) (string, error) {
	const name = "x"
	subj, err := events.PlanEventSubject(planID, name)
	if err != nil {
		return "", err
	}
	return subj[:len(subj)-len(name)] + ">", nil
}

// planEvents follows a plan's events from the moment it is created: an
// ordered consumer on IBU_EVENTS delivering only new messages. Create it
// before publishing a request so that no answer can be missed.
type planEvents struct {
	planID string
	msgs   jetstream.MessagesContext
}

func subscribePlanEvents(ctx context.Context, js jetstream.JetStream, planID string) (*planEvents, error) {
	filter, err := planEventFilter(planID)
	if err != nil {
		return nil, err
	}
	cons, err := js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("follow events of plan %s on %s: %w", planID, bus.StreamEvents, err)
	}
	// Messages creates the consumer on the server before returning: from
	// here on every event of the plan is delivered.
	msgs, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("follow events of plan %s on %s: %w", planID, bus.StreamEvents, err)
	}
	return &planEvents{planID: planID, msgs: msgs}, nil
}

func (p *planEvents) stop() { p.msgs.Stop() }

// next returns the plan's next valid event. Messages that are not valid
// events of the contract are passed to skip and passed over.
func (p *planEvents) next(ctx context.Context, skip func(subject string, err error)) (cloudevents.Event, error) {
	for {
		m, err := p.msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return cloudevents.Event{}, ctx.Err()
			}
			return cloudevents.Event{}, fmt.Errorf("follow events of plan %s: %w", p.planID, err)
		}
		e, err := bus.FromHeaders(m.Headers(), m.Data())
		if err != nil {
			if skip != nil {
				skip(m.Subject(), err)
			}
			continue
		}
		return e, nil
	}
}

// rejectedError is a scheduler's refusal of a request of ours.
type rejectedError struct {
	planID string
	r      events.Rejected
}

func (e *rejectedError) Error() string {
	svc := e.r.Service
	if svc == "" {
		svc = "a service"
	}
	return fmt.Sprintf("plan %s: request rejected by %s: %s: %s", e.planID, svc, e.r.Reason, flatten(e.r.Message))
}

// followPlan reads the plan's events until onStatus reports that the
// status it was given is the one awaited, or the request with id
// requestID is rejected (a *rejectedError; refusals of other requests
// about the same plan are ignored), or ctx ends.
func followPlan(ctx context.Context, iox IO, sub *planEvents, requestID string, onStatus func(events.PlanStatusChanged) (done bool)) error {
	skip := func(subject string, err error) {
		fmt.Fprintf(iox.Err, "ibuctl: ignoring an invalid event on %s: %s: %s\n", subject, events.Reason(err), oneLine(err))
	}
	for {
		e, err := sub.next(ctx, skip)
		if err != nil {
			return err
		}
		switch e.Type() {
		case events.TypePlanStatusChanged:
			st, err := events.DataAs[events.PlanStatusChanged](e)
			if err != nil {
				skip(e.Subject(), err)
				continue
			}
			if onStatus(st) {
				return nil
			}
		case events.TypeRejected:
			r, err := events.DataAs[events.Rejected](e)
			if err != nil {
				skip(e.Subject(), err)
				continue
			}
			if r.RefusedID == "" || r.RefusedID == requestID {
				return &rejectedError{planID: sub.planID, r: r}
			}
		}
	}
}

// isTerminalPhase reports whether a plan phase is final.
func isTerminalPhase(p events.PlanPhase) bool {
	return p == events.PlanCompleted || p == events.PlanFailed || p == events.PlanAborted
}

// statusLine renders one plan status event on one line.
func statusLine(st events.PlanStatusChanged, steps int) string {
	c := st.Counts
	step := fmt.Sprintf("step %d", st.CurrentStep+1)
	if steps > 0 {
		step = fmt.Sprintf("step %d/%d", st.CurrentStep+1, steps)
	}
	s := fmt.Sprintf("plan %s: %-9s %s  %d/%d succeeded, %d in progress, %d pending, %d failed, %d skipped",
		st.PlanID, st.Phase, step, c.Succeeded, c.Total, c.InProgress, c.Pending, c.Failed, c.Skipped)
	if e := eta(st.ETASeconds); e != "" {
		s += "  ETA " + e
	}
	if st.Reason != "" || st.Message != "" {
		s += "  (" + joinNonEmpty(": ", st.Reason, truncate(st.Message, 200)) + ")"
	}
	return s
}

func joinNonEmpty(sep string, parts ...string) string {
	out := ""
	for _, p := range parts {
		if p == "" {
			continue
		}
		if out != "" {
			out += sep
		}
		out += p
	}
	return out
}

// waitContext bounds ctx by d (none when d is 0).
func waitContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// waitError turns a deadline into a sentence: with no status seen, the
// scheduler did not answer; otherwise the plan simply has not got there
// yet, and carries on.
func waitError(err error, planID string, d time.Duration, awaited string, last *events.PlanStatusChanged) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("plan %s: stopped waiting for %s (interrupted); the plan carries on", planID, awaited)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if last == nil {
		return fmt.Errorf("plan %s: no answer from the scheduler within %s (waiting for %s): is the scheduler running?", planID, d, awaited)
	}
	return fmt.Errorf("plan %s: still %s after %s (waiting for %s); it carries on: `ibuctl status %s --watch` follows it", planID, last.Phase, d, awaited, planID)
}

// hubFlags are the flags of a command that reads the hub and prints what
// it found: the NATS connection's and -o.
type hubFlags struct {
	*natsFlags
	output *string
}

func addHubFlags(fs *flag.FlagSet, io IO) hubFlags {
	return hubFlags{natsFlags: addNATSFlags(fs, io), output: outputFlag(fs)}
}

// parse parses args as parseArgs does, then the output format.
func (h hubFlags) parse(fs *flag.FlagSet, args []string) (pos []string, out outputFormat, help bool, err error) {
	if pos, help, err = parseArgs(fs, args); err != nil || help {
		return nil, "", help, err
	}
	out, err = parseOutput(*h.output)
	return pos, out, false, err
}
