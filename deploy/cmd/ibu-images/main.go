// Command ibu-images builds the OCI image of every ibu binary (see package
// imagebuild) into OCI layouts under --out, or pushes them to --registry.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"ibu.dev/deploy/imagebuild"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ibu-images:", err)
		os.Exit(1)
	}
}

func run() error {
	root := flag.String("root", ".", "the workspace root")
	out := flag.String("out", "bin/images", "write one OCI layout per image here (<out>/<name>)")
	registry := flag.String("registry", "", "push to <registry>/<name>:<tag> instead (credentials from the docker config)")
	tag := flag.String("tag", "", "tag when pushing (default the version)")
	insecure := flag.Bool("insecure", false, "plain HTTP to the registry")
	version := flag.String("version", envOr("VERSION", "dev"), "org.opencontainers.image.version ($VERSION)")
	source := flag.String("source", envOr("IBU_SOURCE_URL", "https://github.com/ibu-dev/ibu"), "org.opencontainers.image.source")
	only := flag.String("only", "", "comma-separated names: build only these images")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	epoch, err := sourceDateEpoch(*root)
	if err != nil {
		return err
	}
	bins, err := imagebuild.Discover(*root)
	if err != nil {
		return err
	}
	o := imagebuild.Options{Dir: *root, Epoch: epoch, Source: *source, Version: *version, Revision: revision(*root), Log: os.Stderr}
	for _, b := range bins {
		if *only != "" && !contains(strings.Split(*only, ","), b.Name) {
			continue
		}
		idx, err := imagebuild.Build(ctx, b, o)
		if err != nil {
			return err
		}
		d, err := idx.Digest()
		if err != nil {
			return err
		}
		if *registry != "" {
			t := *tag
			if t == "" {
				t = *version
			}
			ref := strings.TrimSuffix(*registry, "/") + "/" + b.Name + ":" + t
			if err := imagebuild.Push(ref, idx, *insecure); err != nil {
				return err
			}
			fmt.Printf("%s@%s\n", ref, d)
			continue
		}
		dir := imagebuild.LayoutPath(*out, b.Name)
		if err := imagebuild.WriteLayout(dir, idx); err != nil {
			return err
		}
		fmt.Printf("%s %s %s\n", b.Name, d, dir)
	}
	return nil
}

// sourceDateEpoch is $SOURCE_DATE_EPOCH, else the commit time of HEAD,
// else zero: never the build's own time.
func sourceDateEpoch(root string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		return time.Unix(n, 0), nil
	}
	b, err := exec.Command("git", "-C", root, "log", "-1", "--format=%ct").Output()
	if err != nil {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return time.Time{}, nil
	}
	return time.Unix(n, 0), nil
}

func revision(root string) string {
	b, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}
