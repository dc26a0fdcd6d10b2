package vmm

import (
	"crypto/md5"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Tender runs unikernel images: solo5-hvt, solo5-spt, qemu, or a plain
// process. Implementations must not start anything in Check or Command.
type Tender interface {
	// Check reports whether the tender can run image with s's devices:
	// its binary is there and the image's manifest (if the tender reads
	// one) matches the devices exactly. Errors say what to do.
	Check(image string, s *Spec) error
	// Command returns the command line (argv[0] an executable) and the
	// environment additions that run l.Image.
	Command(l *Launch) (argv, env []string, err error)
	// Taps reports whether every network device needs a tap interface on
	// its bridge (Launch.Taps).
	Taps() bool
}

// Launch is one boot of an image.
type Launch struct {
	Image string
	Spec  *Spec
	// Taps maps each network device name to its tap interface, for
	// tenders whose Taps is true.
	Taps map[string]string
}

var (
	_ Tender = (*Solo5)(nil)
	_ Tender = (*QEMU)(nil)
	_ Tender = Process{}
)

// MAC is the deterministic MAC address albatross gives a unikernel's
// network device: 00:80:41 and the first three bytes of
// MD5(bridge "." unikernel), stable across restarts.
func MAC(unikernel, bridge string) string {
	h := md5.Sum([]byte(bridge + "." + unikernel))
	return fmt.Sprintf("00:80:41:%02x:%02x:%02x", h[0], h[1], h[2])
}

func lookTender(name, bin, hint string) (string, error) {
	if bin == "" {
		return "", fmt.Errorf("%w: tender %s has no binary configured; %s", ErrInvalid, name, hint)
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%w: tender %s: %v; %s", ErrInvalid, name, err, hint)
	}
	return p, nil
}

// Solo5 is solo5's hvt or spt tender:
//
//	solo5-hvt --mem=MB [--net:NAME=TAP --net-mac:NAME=MAC]... [--block:NAME=FILE]... -- IMAGE ARGS...
type Solo5 struct {
	Target string // "hvt" or "spt"
	Binary string // path or name in $PATH of solo5-hvt / solo5-spt
}

func (t *Solo5) name() string { return "solo5-" + t.Target }

func (t *Solo5) Taps() bool { return true }

func (t *Solo5) Check(image string, s *Spec) error {
	if _, err := lookTender(t.name(), t.Binary, fmt.Sprintf("install solo5 or start the daemon with --%s PATH", t.name())); err != nil {
		return err
	}
	return checkSolo5Image(image, s, t.Target)
}

func checkSolo5Image(image string, s *Spec, target string) error {
	img, err := ReadImage(image)
	if err != nil {
		return fmt.Errorf("%w: the image is not a solo5 unikernel for %s: %v; build it for solo5-%s or choose --tender process",
			ErrInvalid, target, err, target)
	}
	if img.ABI != nil && img.ABI.Target != target {
		return fmt.Errorf("%w: the image is built for solo5 target %s, not %s; use the matching --tender (solo5-hvt, solo5-spt, qemu for virtio)",
			ErrInvalid, img.ABI.Target, target)
	}
	if err := img.Manifest.MatchDevices(s.netNames(), s.blockNames()); err != nil {
		return invalid{err}
	}
	return nil
}

// invalid marks an error as an invalid request (errors.Is ErrInvalid)
// without changing its message.
type invalid struct{ error }

func (e invalid) Is(target error) bool { return target == ErrInvalid }
func (e invalid) Unwrap() error        { return e.error }

func (t *Solo5) Command(l *Launch) ([]string, []string, error) {
	s := l.Spec
	argv := []string{t.Binary, fmt.Sprintf("--mem=%d", s.MemMB)}
	for _, n := range s.Nets {
		tap := l.Taps[n.Name]
		if tap == "" {
			return nil, nil, fmt.Errorf("no tap interface for network device %s", n.Name)
		}
		argv = append(argv, fmt.Sprintf("--net:%s=%s", n.Name, tap), fmt.Sprintf("--net-mac:%s=%s", n.Name, MAC(s.Name, n.Bridge)))
	}
	for _, b := range s.Blocks {
		argv = append(argv, fmt.Sprintf("--block:%s=%s", b.Name, b.File))
	}
	argv = append(argv, "--", l.Image)
	return append(argv, s.Args...), nil, nil
}

// QEMU boots solo5 virtio images with qemu-system-x86_64 (KVM when the
// host has it, else TCG). solo5's virtio bindings attach at most one
// network and one block device, and take the arguments as one kernel
// command line.
type QEMU struct {
	Binary string // path or name in $PATH of qemu-system-x86_64
}

func (t *QEMU) Taps() bool { return true }

func (t *QEMU) Check(image string, s *Spec) error {
	if _, err := lookTender("qemu", t.Binary, "install qemu-system-x86 or start the daemon with --qemu PATH"); err != nil {
		return err
	}
	if len(s.Nets) > 1 || len(s.Blocks) > 1 {
		return fmt.Errorf("%w: solo5 on virtio (qemu) attaches at most one network and one block device", ErrInvalid)
	}
	for _, a := range s.Args {
		if strings.ContainsAny(a, " \t\n\"") {
			return fmt.Errorf("%w: --arg %q: qemu passes the arguments as one kernel command line, so they cannot contain blanks or quotes", ErrInvalid, a)
		}
	}
	return checkSolo5Image(image, s, "virtio")
}

func (t *QEMU) Command(l *Launch) ([]string, []string, error) {
	s := l.Spec
	argv := []string{t.Binary,
		"-machine", "pc,accel=kvm:tcg", "-cpu", "max", "-m", strconv.Itoa(s.MemMB),
		"-nodefaults", "-no-user-config", "-no-reboot", "-display", "none", "-serial", "stdio",
		"-kernel", l.Image}
	if len(s.Args) > 0 {
		argv = append(argv, "-append", strings.Join(s.Args, " "))
	}
	for _, n := range s.Nets {
		tap := l.Taps[n.Name]
		if tap == "" {
			return nil, nil, fmt.Errorf("no tap interface for network device %s", n.Name)
		}
		argv = append(argv,
			"-netdev", fmt.Sprintf("tap,id=%s,ifname=%s,script=no,downscript=no", n.Name, tap),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s", n.Name, MAC(s.Name, n.Bridge)))
	}
	for _, b := range s.Blocks {
		argv = append(argv,
			"-drive", fmt.Sprintf("id=%s,file=%s,if=none,format=raw", b.Name, strings.ReplaceAll(b.File, ",", ",,")), // qemu doubles a comma in a value
			"-device", "virtio-blk-pci,drive="+b.Name)
	}
	return argv, nil, nil
}

// Process runs the image as a plain executable with the arguments, for
// images that are programs rather than unikernels. Devices reach it
// through the environment (VMM_NET_<NAME>=BRIDGE, VMM_BLOCK_<NAME>=FILE);
// the memory is accounted against the policy but not enforced.
type Process struct{}

func (Process) Taps() bool { return false }

func (Process) Check(image string, s *Spec) error {
	fi, err := os.Stat(image)
	if err != nil {
		return err
	}
	if fi.Mode()&0o100 == 0 || !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: the image is not an executable file", ErrInvalid)
	}
	return nil
}

func (Process) Command(l *Launch) ([]string, []string, error) {
	if l.Image == "" {
		return nil, nil, errors.New("no image")
	}
	var env []string
	for _, n := range l.Spec.Nets {
		env = append(env, fmt.Sprintf("VMM_NET_%s=%s", n.Name, n.Bridge))
	}
	for _, b := range l.Spec.Blocks {
		env = append(env, fmt.Sprintf("VMM_BLOCK_%s=%s", b.Name, b.File))
	}
	return append([]string{l.Image}, l.Spec.Args...), env, nil
}

// DefaultTenders are the tenders by the names create's --tender takes,
// with their binaries looked up in $PATH.
func DefaultTenders() map[string]Tender {
	return map[string]Tender{
		"solo5-hvt": &Solo5{Target: "hvt", Binary: "solo5-hvt"},
		"solo5-spt": &Solo5{Target: "spt", Binary: "solo5-spt"},
		"qemu":      &QEMU{Binary: "qemu-system-x86_64"},
		"process":   Process{},
	}
}
