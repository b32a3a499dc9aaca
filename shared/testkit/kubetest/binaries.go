package kubetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvBinDir names a directory holding kube-apiserver and etcd; it overrides
// the search for the repository's bin/kube.
const EnvBinDir = "IBU_KUBE_BIN"

// ErrNoBinaries: kube-apiserver or etcd is not built.
var ErrNoBinaries = errors.New("kube-apiserver and etcd not found: run make kube-bins")

// Binaries are the paths of the two programs a Server runs.
type Binaries struct {
	APIServer string
	Etcd      string
}

// FindBinaries looks in $IBU_KUBE_BIN, else in bin/kube of the working
// directory or the nearest parent that has one.
func FindBinaries() (Binaries, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		b := Binaries{APIServer: filepath.Join(dir, "kube-apiserver"), Etcd: filepath.Join(dir, "etcd")}
		if err := b.check(); err != nil {
			return Binaries{}, fmt.Errorf("%s=%s: %w", EnvBinDir, dir, err)
		}
		return b, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return Binaries{}, fmt.Errorf("find kube binaries: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		kube := filepath.Join(dir, "bin", "kube")
		b := Binaries{APIServer: filepath.Join(kube, "kube-apiserver"), Etcd: filepath.Join(kube, "etcd")}
		if b.check() == nil {
			return b, nil
		}
		if filepath.Dir(dir) == dir {
			return Binaries{}, fmt.Errorf("%w (searched bin/kube from %s up, and $%s is unset)", ErrNoBinaries, wd, EnvBinDir)
		}
	}
}

func (b Binaries) check() error {
	for _, p := range []string{b.APIServer, b.Etcd} {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNoBinaries, err)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%w: %s is not an executable file", ErrNoBinaries, p)
		}
	}
	return nil
}
