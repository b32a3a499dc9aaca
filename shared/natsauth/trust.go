package natsauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// Trust is one hub's chain of keys: the operator, the system account (for
// pushing account updates to the servers) and the ibu account, whose key
// signs every user. Keep it secret: whoever holds it can issue any
// credentials.
type Trust struct {
	OperatorSeed string `json:"operatorSeed"`
	SystemSeed   string `json:"systemSeed"`
	AccountSeed  string `json:"accountSeed"`
	OperatorJWT  string `json:"operatorJwt"`
	SystemJWT    string `json:"systemJwt"`
	AccountJWT   string `json:"accountJwt"`
	// Issued maps a user name (cluster id, or service:<name>) to the
	// public keys of every credential issued to it, for revocation.
	Issued map[string][]string `json:"issued"`
}

// trustFile is the file in a trust directory.
const trustFile = "trust.json"

// ErrNoTrust: the directory holds no trust yet (run `ibuctl creds init`).
var ErrNoTrust = errors.New("no NATS trust here")

// NewTrust makes a new operator, system account and ibu account with
// JetStream enabled and unlimited.
func NewTrust(name string) (*Trust, error) {
	op, err := nkeys.CreateOperator()
	if err != nil {
		return nil, err
	}
	sys, err := nkeys.CreateAccount()
	if err != nil {
		return nil, err
	}
	acc, err := nkeys.CreateAccount()
	if err != nil {
		return nil, err
	}
	t := &Trust{Issued: map[string][]string{}}
	seed := func(kp nkeys.KeyPair) string { s, _ := kp.Seed(); return string(s) }
	t.OperatorSeed, t.SystemSeed, t.AccountSeed = seed(op), seed(sys), seed(acc)
	opPub, _ := op.PublicKey()
	sysPub, _ := sys.PublicKey()
	accPub, _ := acc.PublicKey()

	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = name
	oc.SystemAccount = sysPub
	if t.OperatorJWT, err = oc.Encode(op); err != nil {
		return nil, fmt.Errorf("sign operator: %w", err)
	}
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	if t.SystemJWT, err = sc.Encode(op); err != nil {
		return nil, fmt.Errorf("sign system account: %w", err)
	}
	ac := jwt.NewAccountClaims(accPub)
	ac.Name = "IBU"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
		MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit,
	}
	if t.AccountJWT, err = ac.Encode(op); err != nil {
		return nil, fmt.Errorf("sign ibu account: %w", err)
	}
	return t, nil
}

// LoadTrust reads the trust kept in dir.
func LoadTrust(dir string) (*Trust, error) {
	b, err := os.ReadFile(filepath.Join(dir, trustFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s (ibuctl creds init --dir %s makes one)", ErrNoTrust, dir, trustFile, dir)
	}
	if err != nil {
		return nil, err
	}
	var t Trust
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, trustFile), err)
	}
	if t.Issued == nil {
		t.Issued = map[string][]string{}
	}
	return &t, nil
}

// Save writes the trust to dir (mode 0600, atomically).
func (t *Trust) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, trustFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, trustFile))
}

// OperatorClaims, AccountPublicKey and SystemPublicKey describe the trust
// to a server.
func (t *Trust) OperatorClaims() (*jwt.OperatorClaims, error) {
	return jwt.DecodeOperatorClaims(t.OperatorJWT)
}

// AccountPublicKey is the ibu account's public key.
func (t *Trust) AccountPublicKey() string { return pub(t.AccountSeed) }

// SystemPublicKey is the system account's public key.
func (t *Trust) SystemPublicKey() string { return pub(t.SystemSeed) }

func pub(seed string) string {
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return ""
	}
	p, _ := kp.PublicKey()
	return p
}

// User is one set of credentials to issue.
type User struct {
	Name        string
	Permissions jwt.Permissions
	// TTL bounds the credentials' life (0 = no expiry; negative: already
	// expired, for tests).
	TTL time.Duration
}

// SpokeUser is the user of cluster's agent.
func SpokeUser(cluster string, ttl time.Duration) (User, error) {
	p, err := SpokePermissions(cluster)
	if err != nil {
		return User{}, err
	}
	return User{Name: cluster, Permissions: p, TTL: ttl}, nil
}

// ServiceUser is the user of a hub service (or an operator's CLI).
func ServiceUser(name string, ttl time.Duration) User {
	return User{Name: "service:" + name, Permissions: ServicePermissions(), TTL: ttl}
}

// Issue signs a new user with the ibu account key and returns its .creds
// file content (JWT and nkey seed). The user's public key is recorded in
// t.Issued; Save t afterwards to be able to revoke it.
func (t *Trust) Issue(u User) ([]byte, error) {
	return t.issue(t.AccountSeed, u, true)
}

// IssueSystem returns credentials of the system account, which may push
// account updates (PushAccount) and nothing of ibu's.
func (t *Trust) IssueSystem(ttl time.Duration) ([]byte, error) {
	return t.issue(t.SystemSeed, User{Name: "system", TTL: ttl}, false)
}

func (t *Trust) issue(accountSeed string, u User, record bool) ([]byte, error) {
	acc, err := nkeys.FromSeed([]byte(accountSeed))
	if err != nil {
		return nil, fmt.Errorf("account key: %w", err)
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	upub, _ := ukp.PublicKey()
	accPub, _ := acc.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = u.Name
	uc.IssuerAccount = accPub
	uc.Permissions = u.Permissions
	if u.TTL != 0 {
		uc.Expires = time.Now().Add(u.TTL).Unix()
	}
	token, err := uc.Encode(acc)
	if err != nil {
		return nil, fmt.Errorf("sign user %s: %w", u.Name, err)
	}
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		return nil, err
	}
	if record {
		t.Issued[u.Name] = append(t.Issued[u.Name], upub)
	}
	return creds, nil
}

// Revoke revokes every credential issued to name (a cluster id, or
// service:<name>) up to now by re-signing the ibu account JWT with their
// public keys in its revocation list; push the new AccountJWT to the
// servers with PushAccount, and they disconnect and refuse those users.
func (t *Trust) Revoke(name string) error {
	keys := t.Issued[name]
	if len(keys) == 0 {
		return fmt.Errorf("revoke %s: no credentials were issued to it from this trust", name)
	}
	ac, err := jwt.DecodeAccountClaims(t.AccountJWT)
	if err != nil {
		return fmt.Errorf("revoke %s: %w", name, err)
	}
	// A revocation covers JWTs issued at or before its time (seconds).
	at := time.Now().Add(time.Second)
	for _, k := range slices.Compact(slices.Sorted(slices.Values(keys))) {
		ac.RevokeAt(k, at)
	}
	op, err := nkeys.FromSeed([]byte(t.OperatorSeed))
	if err != nil {
		return err
	}
	if t.AccountJWT, err = ac.Encode(op); err != nil {
		return fmt.Errorf("revoke %s: sign account: %w", name, err)
	}
	return nil
}
