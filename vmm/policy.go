package vmm

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/buildledger/buildledger/schemas"
)

// PolicySchema is the JSON Schema of the resource policy, in package schemas.
const PolicySchema = "vmm/resource-policy.json"

// Policy is the resource policy checked at create (albatross's policy,
// for the one namespace of this daemon). A nil limit does not apply; an
// empty, non-nil list allows nothing.
type Policy struct {
	Unikernels *int     `json:"unikernels"`
	MemoryMB   *int     `json:"memory_mb"`
	CPUs       []int    `json:"cpus"`
	Bridges    []string `json:"bridges"`
	BlockMB    *int     `json:"block_mb"`
}

// ParsePolicy checks a policy document against its schema and decodes it.
func ParsePolicy(doc []byte) (*Policy, error) {
	if err := schemas.Validate(PolicySchema, doc); err != nil {
		return nil, fmt.Errorf("%w: resource policy: %v", ErrInvalid, err)
	}
	var p Policy
	if err := json.Unmarshal(doc, &p); err != nil {
		return nil, fmt.Errorf("%w: resource policy: %v", ErrInvalid, err)
	}
	return &p, nil
}

// Validate checks a policy built in code the way the schema checks one
// read from a file.
func (p *Policy) Validate() error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = ParsePolicy(b)
	return err
}

// Usage is what the existing unikernels hold.
type Usage struct {
	Unikernels int      `json:"unikernels"`
	MemoryMB   int      `json:"memory_mb"`
	BlockMB    int      `json:"block_mb"`
	CPUs       []int    `json:"cpus"`
	Bridges    []string `json:"bridges"`
}

func (u *Usage) add(s *Spec, blockMB int) {
	u.Unikernels++
	u.MemoryMB += s.MemMB
	u.BlockMB += blockMB
	if !slices.Contains(u.CPUs, s.CPU) {
		u.CPUs = append(u.CPUs, s.CPU)
		slices.Sort(u.CPUs)
	}
	for _, n := range s.Nets {
		if !slices.Contains(u.Bridges, n.Bridge) {
			u.Bridges = append(u.Bridges, n.Bridge)
			slices.Sort(u.Bridges)
		}
	}
}

// Check reports the first limit a new unikernel s, with blockMB of block
// storage, would exceed given what is in use.
func (p *Policy) Check(in Usage, s *Spec, blockMB int) error {
	if p.Unikernels != nil && in.Unikernels+1 > *p.Unikernels {
		return &LimitError{Limit: "unikernels", Message: fmt.Sprintf(
			"%d unikernels exist and the policy allows %d; destroy one (vmm destroy NAME) or raise the limit (vmm policy set --unikernels N)",
			in.Unikernels, *p.Unikernels)}
	}
	if p.MemoryMB != nil && in.MemoryMB+s.MemMB > *p.MemoryMB {
		return &LimitError{Limit: "memory", Message: fmt.Sprintf(
			"memory: %d MB in use + %d MB asked for exceeds the %d MB allowed; ask for less (--mem), destroy a unikernel, or raise the limit (vmm policy set --mem MB)",
			in.MemoryMB, s.MemMB, *p.MemoryMB)}
	}
	if p.CPUs != nil && !slices.Contains(p.CPUs, s.CPU) {
		return &LimitError{Limit: "cpus", Message: fmt.Sprintf(
			"CPU %d is not among the allowed CPUs %v; pick one of them with --cpu or allow it (vmm policy set --cpus LIST)", s.CPU, p.CPUs)}
	}
	if p.Bridges != nil {
		for _, n := range s.Nets {
			if !slices.Contains(p.Bridges, n.Bridge) {
				return &LimitError{Limit: "bridges", Message: fmt.Sprintf(
					"bridge %q (--net %s:%s) is not among the allowed bridges %v; use one of them or allow it (vmm policy set --bridges LIST)",
					n.Bridge, n.Name, n.Bridge, p.Bridges)}
			}
		}
	}
	if p.BlockMB != nil && in.BlockMB+blockMB > *p.BlockMB {
		return &LimitError{Limit: "block", Message: fmt.Sprintf(
			"block storage: %d MB in use + %d MB asked for (--block files, each rounded up to a MB) exceeds the %d MB allowed; use smaller files, destroy a unikernel, or raise the limit (vmm policy set --block MB)",
			in.BlockMB, blockMB, *p.BlockMB)}
	}
	return nil
}

// Violations lists where what is in use already exceeds p (after the
// policy was tightened); the unikernels keep running, new ones are refused.
func (p *Policy) Violations(in Usage) []string {
	var v []string
	if p.Unikernels != nil && in.Unikernels > *p.Unikernels {
		v = append(v, fmt.Sprintf("%d unikernels exist, %d are allowed", in.Unikernels, *p.Unikernels))
	}
	if p.MemoryMB != nil && in.MemoryMB > *p.MemoryMB {
		v = append(v, fmt.Sprintf("%d MB of memory are in use, %d MB are allowed", in.MemoryMB, *p.MemoryMB))
	}
	if p.CPUs != nil {
		for _, c := range in.CPUs {
			if !slices.Contains(p.CPUs, c) {
				v = append(v, fmt.Sprintf("CPU %d is in use and not allowed", c))
			}
		}
	}
	if p.Bridges != nil {
		for _, b := range in.Bridges {
			if !slices.Contains(p.Bridges, b) {
				v = append(v, fmt.Sprintf("bridge %s is in use and not allowed", b))
			}
		}
	}
	if p.BlockMB != nil && in.BlockMB > *p.BlockMB {
		v = append(v, fmt.Sprintf("%d MB of block storage are in use, %d MB are allowed", in.BlockMB, *p.BlockMB))
	}
	return v
}

// String shows the policy, one limit a line.
func (p *Policy) String() string {
	num := func(n *int, unit string) string {
		if n == nil {
			return "no limit"
		}
		return fmt.Sprintf("%d%s", *n, unit)
	}
	set := func(isNil bool, s string) string {
		if isNil {
			return "any"
		}
		if s == "" {
			return "none"
		}
		return s
	}
	cpus := make([]string, len(p.CPUs))
	for i, c := range p.CPUs {
		cpus[i] = fmt.Sprint(c)
	}
	return fmt.Sprintf("unikernels: %s\nmemory:     %s\ncpus:       %s\nbridges:    %s\nblock:      %s\n",
		num(p.Unikernels, ""), num(p.MemoryMB, " MB"), set(p.CPUs == nil, strings.Join(cpus, ",")),
		set(p.Bridges == nil, strings.Join(p.Bridges, ",")), num(p.BlockMB, " MB"))
}
