package cmdhelp

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ibu.dev/shared/natsconn"
)

func TestEveryBinaryTakesTheNATSFlags(t *testing.T) {
	// binaries are the commands that connect to the hub, by package, with the
	// help invocations of each (ibuctl: every subcommand that connects).
	binaries := []struct {
		pkg   string
		helps [][]string
	}{
		{"ibu.dev/services/scheduler/cmd/scheduler", [][]string{{"-h"}}},
		{"ibu.dev/services/precache/cmd/precache", [][]string{{"-h"}}},
		{"ibu.dev/services/health/cmd/health", [][]string{{"-h"}}},
		{"ibu.dev/services/backup-restore/cmd/backup-restore", [][]string{{"-h"}}},
		{"ibu.dev/services/seed-builder/cmd/seed-builder", [][]string{{"-h"}}},
		{"ibu.dev/node-agent/cmd/ibu-agent", [][]string{{"--help"}}},
		{"ibu.dev/cli/cmd/ibuctl", [][]string{
			{"publish", "-h"}, {"upgrade", "-h"}, {"plan", "list", "-h"}, {"plan", "get", "-h"},
			{"plan", "pause", "-h"}, {"plan", "resume", "-h"}, {"plan", "abort", "-h"}, {"status", "-h"},
			{"clusters", "-h"}, {"dashboard", "-h"}, {"seed", "build", "-h"}, {"seed", "status", "-h"},
		}},
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, b := range binaries {
		args = append(args, b.pkg)
	}
	if out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, b := range binaries {
		bin := filepath.Join(dir, filepath.Base(b.pkg))
		for _, help := range b.helps {
			name := filepath.Base(b.pkg) + " " + strings.Join(help, " ")
			t.Run(name, func(t *testing.T) {
				cmd := exec.CommandContext(ctx, bin, help...)
				cmd.Env = []string{} // defaults only: no NATS_URL of the caller's
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %v\n%s", name, err, out)
				}
				for _, f := range natsconn.Flags() {
					if !strings.Contains(string(out), "-"+f.Name+" ") || !strings.Contains(string(out), "$"+f.Env) {
						t.Errorf("%s: the help lacks -%s ($%s):\n%s", name, f.Name, f.Env, out)
					}
				}
			})
		}
	}
}
