package demo

import (
	"bytes"
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"testing"
)

// config is the demo's configuration as ibu-demo parses it from args.
func config(t *testing.T, out *bytes.Buffer, args ...string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("ibu-demo", flag.ContinueOnError)
	fs.SetOutput(out)
	cfg := Flags(fs)
	cfg.Out, cfg.Err = out, out
	return *cfg, fs.Parse(args)
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"--clusters", "1"}, {"--clusters", "501"}, {"--failure-rate", "2"}} {
		var out bytes.Buffer
		cfg, err := config(t, &out, args...)
		if err != nil {
			t.Fatal(err)
		}
		if err := Run(t.Context(), cfg); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: want ErrUsage, got %v", args, err)
		}
	}
}

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	cfg, err := config(t, &out, "--clusters", "8", "--traces", filepath.Join(t.TempDir(), "traces.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Run(t.Context(), cfg); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"seed build with a wrong password refused before the seed cluster was touched (0 quiesces",
		"seed-builder captured seed-lab (workloads quiesced once, running again: true)",
		"inspected from manifest and config only: version 4.16.9, 125 precache images",
		"8 node agents registered on simulated hosts",
		"desired Upgrade while Idle refused by its agent: Prep first",
		"published demo-rollout on ibu.request.plan.create: 8 clusters",
		"sno-03   Prep failed: CheckCompatibility", "ArchitectureMismatch", "MissingOperators",
		"sno-07   Prep failed: CheckCompatibility", "VersionNotNewer",
		"Failed, step 2/2 (Upgrade+Finalize): 0 running, 6 succeeded, 2 failed of 8",
		"UnsupportedSpecVersion", "UnknownType", "SchemaMismatch", "NotJSON",
		"consumer still handled a good dev.ibu.health.requested.v1",
		"6 of 8 clusters upgraded;",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out.String())
	}
}

func TestHelpStopsTheDemo(t *testing.T) {
	var out bytes.Buffer
	_, err := config(t, &out, "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-clusters") || strings.Contains(out.String(), "hub      starting") {
		t.Fatalf("-h: %v\n%s", err, out.String())
	}
}
