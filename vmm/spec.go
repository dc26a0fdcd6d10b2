package vmm

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/buildledger/buildledger/vmm/solo5"
)

// DefaultStartup is the startup priority of a unikernel that names none
// (albatross's default; 0 boots first).
const DefaultStartup = 50

// Spec is how a unikernel is to be run: what create records and what an
// update keeps when it swaps the image.
type Spec struct {
	Name   string `json:"name"`
	Tender string `json:"tender"` // a key of Config.Tenders
	MemMB  int    `json:"mem_mb"`
	// CPU is the id of the host CPU the tender is pinned to (not a count).
	CPU    int      `json:"cpu"`
	Args   []string `json:"args,omitempty"`
	Nets   []Net    `json:"nets,omitempty"`
	Blocks []Block  `json:"blocks,omitempty"`
	// RestartOnFail restarts the unikernel when it exits, as ShouldRestart
	// decides; ExitCodes, if any, are the only exit codes that restart.
	RestartOnFail bool  `json:"restart_on_fail,omitempty"`
	ExitCodes     []int `json:"exit_codes,omitempty"`
	// Startup orders the boots at daemon start: 0 first, then ascending.
	Startup int `json:"startup"`
}

// Net attaches the unikernel's network device Name to the host bridge Bridge.
type Net struct {
	Name   string `json:"name"`
	Bridge string `json:"bridge"`
}

// Block attaches the host file File as the unikernel's block device Name.
type Block struct {
	Name string `json:"name"`
	File string `json:"file"`
}

// ParseNet parses NAME:BRIDGE.
func ParseNet(s string) (Net, error) {
	name, bridge, ok := strings.Cut(s, ":")
	if !ok || name == "" || bridge == "" {
		return Net{}, fmt.Errorf("%w: --net %q: want NAME:BRIDGE (NAME from the image's manifest, BRIDGE a host bridge)", ErrInvalid, s)
	}
	return Net{Name: name, Bridge: bridge}, nil
}

// ParseBlock parses NAME:FILE.
func ParseBlock(s string) (Block, error) {
	name, file, ok := strings.Cut(s, ":")
	if !ok || name == "" || file == "" {
		return Block{}, fmt.Errorf("%w: --block %q: want NAME:FILE (NAME from the image's manifest, FILE a host file)", ErrInvalid, s)
	}
	return Block{Name: name, File: file}, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// bridgeRE is a Linux interface name (IFNAMSIZ 16 with the NUL).
var bridgeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$`)

// Validate checks what can be checked without the host: names, sizes,
// the restart policy. Paths of block files must be absolute.
func (s *Spec) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if !nameRE.MatchString(s.Name) {
		return bad("name %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", s.Name)
	}
	if s.MemMB < 1 {
		return bad("--mem %d: give the memory in MB, at least 1", s.MemMB)
	}
	if s.CPU < 0 {
		return bad("--cpu %d: give a host CPU id (0, 1, ...)", s.CPU)
	}
	if s.Startup < 0 {
		return bad("--startup %d: priorities start at 0 (boots first); the default is %d", s.Startup, DefaultStartup)
	}
	if len(s.ExitCodes) > 0 && !s.RestartOnFail {
		return bad("--exit-code only makes sense with --restart-on-fail")
	}
	for _, c := range s.ExitCodes {
		if c < 0 || c > 255 {
			return bad("--exit-code %d: exit codes are 0 to 255", c)
		}
	}
	names := map[string]bool{}
	for _, n := range s.Nets {
		if err := solo5.ValidDeviceName(n.Name); err != nil {
			return bad("--net %s:%s: %v", n.Name, n.Bridge, err)
		}
		if !bridgeRE.MatchString(n.Bridge) {
			return bad("--net %s:%s: %q is not a network interface name", n.Name, n.Bridge, n.Bridge)
		}
		if names[n.Name] {
			return bad("device %q is given twice", n.Name)
		}
		names[n.Name] = true
	}
	for _, b := range s.Blocks {
		if err := solo5.ValidDeviceName(b.Name); err != nil {
			return bad("--block %s:%s: %v", b.Name, b.File, err)
		}
		if !filepath.IsAbs(b.File) {
			return bad("--block %s:%s: the file must be an absolute path", b.Name, b.File)
		}
		if names[b.Name] {
			return bad("device %q is given twice", b.Name)
		}
		names[b.Name] = true
	}
	return nil
}

func (s *Spec) netNames() []string {
	var n []string
	for _, d := range s.Nets {
		n = append(n, d.Name)
	}
	return n
}

func (s *Spec) blockNames() []string {
	var n []string
	for _, d := range s.Blocks {
		n = append(n, d.Name)
	}
	return n
}

// ExitStatus is how a unikernel's tender ended: an exit code or a signal.
type ExitStatus struct {
	Code   int    `json:"code"`
	Signal string `json:"signal,omitempty"`
}

func (e ExitStatus) String() string {
	if e.Signal != "" {
		return "killed by a signal (" + e.Signal + ")"
	}
	return fmt.Sprintf("exit code %d", e.Code)
}

// ShouldRestart is albatross's should_restart: without RestartOnFail
// never; a signal never (the operator or the kernel stopped it); with
// ExitCodes only those codes; otherwise every code but 1 (solo5's own
// error) and 60 to 64 (bad arguments, usage errors), which another boot
// would only repeat.
func ShouldRestart(s *Spec, e ExitStatus) bool {
	if !s.RestartOnFail || e.Signal != "" {
		return false
	}
	if len(s.ExitCodes) > 0 {
		return slices.Contains(s.ExitCodes, e.Code)
	}
	return e.Code != 1 && (e.Code < 60 || e.Code > 64)
}
