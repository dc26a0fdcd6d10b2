package vmm_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/vmm"
)

func ptr(n int) *int { return &n }

func TestPolicyRefusals(t *testing.T) {
	e := newEnv(t)
	img, d := image(t, "exec sleep 60")
	e.gate.allow(d)
	p := vmm.Policy{Unikernels: ptr(2), MemoryMB: ptr(100), CPUs: []int{0, 1}, Bridges: []string{"br0"}, BlockMB: ptr(3)}
	if w, err := e.c.SetPolicy(ctx, p); err != nil || len(w) != 0 {
		t.Fatalf("set policy: %v, %v", w, err)
	}
	dir := t.TempDir()
	disk := func(name string, size int64) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
		return p
	}
	small, big := disk("small", 1<<20+1), disk("big", 2<<20)
	e.mustCreate(vmm.Spec{Name: "a", MemMB: 60, CPU: 1, Nets: []vmm.Net{{Name: "service", Bridge: "br0"}}, Blocks: []vmm.Block{{Name: "data", File: small}}}, img)

	for _, tc := range []struct {
		spec  vmm.Spec
		limit string
		want  string
	}{
		{vmm.Spec{Name: "b", MemMB: 41}, "memory", "memory: 60 MB in use + 41 MB asked for exceeds the 100 MB allowed; ask for less (--mem)"},
		{vmm.Spec{Name: "b", MemMB: 8, CPU: 2}, "cpus", "CPU 2 is not among the allowed CPUs [0 1]"},
		{vmm.Spec{Name: "b", MemMB: 8, Nets: []vmm.Net{{Name: "service", Bridge: "br1"}}}, "bridges", `bridge "br1" (--net service:br1) is not among the allowed bridges [br0]`},
		{vmm.Spec{Name: "b", MemMB: 8, Blocks: []vmm.Block{{Name: "data", File: big}}}, "block", "block storage: 2 MB in use + 2 MB asked for"},
	} {
		_, err := e.create(tc.spec, img)
		if !errors.Is(err, vmm.ErrLimit) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "vmm policy set") {
			t.Errorf("%s: %v, want %q", tc.limit, err, tc.want)
		}
	}
	e.mustCreate(vmm.Spec{Name: "b", MemMB: 40, Blocks: []vmm.Block{{Name: "data", File: disk("one", 1<<20)}}}, img)
	if _, err := e.create(vmm.Spec{Name: "c", MemMB: 1}, img); !errors.Is(err, vmm.ErrLimit) || !strings.Contains(err.Error(), "2 unikernels exist and the policy allows 2") {
		t.Errorf("third unikernel: %v", err)
	}
	if len(e.audit()) != 2 {
		t.Errorf("refused creates reached the gate: %+v", e.audit())
	}

	// Persisted, and shown with what is in use.
	e.restart()
	got, use, err := e.c.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, p) {
		t.Errorf("policy after restart: %+v, want %+v", got, p)
	}
	if want := (vmm.Usage{Unikernels: 2, MemoryMB: 100, BlockMB: 3, CPUs: []int{0, 1}, Bridges: []string{"br0"}}); !reflect.DeepEqual(*use, want) {
		t.Errorf("usage = %+v, want %+v", use, want)
	}
	// Tightening below what is in use warns; lifting a limit lets a create through.
	w, err := e.c.SetPolicy(ctx, vmm.Policy{MemoryMB: ptr(50), CPUs: []int{}})
	if err != nil || len(w) != 3 || !strings.Contains(w[0], "100 MB of memory are in use, 50 MB are allowed") {
		t.Errorf("tightened policy: %q, %v", w, err)
	}
	if _, err := e.create(vmm.Spec{Name: "c", MemMB: 1}, img); !errors.Is(err, vmm.ErrLimit) {
		t.Errorf("create with no CPU allowed: %v", err)
	}
	if _, err := e.c.SetPolicy(ctx, vmm.Policy{}); err != nil {
		t.Fatal(err)
	}
	e.mustCreate(vmm.Spec{Name: "c", MemMB: 1000, CPU: 7}, img)
	if _, err := e.c.SetPolicy(ctx, vmm.Policy{MemoryMB: ptr(-1)}); !errors.Is(err, vmm.ErrInvalid) {
		t.Errorf("negative limit: %v", err)
	}
}

func TestPolicyParse(t *testing.T) {
	for _, p := range []vmm.Policy{
		{},
		{Unikernels: ptr(0), CPUs: []int{}, Bridges: []string{}},
		{Unikernels: ptr(3), MemoryMB: ptr(512), CPUs: []int{0, 2}, Bridges: []string{"br0", "service"}, BlockMB: ptr(1024)},
	} {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := vmm.ParsePolicy(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !reflect.DeepEqual(*got, p) {
			t.Errorf("round trip of %s: %+v", b, got)
		}
	}
	for _, bad := range []string{`[]`, `{"memory_mb":-1}`, `{"cpus":[1,1]}`, `{"bridges":["a bridge"]}`, `{"disks":1}`, `{"unikernels":"2"}`} {
		if _, err := vmm.ParsePolicy([]byte(bad)); !errors.Is(err, vmm.ErrInvalid) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if s := (&vmm.Policy{MemoryMB: ptr(64), Bridges: []string{}}).String(); !strings.Contains(s, "memory:     64 MB") || !strings.Contains(s, "bridges:    none") || !strings.Contains(s, "cpus:       any") {
		t.Errorf("String = %q", s)
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"unikernels":3,"memory_mb":512,"cpus":[0,2],"bridges":["br0"],"block_mb":null}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := vmm.ParsePolicy(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := vmm.ParsePolicy(again)
		if err != nil || !reflect.DeepEqual(p, p2) {
			t.Fatalf("%s re-encoded as %s: %+v, %v", b, again, p2, err)
		}
	})
}
