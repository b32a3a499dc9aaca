//go:build !linux

package seedapply

import "os"

// syncFS syncs dir itself; without syncfs(2) the files under it are left
// to the operating system (the node agent runs on Linux).
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
