package ibuctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/natsauth"
	"ibu.dev/shared/natsconn"
)

const credsUsage = `usage: ibuctl creds <init|issue|revoke|server-config> [flags]

  init           make the hub's trust (operator, system and ibu accounts) in --dir
  issue          write a .creds file for a cluster (--cluster ID) or a hub service (--service NAME)
  revoke         revoke every credential issued to a cluster or service, and push the
                 re-signed account to the hub (--nats-url) so that it cuts them off
  server-config  print the nats-server configuration that trusts --dir (operator,
                 system account, full account resolver)

The trust directory holds the keys that sign every credential: keep it secret
(e.g. a Kubernetes Secret on the hub, never on a spoke).`

func runCreds(ctx context.Context, io IO, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(io.Err, credsUsage)
		if len(args) == 0 {
			return ErrUsage
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlags("creds "+sub, io)
	dir := fs.String("dir", env(io, "IBU_TRUST_DIR", ""), "the trust directory ($IBU_TRUST_DIR)")
	switch sub {
	case "init":
		name := fs.String("name", "ibu", "operator name")
		if err := parse(fs, args); err != nil {
			return err
		}
		if *dir == "" {
			return fmt.Errorf("%w: --dir is required", ErrUsage)
		}
		if _, err := natsauth.LoadTrust(*dir); err == nil {
			return fmt.Errorf("%s already holds a trust; issuing from a new one would orphan every credential", *dir)
		} else if !errors.Is(err, natsauth.ErrNoTrust) {
			return err
		}
		t, err := natsauth.NewTrust(*name)
		if err != nil {
			return err
		}
		if err := t.Save(*dir); err != nil {
			return fmt.Errorf("save the trust: %w", err)
		}
		fmt.Fprintf(io.Out, "trust created in %s (operator %s, ibu account %s)\n", *dir, *name, t.AccountPublicKey())
		return nil
	case "issue":
		cluster := fs.String("cluster", "", "the cluster whose agent gets the credentials")
		service := fs.String("service", "", "the hub service (or operator) that gets the credentials")
		ttl := fs.Duration("ttl", 0, "credentials expire after this long (0: never; revoke instead)")
		out := fs.String("o", "", "output file (default <cluster>.creds or <service>.creds)")
		if err := parse(fs, args); err != nil {
			return err
		}
		if (*cluster == "") == (*service == "") {
			return fmt.Errorf("%w: give exactly one of --cluster and --service", ErrUsage)
		}
		t, err := loadTrust(*dir)
		if err != nil {
			return err
		}
		var u natsauth.User
		name := *service
		if *cluster != "" {
			name = *cluster
			if u, err = natsauth.SpokeUser(*cluster, *ttl); err != nil {
				return fmt.Errorf("%w: %v", ErrUsage, err)
			}
		} else {
			if err := events.ValidID(*service); err != nil {
				return fmt.Errorf("%w: --service: %v", ErrUsage, err)
			}
			u = natsauth.ServiceUser(*service, *ttl)
		}
		creds, err := t.Issue(u)
		if err != nil {
			return err
		}
		path := *out
		if path == "" {
			path = name + ".creds"
		}
		if err := os.WriteFile(path, creds, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := t.Save(*dir); err != nil {
			os.Remove(path)
			return fmt.Errorf("record the issue (needed to revoke it): %w", err)
		}
		fmt.Fprintf(io.Out, "wrote %s for %s\n", path, u.Name)
		if *cluster != "" {
			fmt.Fprintf(io.Out, "run the agent with --cluster-id %s --nats-creds %s --nats-inbox-prefix %s\n",
				*cluster, filepath.Base(path), natsauth.SpokeInboxPrefix(*cluster))
		}
		return nil
	case "revoke":
		cluster := fs.String("cluster", "", "the cluster whose credentials are revoked")
		service := fs.String("service", "", "the service whose credentials are revoked")
		var hub natsconn.Config
		fs.StringVar(&hub.URL, natsconn.FlagURL, env(io, natsconn.EnvURL, ""), "push the revocation to this hub now ($"+natsconn.EnvURL+"); empty: only re-sign (push later)")
		fs.StringVar(&hub.CA, natsconn.FlagCA, env(io, natsconn.EnvCA, ""), "PEM CA bundle that signed the NATS server's TLS certificate ($"+natsconn.EnvCA+")")
		if err := parse(fs, args); err != nil {
			return err
		}
		if (*cluster == "") == (*service == "") {
			return fmt.Errorf("%w: give exactly one of --cluster and --service", ErrUsage)
		}
		name := *cluster
		if *service != "" {
			name = "service:" + *service
		}
		t, err := loadTrust(*dir)
		if err != nil {
			return err
		}
		if err := t.Revoke(name); err != nil {
			return err
		}
		if err := t.Save(*dir); err != nil {
			return err
		}
		fmt.Fprintf(io.Out, "revoked %d credential(s) of %s in the account\n", len(t.Issued[name]), name)
		if hub.URL == "" {
			fmt.Fprintln(io.Out, "not pushed (no --nats-url): run ibuctl creds revoke again with --nats-url, or reload the servers' resolver_preload")
			return nil
		}
		return pushAccount(ctx, t, hub, io)
	case "server-config":
		resolverDir := fs.String("resolver-dir", "/data/jwt", "where each server keeps account JWTs")
		if err := parse(fs, args); err != nil {
			return err
		}
		t, err := loadTrust(*dir)
		if err != nil {
			return err
		}
		fmt.Fprint(io.Out, t.ServerConfig(*resolverDir))
		return nil
	default:
		fmt.Fprintln(io.Err, credsUsage)
		return fmt.Errorf("%w: unknown creds command %q", ErrUsage, sub)
	}
}

func loadTrust(dir string) (*natsauth.Trust, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: --dir (or $IBU_TRUST_DIR) is required: the trust directory of ibuctl creds init", ErrUsage)
	}
	return natsauth.LoadTrust(dir)
}

// pushAccount sends the re-signed account to the hub as the system
// account, with credentials made for this one push.
func pushAccount(ctx context.Context, t *natsauth.Trust, hub natsconn.Config, io IO) error {
	sys, err := t.IssueSystem(10 * time.Minute)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "ibu-system-*.creds")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(sys); err != nil {
		f.Close()
		return err
	}
	f.Close()
	hub.Creds = f.Name()
	nc, _, err := connect(hub)
	if err != nil {
		return err
	}
	defer nc.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := natsauth.PushAccount(pctx, nc, t.AccountJWT); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "pushed to %s: the hub refuses the revoked credentials now\n", hub.URL)
	return nil
}
