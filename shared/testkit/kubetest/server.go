package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// StartTimeout bounds the start of etcd and kube-apiserver up to /readyz
// (about 3 s on a quiet 2-core box, 5 s under load).
const StartTimeout = 90 * time.Second

// Server is a running etcd + kube-apiserver pair. Its user is in
// system:masters, so RBAC lets it do anything.
type Server struct {
	dir     string
	host    string
	token   string
	caData  []byte
	procs   []*proc // started order: etcd, kube-apiserver
	stopped bool
}

type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts a server for one test and stops it when the test ends. The
// test fails (never skips) when the binaries are missing.
func Start(t testing.TB) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	s, err := StartServer(ctx)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Main runs a test package against one shared server: it starts the
// server, calls setup (install CRDs there), runs the tests and stops the
// server. It returns the exit code for os.Exit; a server that cannot start
// fails the package with the reason (e.g. "run make kube-bins").
func Main(m *testing.M, setup func(ctx context.Context, s *Server) error) int {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	s, err := StartServer(ctx)
	if err == nil && setup != nil {
		if err = setup(ctx, s); err != nil {
			err = fmt.Errorf("setup: %w", err)
		}
	}
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: %v\n", err)
		if s != nil {
			s.Stop()
		}
		return 1
	}
	code := m.Run()
	s.Stop()
	return code
}

// StartServer starts etcd and kube-apiserver in a temporary directory and
// waits until the API server is ready. Call Stop when done.
func StartServer(ctx context.Context) (*Server, error) {
	bins, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	s := &Server{dir: dir}
	if err := s.start(ctx, bins); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, bins Binaries) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClient := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	etcdPeer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if err := s.run(bins.Etcd, "etcd",
		"--name=default",
		"--data-dir="+filepath.Join(s.dir, "etcd"),
		"--listen-client-urls="+etcdClient, "--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer, "--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=default="+etcdPeer,
		"--unsafe-no-fsync", "--log-level=warn",
	); err != nil {
		return err
	}

	saKey := filepath.Join(s.dir, "sa.key")
	if err := writeRSAKey(saKey); err != nil {
		return err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	s.token = hex.EncodeToString(tok)
	tokens := filepath.Join(s.dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(s.token+`,kubetest-admin,kubetest-admin,"system:masters"`+"\n"), 0o600); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	certDir := filepath.Join(s.dir, "certs")
	s.host = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	if err := s.run(bins.APIServer, "kube-apiserver",
		"--etcd-servers="+etcdClient,
		"--secure-port="+strconv.Itoa(ports[2]),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--cert-dir="+certDir,
		"--service-account-key-file="+saKey,
		"--service-account-signing-key-file="+saKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC",
		"--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
	); err != nil {
		return err
	}
	if err := s.waitReady(ctx); err != nil {
		return err
	}
	ca, err := os.ReadFile(filepath.Join(certDir, "apiserver.crt"))
	if err != nil {
		return fmt.Errorf("read the API server's certificate: %w", err)
	}
	s.caData = ca
	return nil
}

// run starts a program with its output in a log file in the server's dir.
func (s *Server) run(bin, name string, args ...string) error {
	logPath := filepath.Join(s.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// An interrupted go test must not leave the servers behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	s.procs = append(s.procs, p)
	return nil
}

func (s *Server) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		// Only for the readiness probe: the certificate appears in cert-dir
		// when the server starts serving, so it cannot be pinned before.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
	}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		for _, p := range s.procs {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited before the API server was ready (%v):\n%s", p.name, p.err, logTail(p.log))
			default:
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.host+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("readyz request: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+s.token)
		if resp, err := client.Do(req); err == nil {
			body := make([]byte, 512)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d %s", resp.StatusCode, bytes.TrimSpace(body[:n]))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("API server not ready (%s, last /readyz: %s):\n%s", ctx.Err(), last, logTail(s.procs[len(s.procs)-1].log))
		case <-tick.C:
		}
	}
}

// Config is a fresh client config for the server's admin user.
func (s *Server) Config() *rest.Config {
	return &rest.Config{
		Host:            s.host,
		BearerToken:     s.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), s.caData...)},
		// Tests and benchmarks measure the server, not client-side throttling.
		QPS:   1000,
		Burst: 2000,
	}
}

// Kubeconfig is a kubeconfig file's content for the server's admin user.
func (s *Server) Kubeconfig() []byte {
	ca := base64.StdEncoding.EncodeToString(s.caData)
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: kubetest
  context: {cluster: kubetest, user: admin}
current-context: kubetest
`, s.host, ca, s.token)
}

// Stop kills both programs and removes their files. The state is thrown
// away, so there is no graceful shutdown to wait for.
func (s *Server) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	_ = os.RemoveAll(s.dir)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeRSAKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("service-account key: %w", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("service-account key: %w", err)
	}
	return nil
}

// logTail is the error and fatal lines of a klog file (or its last lines
// when there are none): the rest is start-up noise.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var all, bad []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		all = append(all, line)
		if strings.HasPrefix(line, "E") || strings.HasPrefix(line, "F") || strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"fatal"`) {
			bad = append(bad, line)
		}
	}
	pick := bad
	if len(pick) == 0 {
		pick = all
	}
	if len(pick) > 20 {
		pick = pick[len(pick)-20:]
	}
	return strings.Join(pick, "\n")
}
