package vmm_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/cas/digest"

	"github.com/buildledger/buildledger/vmm"
)

var netAndBlock = []vmm.Device{{Name: "service", Type: vmm.NetBasic}, {Name: "storage", Type: vmm.BlockBasic}}

func TestSolo5CommandLine(t *testing.T) {
	for _, target := range []string{"hvt", "spt"} {
		t.Run(target, func(t *testing.T) {
			abi := map[string]int{"hvt": 1, "spt": 2}[target]
			img := solo5ELF(t, abi, netAndBlock...)
			tender := &vmm.Solo5{Target: target, Binary: "/bin/true"} // present, never run
			spec := &vmm.Spec{Name: "web", MemMB: 64, Args: []string{"--ipv4=10.0.0.2/24", "-l", "*:debug"},
				Nets: []vmm.Net{{Name: "service", Bridge: "br0"}}, Blocks: []vmm.Block{{Name: "storage", File: "/var/db/web.img"}}}
			if err := tender.Check(img, spec); err != nil {
				t.Fatal(err)
			}
			argv, env, err := tender.Command(&vmm.Launch{Image: img, Spec: spec, Taps: map[string]string{"service": "vmm7"}})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"/bin/true", "--mem=64", "--net:service=vmm7", "--net-mac:service=" + vmm.MAC("web", "br0"),
				"--block:storage=/var/db/web.img", "--", img, "--ipv4=10.0.0.2/24", "-l", "*:debug"}
			if !slices.Equal(argv, want) || env != nil {
				t.Errorf("argv = %q, env %q\nwant   %q", argv, env, want)
			}

			// The devices must be exactly the manifest's.
			for _, bad := range []*vmm.Spec{
				{Name: "web", MemMB: 64, Blocks: spec.Blocks},
				{Name: "web", MemMB: 64, Nets: spec.Nets, Blocks: append(slices.Clone(spec.Blocks), vmm.Block{Name: "extra", File: "/x"})},
				{Name: "web", MemMB: 64, Nets: []vmm.Net{{Name: "storage", Bridge: "br0"}}, Blocks: []vmm.Block{{Name: "service", File: "/x"}}},
			} {
				if err := tender.Check(img, bad); !errors.Is(err, vmm.ErrInvalid) {
					t.Errorf("devices %+v %+v: %v", bad.Nets, bad.Blocks, err)
				}
			}
			// An image for the other target, or no unikernel at all, is refused.
			other := solo5ELF(t, 3-abi, netAndBlock...)
			if err := tender.Check(other, spec); !errors.Is(err, vmm.ErrInvalid) || !strings.Contains(err.Error(), "not "+target) {
				t.Errorf("image for the other target: %v", err)
			}
			if err := tender.Check("/bin/sh", spec); !errors.Is(err, vmm.ErrInvalid) || !strings.Contains(err.Error(), "not a solo5 unikernel") {
				t.Errorf("/bin/sh: %v", err)
			}
			missing := &vmm.Solo5{Target: target, Binary: "/nonexistent/solo5-" + target}
			if err := missing.Check(img, spec); !errors.Is(err, vmm.ErrInvalid) || !strings.Contains(err.Error(), "--solo5-"+target+" PATH") {
				t.Errorf("missing tender: %v", err)
			}
		})
	}
}

func TestQEMUCommandLine(t *testing.T) {
	img := solo5ELF(t, 3, netAndBlock...)
	bin := "qemu-system-x86_64"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "/bin/true" // the command line is checked, not run
	}
	tender := &vmm.QEMU{Binary: bin}
	spec := &vmm.Spec{Name: "web", MemMB: 64, Args: []string{"--ipv4=10.0.0.2/24", "--verbose"},
		Nets: []vmm.Net{{Name: "service", Bridge: "br0"}}, Blocks: []vmm.Block{{Name: "storage", File: "/var/db/web.img"}}}
	if err := tender.Check(img, spec); err != nil {
		t.Fatal(err)
	}
	argv, _, err := tender.Command(&vmm.Launch{Image: img, Spec: spec, Taps: map[string]string{"service": "vmm3"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{bin, "-machine", "pc,accel=kvm:tcg", "-cpu", "max", "-m", "64",
		"-nodefaults", "-no-user-config", "-no-reboot", "-display", "none", "-serial", "stdio",
		"-kernel", img, "-append", "--ipv4=10.0.0.2/24 --verbose",
		"-netdev", "tap,id=service,ifname=vmm3,script=no,downscript=no", "-device", "virtio-net-pci,netdev=service,mac=" + vmm.MAC("web", "br0"),
		"-drive", "id=storage,file=/var/db/web.img,if=none,format=raw", "-device", "virtio-blk-pci,drive=storage"}
	if !slices.Equal(argv, want) {
		t.Errorf("argv = %q\nwant   %q", argv, want)
	}
	if err := tender.Check(solo5ELF(t, 1, netAndBlock...), spec); !errors.Is(err, vmm.ErrInvalid) {
		t.Errorf("hvt image on qemu: %v", err)
	}
	if err := tender.Check(img, &vmm.Spec{Name: "web", MemMB: 64, Args: []string{"a b"}, Nets: spec.Nets, Blocks: spec.Blocks}); !errors.Is(err, vmm.ErrInvalid) {
		t.Errorf("argument with a blank: %v", err)
	}
	if err := (&vmm.QEMU{Binary: "/nonexistent/qemu"}).Check(img, spec); !errors.Is(err, vmm.ErrInvalid) || !strings.Contains(err.Error(), "--qemu PATH") {
		t.Errorf("missing qemu: %v", err)
	}
}

func TestMAC(t *testing.T) {
	m := vmm.MAC("web", "br0")
	if !strings.HasPrefix(m, "00:80:41:") || len(m) != 17 || m != vmm.MAC("web", "br0") || m == vmm.MAC("web", "br1") || m == vmm.MAC("db", "br0") {
		t.Errorf("MAC = %s", m)
	}
}

// TestSolo5ThroughDaemon boots a solo5 image with the hvt tender, played
// by a script that prints its command line (no KVM nor solo5 here), with
// the CPU pinned by taskset.
func TestSolo5ThroughDaemon(t *testing.T) {
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("taskset not installed")
	}
	tender := filepath.Join(t.TempDir(), "solo5-hvt")
	os.WriteFile(tender, []byte("#!/bin/sh\necho \"$@\"\ngrep Cpus_allowed_list /proc/self/status\nexec sleep 60\n"), 0o755)
	taskset, _ := exec.LookPath("taskset")
	e := newEnv(t, func(c *vmm.Config) {
		c.Tenders = vmm.DefaultTenders()
		c.Tenders["solo5-hvt"] = &vmm.Solo5{Target: "hvt", Binary: tender}
		c.DefaultTender = "solo5-hvt"
		c.Taskset = taskset
	})
	img := solo5ELF(t, 1, vmm.Device{Name: "storage", Type: vmm.BlockBasic})
	b, _ := os.ReadFile(img)
	d := digest.Sum(b)
	e.gate.allow(d)
	disk := filepath.Join(t.TempDir(), "disk.img")
	os.WriteFile(disk, make([]byte, 4096), 0o600)
	spec := vmm.Spec{Name: "uk", MemMB: 16, Args: []string{"--hello"}, Blocks: []vmm.Block{{Name: "storage", File: disk}}}
	if _, err := e.create(vmm.Spec{Name: "uk", MemMB: 16}, img); !errors.Is(err, vmm.ErrInvalid) || !strings.Contains(err.Error(), "add --block storage:FILE") {
		t.Errorf("create without the manifest's block device: %v", err)
	}
	e.mustCreate(spec, img)
	want := []string{"--mem=16 --block:storage=" + disk + " -- " + filepath.Join(e.dir, "images", d.String()) + " --hello", "Cpus_allowed_list:\t0"}
	waitFor(t, "the tender's output", func() bool { return slices.Equal(e.console("uk", vmm.ConsoleQuery{}), want) })
}
