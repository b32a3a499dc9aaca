package natsconn

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRegisterReadsEnvironmentFlagWins(t *testing.T) {
	env := map[string]string{EnvURL: "nats://env:4222", EnvCreds: " a.creds ", EnvCA: "ca.pem", EnvInboxPrefix: "_INBOX_sno-1"}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c Config
	c.Register(fs, func(k string) string { return env[k] })
	if err := fs.Parse([]string{"--nats-url", "nats://flag:4222"}); err != nil {
		t.Fatal(err)
	}
	want := Config{URL: "nats://flag:4222", Creds: "a.creds", CA: "ca.pem", InboxPrefix: "_INBOX_sno-1"}
	if c != want {
		t.Fatalf("config %+v, want %+v", c, want)
	}
}

func TestRegisterDefaults(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var c Config
	c.Register(fs, func(string) string { return "" })
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if c != (Config{URL: DefaultURL}) {
		t.Fatalf("config %+v, want only the default URL", c)
	}
	for _, f := range Flags() {
		fl := fs.Lookup(f.Name)
		if fl == nil || !strings.Contains(fl.Usage, "$"+f.Env) {
			t.Errorf("flag %s: %+v, want it registered with $%s in its help", f.Name, fl, f.Env)
		}
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "x.creds")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    Config
		want string // "" = valid
	}{
		{"ok", Config{URL: "nats://a:4222, tls://b:4222", Creds: file, CA: file}, ""},
		{"no scheme", Config{URL: "hub:4222"}, ""},
		{"empty", Config{}, "--nats-url is empty"},
		{"scheme", Config{URL: "http://hub:4222"}, "want nats://host:port"},
		{"empty item", Config{URL: "nats://a:4222,"}, "want nats://host:port"},
		{"missing creds", Config{URL: DefaultURL, Creds: filepath.Join(dir, "nope")}, "--nats-creds"},
		{"ca is a directory", Config{URL: DefaultURL, CA: dir}, "--nats-ca " + dir + ": not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckURLTrims(t *testing.T) {
	got, err := CheckURL(" nats://a:4222 , tls://b:4222")
	if err != nil || got != "nats://a:4222,tls://b:4222" {
		t.Fatalf("CheckURL = %q, %v", got, err)
	}
}

func TestOptions(t *testing.T) {
	if n := len(Config{URL: DefaultURL}.Options()); n != 0 {
		t.Fatalf("%d options for a bare URL, want none", n)
	}
	if n := len(Config{Name: "x", Creds: "c", CA: "ca", InboxPrefix: "p"}.Options()); n != 4 {
		t.Fatalf("%d options, want 4 (name, creds, CA, inbox prefix)", n)
	}
}
