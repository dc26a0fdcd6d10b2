package vmm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Network gives tenders that need them (Tender.Taps) a tap interface on
// a host bridge.
type Network interface {
	// AddTap creates a tap interface attached to bridge and returns its
	// name. It must fail, saying so, when the bridge does not exist.
	AddTap(ctx context.Context, bridge string) (string, error)
	// RemoveTap deletes a tap interface AddTap created.
	RemoveTap(ctx context.Context, tap string) error
}

// IPNetwork creates taps with ip(8): "ip tuntap add dev vmmN mode tap",
// "ip link set dev vmmN master BRIDGE up"; it removes them with
// "ip link delete vmmN". It needs CAP_NET_ADMIN.
type IPNetwork struct {
	IP string // path of ip(8); "" means "ip" in $PATH

	mu   sync.Mutex
	next int
}

var _ Network = (*IPNetwork)(nil)

func (n *IPNetwork) ip(ctx context.Context, args ...string) error {
	bin := n.IP
	if bin == "" {
		bin = "ip"
	}
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (n *IPNetwork) AddTap(ctx context.Context, bridge string) (string, error) {
	if _, err := os.Stat("/sys/class/net/" + bridge + "/bridge"); err != nil {
		return "", fmt.Errorf("%w: there is no bridge %q on this host; create it (ip link add %s type bridge) or use another --net bridge",
			ErrInvalid, bridge, bridge)
	}
	n.mu.Lock()
	var tap string
	for {
		tap = fmt.Sprintf("vmm%d", n.next)
		n.next++
		if _, err := os.Stat("/sys/class/net/" + tap); err != nil {
			break
		}
	}
	n.mu.Unlock()
	if err := n.ip(ctx, "tuntap", "add", "dev", tap, "mode", "tap"); err != nil {
		return "", err
	}
	if err := n.ip(ctx, "link", "set", "dev", tap, "master", bridge, "up"); err != nil {
		n.ip(ctx, "link", "delete", tap)
		return "", err
	}
	return tap, nil
}

func (n *IPNetwork) RemoveTap(ctx context.Context, tap string) error {
	return n.ip(ctx, "link", "delete", tap)
}
