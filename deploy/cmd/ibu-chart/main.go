// Command ibu-chart lints ibu's Helm charts (with values that satisfy
// their schemas) and packages them into --out: `make chart`.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"ibu.dev/deploy/chart"
)

// lintValues are the least values each chart needs to render.
var lintValues = map[string]map[string]any{
	"ibu":       {"image": map[string]any{"registry": "registry.example.com/ibu"}},
	"ibu-agent": {"clusterId": "sno-1", "hub": map[string]any{"natsUrl": "tls://hub.example.com:4222"}, "image": map[string]any{"repository": "registry.example.com/ibu/ibu-agent"}},
}

func main() {
	charts := flag.String("charts", "charts", "directory of the charts")
	out := flag.String("out", "bin/charts", "where the packaged charts go")
	flag.Parse()
	failed := false
	for _, name := range []string{"ibu", "ibu-agent"} {
		dir := filepath.Join(*charts, name)
		errs, notes := chart.Lint(dir, lintValues[name])
		for _, n := range notes {
			fmt.Fprintf(os.Stderr, "%s: %s\n", name, n)
		}
		for _, e := range errs {
			fmt.Fprintf(os.Stderr, "%s: ERROR %s\n", name, e)
			failed = true
		}
		if len(errs) > 0 {
			continue
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		p, err := chart.Package(dir, *out)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(p)
	}
	if failed {
		os.Exit(1)
	}
}
