package natsconn

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The flags' names, without the leading dashes, and their environment
// variables.
const (
	FlagURL         = "nats-url"
	FlagCreds       = "nats-creds"
	FlagCA          = "nats-ca"
	FlagInboxPrefix = "nats-inbox-prefix"

	EnvURL         = "NATS_URL"
	EnvCreds       = "IBU_NATS_CREDS"
	EnvCA          = "IBU_NATS_CA"
	EnvInboxPrefix = "IBU_NATS_INBOX_PREFIX"

	// DefaultURL is the server a binary dials when no URL is set.
	DefaultURL = nats.DefaultURL
)

// Flag describes one connection setting on the command line.
type Flag struct {
	Name    string // without the leading dashes
	Env     string // the environment variable that sets it when the flag is absent
	Arg     string // placeholder of its value in a help text
	Default string
	Help    string
}

// Flags describes the connection settings in the order help texts list
// them.
func Flags() []Flag {
	return []Flag{
		{Name: FlagURL, Env: EnvURL, Arg: "URL", Default: DefaultURL,
			Help: "the hub's NATS server(s), comma-separated (nats://, tls://, ws:// or wss://)"},
		{Name: FlagCreds, Env: EnvCreds, Arg: "FILE",
			Help: "NATS user credentials (.creds file: JWT and nkey seed)"},
		{Name: FlagCA, Env: EnvCA, Arg: "FILE",
			Help: "PEM CA bundle that signed the NATS server's TLS certificate"},
		{Name: FlagInboxPrefix, Env: EnvInboxPrefix, Arg: "PREFIX",
			Help: "subject prefix of reply inboxes: the one the credentials allow (ibuctl creds issue prints a cluster's: _INBOX_<cluster-id>); empty: _INBOX"},
	}
}

// Config is how to reach the hub's NATS.
type Config struct {
	// Name is the connection's name, which the server and the
	// connection's metrics show ("" = none).
	Name string
	URL  string // comma-separated server URLs
	// Creds is a .creds file (user JWT and nkey seed); "" = none.
	Creds string
	// CA is a PEM CA bundle for the server's TLS certificate; "" = the
	// system's roots.
	CA string
	// InboxPrefix replaces _INBOX for replies, so that credentials may
	// allow subscribing to this prefix only ("" = _INBOX).
	InboxPrefix string
}

// Register adds the connection flags to fs, each defaulting to its
// environment variable read through getenv (nil = os.Getenv), and fills c
// when fs is parsed.
func (c *Config) Register(fs *flag.FlagSet, getenv func(string) string) {
	if getenv == nil {
		getenv = os.Getenv
	}
	fields := map[string]*string{FlagURL: &c.URL, FlagCreds: &c.Creds, FlagCA: &c.CA, FlagInboxPrefix: &c.InboxPrefix}
	for _, f := range Flags() {
		def := f.Default
		if v := strings.TrimSpace(getenv(f.Env)); v != "" {
			def = v
		}
		fs.StringVar(fields[f.Name], f.Name, def, f.Help+" ($"+f.Env+")")
	}
}

// Validate reports the first setting that cannot work: a URL that is not
// a NATS server's, or a credentials or CA file that is not a regular file.
func (c Config) Validate() error {
	if c.URL == "" {
		return fmt.Errorf("--%s is empty", FlagURL)
	}
	if _, err := CheckURL(c.URL); err != nil {
		return fmt.Errorf("--%s %q: %w", FlagURL, c.URL, err)
	}
	for _, f := range []struct{ flag, path string }{{FlagCreds, c.Creds}, {FlagCA, c.CA}} {
		if f.path == "" {
			continue
		}
		if err := CheckFile(f.path); err != nil {
			return fmt.Errorf("--%s %s: %w", f.flag, f.path, err)
		}
	}
	return nil
}

// CheckURL checks a comma-separated list of server URLs (a missing scheme
// means nats://) and returns it without the blanks around its items.
func CheckURL(urls string) (string, error) {
	var parts []string
	for part := range strings.SplitSeq(urls, ",") {
		part = strings.TrimSpace(part)
		u := part
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		pu, err := url.Parse(u)
		if part == "" || err != nil || pu.Host == "" || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, pu.Scheme) {
			return urls, errors.New("want nats://host:port (or tls://, ws://, wss://), several comma-separated")
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ","), nil
}

// CheckFile checks that path names a regular file. The error does not
// repeat the path.
func CheckFile(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		if pe, ok := errors.AsType[*os.PathError](err); ok {
			return pe.Err
		}
		return err
	case !fi.Mode().IsRegular():
		return errors.New("not a regular file")
	}
	return nil
}

// Options are the connection's name, credentials, TLS CA and inbox
// prefix as nats.Options; a caller adds its own reconnect policy and
// handlers.
func (c Config) Options() []nats.Option {
	var opts []nats.Option
	if c.Name != "" {
		opts = append(opts, nats.Name(c.Name))
	}
	if c.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(c.InboxPrefix))
	}
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.CA != "" {
		opts = append(opts, nats.RootCAs(c.CA))
	}
	return opts
}

// Connect dials the servers once with c's options and then opts.
func (c Config) Connect(opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(c.URL, append(c.Options(), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", Redact(c.URL), err)
	}
	return nc, nil
}

// JetStream dials the servers once with c's options and then opts, and
// returns the connection with its JetStream context.
func (c Config) JetStream(opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := c.Connect(opts...)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream at %s: %w", Redact(c.URL), err)
	}
	return nc, js, nil
}
