package ibuctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// ErrUsage marks a command-line mistake: the caller prints usage and exits 2.
var ErrUsage = errors.New("usage")

// IO is where a command reads and writes; tests pass buffers.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	Getenv   func(string) string
}

type command struct {
	summary string
	run     func(ctx context.Context, io IO, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"contract":  {"print the event contract (types, subjects, schemas) as a markdown table", runContract},
		"validate":  {"check structured CloudEvent JSON files against the contract", runValidate},
		"publish":   {"publish a structured CloudEvent JSON file to NATS on its contract subject", runPublish},
		"hub":       {"run a development hub: embedded NATS with JetStream and ibu's topology", runHub},
		"upgrade":   {"ask the scheduler to upgrade clusters to a seed (a plan); --dry-run, --wait", runUpgrade},
		"plan":      {"list, get, pause, resume or abort plans", runPlan},
		"status":    {"show active plans, or one plan's progress live (--watch)", runStatus},
		"clusters":  {"list the cluster inventory with each cluster's stage", runClusters},
		"dashboard": {"serve the live web dashboard of a hub (read-only; --listen 127.0.0.1:8080)", runDashboard},
		"creds":     {"NATS credentials: init the hub's trust, issue a cluster's or a service's, revoke, server config", runCreds},
		"seed":      {"build a seed image from a seed cluster (seed build), list builds (seed status)", runSeed},
	}
}

// Run executes one ibuctl command line (without the program name).
func Run(ctx context.Context, io IO, args []string) error {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(io.Err, cmds)
		if len(args) == 0 {
			return ErrUsage
		}
		return nil
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(io.Err, cmds)
		return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
	}
	if err := c.run(ctx, io, args[1:]); !errors.Is(err, errHelpShown) {
		return err
	}
	return nil
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: ibuctl <command> [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
}

// newFlags makes a flag set that reports errors instead of exiting.
func newFlags(name string, io IO) *flag.FlagSet {
	fs := flag.NewFlagSet("ibuctl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Err)
	return fs
}

// errHelpShown stops a command after -h printed its flags; Run turns it
// into success.
var errHelpShown = errors.New("help shown")

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelpShown
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return nil
}

func env(io IO, key, def string) string {
	if io.Getenv != nil {
		if v := strings.TrimSpace(io.Getenv(key)); v != "" {
			return v
		}
	}
	return def
}
