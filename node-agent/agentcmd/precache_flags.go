package agentcmd

import (
	"strings"
	"time"

	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/host/cri"
	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
)

// precache parses the precache flags.
func (p *parser) precache(c *Config) {
	c.CRIEndpoint = p.str("cri-endpoint")
	if c.ImageStore == ImageStoreCRI && !strings.HasPrefix(c.CRIEndpoint, "unix://") && !strings.HasPrefix(c.CRIEndpoint, "/") {
		p.bad("cri-endpoint", "want a unix socket (unix:///var/run/crio/crio.sock), got %q", c.CRIEndpoint)
	}
	c.PullAuthFile = p.authFile("pull-auth-file")
	c.PrecacheBestEffort = p.boolean("precache-best-effort")
	c.PullConcurrency = p.intRange("pull-concurrency", 1, 100)
	for item := range strings.SplitSeq(p.str("registry-mappings"), ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		from, to, ok := strings.Cut(item, "=")
		if !ok || strings.TrimSpace(from) == "" || strings.TrimSpace(to) == "" {
			p.bad("registry-mappings", "want FROM=TO (e.g. quay.io/openshift-release-dev=mirror.local:5000/ocp), got %q", item)
			continue
		}
		c.RegistryMappings = append(c.RegistryMappings, events.RegistryMapping{From: strings.TrimSpace(from), To: strings.TrimSpace(to)})
	}
}

// criStore connects the CRI image store, with the node's pull secret when
// one is given.
func criStore(cfg Config) (host.ImageStore, error) {
	var opts []cri.Option
	if cfg.PullAuthFile != "" {
		kc, err := seedimage.AuthFileKeychain(cfg.PullAuthFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, cri.WithKeychain(kc))
	}
	return cri.New(cfg.CRIEndpoint, 30*time.Second, opts...)
}
