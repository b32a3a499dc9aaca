package chart

import (
	"fmt"
	"log/slog"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// Lint runs Helm's linter (chart metadata, templates rendered with vals,
// values against values.schema.json) on the chart in dir and returns every
// error-level message; warnings and infos are returned apart.
func Lint(dir string, vals map[string]any) (errs, notes []string) {
	res := lint.All(dir, vals, "ibu", false)
	for _, m := range res.Messages {
		if m.Severity >= support.ErrorSev {
			errs = append(errs, m.Error())
		} else {
			notes = append(notes, m.Error())
		}
	}
	return errs, notes
}

// Package writes the chart in dir as <name>-<version>.tgz into out and
// returns the archive's path.
func Package(dir, out string) (string, error) {
	p := action.NewPackage()
	p.Destination = out
	path, err := p.Run(dir, nil)
	if err != nil {
		return "", fmt.Errorf("package %s: %w", dir, err)
	}
	return path, nil
}

// Client is Helm's action configuration against one cluster and
// namespace, releases stored as Secrets.
type Client struct {
	cfg       *action.Configuration
	namespace string
}

// NewClient configures Helm for getter's cluster in namespace.
func NewClient(getter genericclioptions.RESTClientGetter, namespace string, log *slog.Logger) (*Client, error) {
	cfg := new(action.Configuration)
	debug := func(format string, v ...any) {
		if log != nil {
			log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
		}
	}
	if err := cfg.Init(getter, namespace, "secret", debug); err != nil {
		return nil, fmt.Errorf("helm configuration: %w", err)
	}
	return &Client{cfg: cfg, namespace: namespace}, nil
}

// Install installs the chart in dir as release name with vals. It does
// not wait for readiness.
func (c *Client) Install(dir, name string, vals map[string]any) error {
	ch, err := loader.Load(dir)
	if err != nil {
		return fmt.Errorf("load chart %s: %w", dir, err)
	}
	in := action.NewInstall(c.cfg)
	in.ReleaseName, in.Namespace = name, c.namespace
	if _, err := in.Run(ch, vals); err != nil {
		return fmt.Errorf("install %s: %w", name, err)
	}
	return nil
}

// Upgrade upgrades release name to the chart in dir with vals.
func (c *Client) Upgrade(dir, name string, vals map[string]any) error {
	ch, err := loader.Load(dir)
	if err != nil {
		return fmt.Errorf("load chart %s: %w", dir, err)
	}
	up := action.NewUpgrade(c.cfg)
	up.Namespace = c.namespace
	if _, err := up.Run(name, ch, vals); err != nil {
		return fmt.Errorf("upgrade %s: %w", name, err)
	}
	return nil
}

// Uninstall removes release name and its objects.
func (c *Client) Uninstall(name string) error {
	if _, err := action.NewUninstall(c.cfg).Run(name); err != nil {
		return fmt.Errorf("uninstall %s: %w", name, err)
	}
	return nil
}
