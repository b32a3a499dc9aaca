package systemd

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// BootID reads the kernel's boot id, which changes at every boot. Path is
// /proc/sys/kernel/random/boot_id unless set (a host root prefix in a
// container: /host/proc/... is not needed, /proc is the host's kernel).
type BootID struct{ Path string }

// BootID implements host.BootIdentity.
func (b BootID) BootID(context.Context) (string, error) {
	p := b.Path
	if p == "" {
		p = "/proc/sys/kernel/random/boot_id"
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	id := strings.TrimSpace(string(raw))
	if id == "" {
		return "", fmt.Errorf("read boot id: %s is empty", p)
	}
	return id, nil
}
