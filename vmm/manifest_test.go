package vmm_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/vmm"
	"github.com/buildledger/buildledger/vmm/solo5"
)

// solo5C declares the notes as solo5's mft_abi.h and elf_abi.h do, with
// the C compiler laying out the structures: an independent check of the
// offsets the parser assumes.
const solo5C = `
#include <stdint.h>
#include <stdbool.h>
struct mft_entry {
    char name[68];
    uint32_t type;
    union { struct { uint64_t capacity; uint16_t block_size; } b; struct { uint8_t mac[6]; uint16_t mtu; } n; } u;
    union { int hostfd; void *data; } b;
    bool attached;
};
_Static_assert(sizeof(struct mft_entry) == 104, "mft_entry");
struct mft { uint32_t version; uint32_t entries; struct mft_entry e[%d]; };
struct nhdr { uint32_t n_namesz, n_descsz, n_type; char n_name[8]; };
struct mft1_note { struct nhdr h; struct mft m; };
const struct mft1_note __solo5_mft1_note __attribute__ ((section (".note.solo5.manifest"), aligned(4))) = {
    .h = { 6, sizeof(struct mft1_note) - sizeof(struct nhdr), 0x3154464d, "Solo5" },
    .m = { 1, %d, { { .name = "", .type = 1U << 30 }, %s } },
};
struct abi1_note { struct nhdr h; struct { uint32_t target, version, r0, r1; } i; };
%s
int main(void) { return 0; }
`

const abiC = `const struct abi1_note __solo5_abi1_note __attribute__ ((section (".note.solo5.abi"), aligned(4))) = {
    .h = { 6, sizeof(struct abi1_note) - sizeof(struct nhdr), 0x31494241, "Solo5" }, .i = { %d, 2, 0, 0 } };`

// solo5ELF compiles an ELF executable with a solo5 manifest declaring
// devs and, if target > 0, an ABI note (1 hvt, 2 spt, 3 virtio).
func solo5ELF(t testing.TB, target int, devs ...vmm.Device) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	var entries []string
	for _, d := range devs {
		typ := 1
		if d.Type == vmm.NetBasic {
			typ = 2
		}
		entries = append(entries, fmt.Sprintf("{ .name = %q, .type = %d }", d.Name, typ))
	}
	abi := ""
	if target > 0 {
		abi = fmt.Sprintf(abiC, target)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "u.c")
	n := len(devs) + 1
	if err := os.WriteFile(src, fmt.Appendf(nil, solo5C, n, n, strings.Join(entries, ", "), abi), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "unikernel")
	if b, err := exec.Command("gcc", "-O0", "-o", out, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return out
}

func TestReadImageFromCompiledNotes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target int
		devs   []vmm.Device
		abi    string
	}{
		{"hello", 1, nil, "hvt"},
		{"net+block spt", 2, []vmm.Device{{Name: "service", Type: vmm.NetBasic}, {Name: "storage", Type: vmm.BlockBasic}}, "spt"},
		{"no abi note", 0, []vmm.Device{{Name: "a1", Type: vmm.BlockBasic}, {Name: "b2", Type: vmm.BlockBasic}, {Name: "n", Type: vmm.NetBasic}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := vmm.ReadImage(solo5ELF(t, tc.target, tc.devs...))
			if err != nil {
				t.Fatal(err)
			}
			if img.Manifest.Version != 1 || !reflect.DeepEqual(img.Manifest.Devices, tc.devs) {
				t.Errorf("manifest = %+v, want devices %+v", img.Manifest, tc.devs)
			}
			if tc.abi == "" {
				if img.ABI != nil {
					t.Errorf("ABI = %+v, want none", img.ABI)
				}
			} else if img.ABI == nil || img.ABI.Target != tc.abi || img.ABI.Version != 2 {
				t.Errorf("ABI = %+v, want %s version 2", img.ABI, tc.abi)
			}
		})
	}
}

// TestAppendManifestNoteInELF puts a note written by AppendManifestNote
// into a compiled executable with objcopy and reads it back.
func TestAppendManifestNoteInELF(t *testing.T) {
	if _, err := exec.LookPath("objcopy"); err != nil {
		t.Skip("objcopy not installed")
	}
	plain := solo5ELF(t, 0) // any executable; its manifest section is replaced
	m := &vmm.Manifest{Version: 1, Devices: []vmm.Device{{Name: "service", Type: vmm.NetBasic}, {Name: "data", Type: vmm.BlockBasic}}}
	b, err := vmm.AppendManifestNote(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	noteFile, out := filepath.Join(dir, "note"), filepath.Join(dir, "u")
	if err := os.WriteFile(noteFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("objcopy", "--remove-section=.note.solo5.manifest",
		"--add-section", ".note.solo5.manifest="+noteFile, "--set-section-flags", ".note.solo5.manifest=alloc,readonly", plain, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, b)
	}
	img, err := vmm.ReadImage(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(img.Manifest, m) {
		t.Errorf("read %+v, wrote %+v", img.Manifest, m)
	}
}

func TestReadImageNotSolo5(t *testing.T) {
	if _, err := vmm.ReadImage("/bin/sh"); !errors.Is(err, vmm.ErrNoManifest) {
		t.Errorf("/bin/sh: err = %v, want ErrNoManifest", err)
	}
	script := filepath.Join(t.TempDir(), "s")
	os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755)
	if _, err := vmm.ReadImage(script); err == nil || errors.Is(err, vmm.ErrNoManifest) {
		t.Errorf("script: err = %v, want not an ELF file", err)
	}
}

func TestManifestNoteRoundTrip(t *testing.T) {
	for _, m := range []*vmm.Manifest{
		{Version: 1},
		{Version: 1, Devices: []vmm.Device{{Name: "service", Type: vmm.NetBasic}}},
		{Version: 1, Devices: []vmm.Device{{Name: "storage", Type: vmm.BlockBasic}, {Name: strings.Repeat("x", 67), Type: vmm.NetBasic}}},
	} {
		b, err := vmm.AppendManifestNote(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := vmm.ParseManifestNote(b)
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
		j, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back vmm.Manifest
		if err := json.Unmarshal(j, &back); err != nil || !reflect.DeepEqual(&back, m) {
			t.Errorf("JSON round trip of %s: %+v, %v", j, back, err)
		}
	}
}

func TestManifestNoteInvalid(t *testing.T) {
	good, _ := vmm.AppendManifestNote(nil, &vmm.Manifest{Version: 1, Devices: []vmm.Device{{Name: "service", Type: vmm.NetBasic}}})
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	entry := 20 + 4 + 8 + 104 // the first device entry
	for name, b := range map[string][]byte{
		"empty":          nil,
		"short header":   good[:11],
		"wrong type":     mutate(func(b []byte) []byte { b[8] = 'X'; return b }),
		"wrong owner":    mutate(func(b []byte) []byte { b[12] = 's'; return b }),
		"namesz":         mutate(func(b []byte) []byte { b[0] = 7; return b }),
		"descsz overrun": mutate(func(b []byte) []byte { b[4] += 8; return b }),
		"truncated":      good[:len(good)-1],
		"trailing junk":  append(append([]byte(nil), good...), 1),
		"version":        mutate(func(b []byte) []byte { b[24] = 2; return b }),
		"entries":        mutate(func(b []byte) []byte { b[28] = 3; return b }),
		"too many":       mutate(func(b []byte) []byte { b[28] = 65; return b }),
		"unterminated":   mutate(func(b []byte) []byte { copy(b[entry:entry+68], strings.Repeat("a", 68)); return b }),
		"empty name":     mutate(func(b []byte) []byte { b[entry] = 0; return b }),
		"bad name":       mutate(func(b []byte) []byte { b[entry] = '-'; return b }),
		"unknown type":   mutate(func(b []byte) []byte { b[entry+68] = 9; return b }),
		"late reserved":  mutate(func(b []byte) []byte { b[entry+68], b[entry+71] = 0, 0x40; return b }),
		"duplicate": func() []byte {
			b, _ := vmm.AppendManifestNote(nil, &vmm.Manifest{Version: 1, Devices: []vmm.Device{{Name: "a", Type: vmm.NetBasic}, {Name: "b", Type: vmm.NetBasic}}})
			b[entry+104] = 'a'
			return b
		}(),
	} {
		if m, err := vmm.ParseManifestNote(b); err == nil {
			t.Errorf("%s: parsed %+v, want an error", name, m)
		}
	}
	// Zero padding up to the section's alignment is allowed.
	if _, err := vmm.ParseManifestNote(append(append([]byte(nil), good...), 0, 0, 0, 0)); err != nil {
		t.Errorf("padded: %v", err)
	}
}

// TestManifestJSON reads the manifest as albatross and builder-web print
// it (shared/samples/robur/solo5-manifest-abi-examples.txt).
func TestManifestJSON(t *testing.T) {
	const sample = `{ "type": "solo5.manifest", "version": 1, "devices": [ { "name": "service", "type": "NET_BASIC" }, { "name": "storage", "type": "BLOCK_BASIC" } ] }`
	var m vmm.Manifest
	if err := json.Unmarshal([]byte(sample), &m); err != nil {
		t.Fatal(err)
	}
	want := vmm.Manifest{Version: 1, Devices: []vmm.Device{{Name: "service", Type: vmm.NetBasic}, {Name: "storage", Type: vmm.BlockBasic}}}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got %+v", m)
	}
	out, _ := json.Marshal(vmm.Manifest{Version: 1})
	if string(out) != `{"type":"solo5.manifest","version":1,"devices":[]}` {
		t.Errorf("empty manifest: %s", out)
	}
	for _, bad := range []string{`{"type":"solo5.abi","version":1,"devices":[]}`, `{"type":"solo5.manifest","version":1,"devices":[{"name":"x","type":"GPU"}]}`} {
		if err := json.Unmarshal([]byte(bad), &m); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestMatchDevices(t *testing.T) {
	m := &vmm.Manifest{Version: 1, Devices: []vmm.Device{{Name: "service", Type: vmm.NetBasic}, {Name: "storage", Type: vmm.BlockBasic}}}
	if err := m.MatchDevices([]string{"service"}, []string{"storage"}); err != nil {
		t.Errorf("exact match: %v", err)
	}
	for _, tc := range []struct {
		nets, blocks []string
		want         string
	}{
		{nil, []string{"storage"}, "add --net service:BRIDGE"},
		{[]string{"service", "extra"}, []string{"storage"}, "drop --net extra"},
		{[]string{"service"}, nil, "add --block storage:FILE"},
		{[]string{"storage"}, []string{"service"}, "add --net service:BRIDGE; drop --net storage"},
	} {
		err := m.MatchDevices(tc.nets, tc.blocks)
		if !errors.Is(err, solo5.ErrDeviceMismatch) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("nets %v blocks %v: %v, want %q", tc.nets, tc.blocks, err, tc.want)
		}
	}
}

func FuzzParseManifestNote(f *testing.F) {
	for _, m := range []*vmm.Manifest{{Version: 1}, {Version: 1, Devices: []vmm.Device{{Name: "service", Type: vmm.NetBasic}, {Name: "storage", Type: vmm.BlockBasic}}}} {
		b, _ := vmm.AppendManifestNote(nil, m)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := vmm.ParseManifestNote(b)
		if err != nil {
			return
		}
		// Whatever parses must re-encode and parse to the same manifest.
		again, err := vmm.AppendManifestNote(nil, m)
		if err != nil {
			t.Fatalf("parsed %+v does not encode: %v", m, err)
		}
		m2, err := vmm.ParseManifestNote(again)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-encoded %+v parses to %+v, %v", m, m2, err)
		}
	})
}

func FuzzParseABINote(f *testing.F) {
	f.Add([]byte("\x06\x00\x00\x00\x10\x00\x00\x00ABI1Solo5\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		vmm.ParseABINote(b)
	})
}
