package natsauth

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// MaxControlLine is the longest protocol line the servers accept. A
// spoke's CONNECT carries its user JWT, whose exact permission list makes
// it about 4 KiB, above nats-server's default of 4 KiB.
const MaxControlLine = 16 << 10

// ServerConfig is the part of a nats-server configuration file that
// trusts t: the operator, the system account, and a full account resolver
// in dir, preloaded with both accounts, that takes updates pushed by the
// system account (PushAccount) without a restart.
func (t *Trust) ServerConfig(dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "operator: %q\n", t.OperatorJWT)
	fmt.Fprintf(&b, "system_account: %s\n", t.SystemPublicKey())
	fmt.Fprintf(&b, "max_control_line: %d\n", MaxControlLine)
	fmt.Fprintf(&b, "resolver: {\n  type: full\n  dir: %q\n  allow_delete: false\n  interval: \"2m\"\n}\n", dir)
	fmt.Fprintf(&b, "resolver_preload: {\n  %s: %q\n  %s: %q\n}\n", t.SystemPublicKey(), t.SystemJWT, t.AccountPublicKey(), t.AccountJWT)
	return b.String()
}

// Configure sets an embedded server's options to trust t, with a full
// account resolver in dir (preloaded with both accounts).
func (t *Trust) Configure(o *server.Options, dir string) error {
	oc, err := t.OperatorClaims()
	if err != nil {
		return fmt.Errorf("operator JWT: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	r, err := server.NewDirAccResolver(dir, 0, 0, server.NoDelete)
	if err != nil {
		return fmt.Errorf("account resolver in %s: %w", dir, err)
	}
	for pub, token := range map[string]string{t.SystemPublicKey(): t.SystemJWT, t.AccountPublicKey(): t.AccountJWT} {
		if cur, err := r.Fetch(pub); err == nil && cur != "" {
			continue // keep what was pushed since (revocations)
		}
		if err := r.Store(pub, token); err != nil {
			return fmt.Errorf("preload account %s: %w", pub, err)
		}
	}
	o.TrustedOperators = append(o.TrustedOperators, oc)
	o.SystemAccount = t.SystemPublicKey()
	o.AccountResolver = r
	o.MaxControlLine = max(o.MaxControlLine, MaxControlLine)
	return nil
}

// PushAccount sends an account JWT to the servers over a connection of the
// system account (Trust.IssueSystem) and waits for a server's answer.
func PushAccount(ctx context.Context, nc *nats.Conn, accountJWT string) error {
	msg, err := nc.RequestWithContext(ctx, "$SYS.REQ.CLAIMS.UPDATE", []byte(accountJWT))
	if err != nil {
		return fmt.Errorf("push account JWT: %w", err)
	}
	var resp struct {
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("push account JWT: answer %q: %w", msg.Data, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("push account JWT: server refused it: %s (%d)", resp.Error.Description, resp.Error.Code)
	}
	return nil
}
