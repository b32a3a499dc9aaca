package imagebuild

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Discover lists the binaries of the workspace at root that get an image:
// every services/<svc>/cmd/<name> and node-agent/cmd/ibu-agent.
func Discover(root string) ([]Binary, error) {
	dirs, err := filepath.Glob(filepath.Join(root, "services", "*", "cmd", "*"))
	if err != nil {
		return nil, err
	}
	dirs = append(dirs, filepath.Join(root, "node-agent", "cmd", "ibu-agent"))
	var out []Binary
	for _, d := range dirs {
		if fi, err := os.Stat(filepath.Join(d, "main.go")); err != nil || fi.IsDir() {
			continue
		}
		rel, err := filepath.Rel(root, d)
		if err != nil {
			return nil, err
		}
		out = append(out, Binary{Name: filepath.Base(d), Package: "./" + filepath.ToSlash(rel)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no binaries under %s (services/*/cmd/*, node-agent/cmd/ibu-agent)", root)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
