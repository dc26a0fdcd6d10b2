// Package solo5 reads and writes the notes a solo5 unikernel carries in its
// ELF file: the device manifest (.note.solo5.manifest, struct mft of
// solo5's mft_abi.h) and the ABI note (.note.solo5.abi, elf_abi.h). It
// depends on the standard library only, so the VMM that boots images and
// the ledger's web pages that describe them share one parser
// (TestReadImageFromCompiledNotes checks it against the C compiler's
// layout; FuzzParseManifestNote, FuzzParseABINote).
package solo5

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// The solo5 ELF notes (solo5 include/solo5/mft_abi.h and elf_abi.h). A
// note is a standard ELF note: namesz, descsz and type as 32-bit words in
// the file's byte order, the name "Solo5\0" padded to 4 bytes, then the
// descriptor. The manifest's descriptor starts with 4 bytes of padding so
// that struct mft is 8-byte aligned within the note.
const (
	manifestSection = ".note.solo5.manifest"
	abiSection      = ".note.solo5.abi"
	noteOwner       = "Solo5"
	noteTypeMFT1    = 0x3154464d // "MFT1"
	noteTypeABI1    = 0x31494241 // "ABI1"

	mftVersion    = 1
	mftMaxEntries = 64
	mftNameSize   = 68  // bytes, including the terminating NUL
	mftEntrySize  = 104 // name[68], type u32, union u (16), union b (8), bool attached, padding
	mftAlign      = 8

	mftTypeBlockBasic    = 1
	mftTypeNetBasic      = 2
	mftTypeReservedFirst = 1 << 30
)

// DeviceType is the type of a device in a solo5 manifest.
type DeviceType string

// The device types solo5 defines.
const (
	NetBasic   DeviceType = "NET_BASIC"
	BlockBasic DeviceType = "BLOCK_BASIC"
)

// Device is one device a unikernel declares in its manifest.
type Device struct {
	Name string     `json:"name"`
	Type DeviceType `json:"type"`
}

// Manifest is a solo5 application manifest: the devices the unikernel
// needs, every one of which the tender must attach. Its JSON form is the
// one albatross and builder-web print:
//
//	{ "type": "solo5.manifest", "version": 1, "devices": [ { "name": "service", "type": "NET_BASIC" } ] }
type Manifest struct {
	Version int
	Devices []Device
}

// Names returns the names of the devices of type t, in manifest order.
func (m *Manifest) Names(t DeviceType) []string {
	var names []string
	for _, d := range m.Devices {
		if d.Type == t {
			names = append(names, d.Name)
		}
	}
	return names
}

type manifestJSON struct {
	Type    string   `json:"type"`
	Version int      `json:"version"`
	Devices []Device `json:"devices"`
}

// MarshalJSON writes the albatross/builder-web JSON form.
func (m Manifest) MarshalJSON() ([]byte, error) {
	devs := m.Devices
	if devs == nil {
		devs = []Device{}
	}
	return json.Marshal(manifestJSON{Type: "solo5.manifest", Version: m.Version, Devices: devs})
}

// UnmarshalJSON reads the JSON form; m is unchanged unless it is valid.
func (m *Manifest) UnmarshalJSON(b []byte) error {
	var j manifestJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.Type != "solo5.manifest" {
		return fmt.Errorf("manifest type %q, want solo5.manifest", j.Type)
	}
	out := Manifest{Version: j.Version}
	if len(j.Devices) > 0 {
		out.Devices = j.Devices
	}
	if err := out.validate(); err != nil {
		return err
	}
	*m = out
	return nil
}

func (m *Manifest) validate() error {
	if m.Version != mftVersion {
		return fmt.Errorf("manifest version %d, only %d is known", m.Version, mftVersion)
	}
	if len(m.Devices) > mftMaxEntries-1 {
		return fmt.Errorf("manifest has %d devices, at most %d are allowed", len(m.Devices), mftMaxEntries-1)
	}
	seen := map[string]bool{}
	for _, d := range m.Devices {
		if err := ValidDeviceName(d.Name); err != nil {
			return err
		}
		if d.Type != NetBasic && d.Type != BlockBasic {
			return fmt.Errorf("device %q has unknown type %q", d.Name, d.Type)
		}
		if seen[d.Name] {
			return fmt.Errorf("device name %q appears twice", d.Name)
		}
		seen[d.Name] = true
	}
	return nil
}

// ValidDeviceName says why s cannot name a device; it follows solo5's elftool: 1 to 67 ASCII letters and digits.
func ValidDeviceName(s string) error {
	if s == "" || len(s) > mftNameSize-1 {
		return fmt.Errorf("device name %q must have 1 to %d characters", s, mftNameSize-1)
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return fmt.Errorf("device name %q may only contain ASCII letters and digits", s)
		}
	}
	return nil
}

// ErrNoManifest means the image has no solo5 manifest note: it is not a
// solo5 unikernel.
var ErrNoManifest = errors.New("no solo5 manifest (.note.solo5.manifest) in the image")

func align(n, a int) int { return (n + a - 1) &^ (a - 1) }

// note splits one ELF note of the given owner and type into its
// descriptor, which must fill the rest of b.
func note(b []byte, order binary.ByteOrder, typ uint32) ([]byte, error) {
	if len(b) < 12 {
		return nil, fmt.Errorf("note is %d bytes, shorter than its header", len(b))
	}
	namesz, descsz, t := order.Uint32(b), order.Uint32(b[4:]), order.Uint32(b[8:])
	if t != typ {
		return nil, fmt.Errorf("note type %#x, want %#x", t, typ)
	}
	if namesz != uint32(len(noteOwner)+1) {
		return nil, fmt.Errorf("note owner has %d bytes, want %q", namesz, noteOwner)
	}
	off := 12 + align(int(namesz), 4)
	if len(b) < off || string(b[12:12+namesz]) != noteOwner+"\x00" {
		return nil, fmt.Errorf("note owner is not %q", noteOwner)
	}
	if uint64(descsz) > uint64(len(b)-off) {
		return nil, fmt.Errorf("note descriptor of %d bytes overruns the %d-byte section", descsz, len(b))
	}
	// A section may be padded to its alignment; anything else is junk.
	if rest := b[off+int(descsz):]; len(rest) >= mftAlign || bytes.Count(rest, []byte{0}) != len(rest) {
		return nil, fmt.Errorf("%d bytes after the note", len(rest))
	}
	return b[off : off+int(descsz)], nil
}

// ParseManifestNote parses the contents of a .note.solo5.manifest section
// (little-endian, as on every solo5 target). A reserved entry, which
// solo5 puts first, is not a device and is left out.
func ParseManifestNote(b []byte) (*Manifest, error) {
	return parseManifestNote(b, binary.LittleEndian)
}

func parseManifestNote(b []byte, order binary.ByteOrder) (*Manifest, error) {
	desc, err := note(b, order, noteTypeMFT1)
	if err != nil {
		return nil, fmt.Errorf("solo5 manifest: %w", err)
	}
	pad := align(20, mftAlign) - 20 // the descriptor starts at offset 20 of the note
	if len(desc) < pad+8 {
		return nil, fmt.Errorf("solo5 manifest: descriptor of %d bytes is too short", len(desc))
	}
	desc = desc[pad:]
	version, entries := order.Uint32(desc), order.Uint32(desc[4:])
	if version != mftVersion {
		return nil, fmt.Errorf("solo5 manifest: version %d, only %d is known", version, mftVersion)
	}
	if entries > mftMaxEntries {
		return nil, fmt.Errorf("solo5 manifest: %d entries, at most %d are allowed", entries, mftMaxEntries)
	}
	if want := 8 + int(entries)*mftEntrySize; len(desc) != want {
		return nil, fmt.Errorf("solo5 manifest: %d entries need %d bytes, the descriptor has %d", entries, want, len(desc))
	}
	m := &Manifest{Version: int(version)}
	for i := range int(entries) {
		e := desc[8+i*mftEntrySize : 8+(i+1)*mftEntrySize]
		name, _, ok := bytes.Cut(e[:mftNameSize], []byte{0})
		if !ok {
			return nil, fmt.Errorf("solo5 manifest: entry %d: name is not NUL-terminated", i)
		}
		switch t := order.Uint32(e[mftNameSize:]); t {
		case mftTypeReservedFirst:
			if i != 0 {
				return nil, fmt.Errorf("solo5 manifest: entry %d: reserved entry after the first", i)
			}
		case mftTypeNetBasic:
			m.Devices = append(m.Devices, Device{Name: string(name), Type: NetBasic})
		case mftTypeBlockBasic:
			m.Devices = append(m.Devices, Device{Name: string(name), Type: BlockBasic})
		default:
			return nil, fmt.Errorf("solo5 manifest: entry %d (%q): unknown device type %d", i, name, t)
		}
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("solo5 manifest: %w", err)
	}
	return m, nil
}

// AppendManifestNote appends m as the contents of a .note.solo5.manifest
// section, laid out as solo5's MFT1_NOTE_DECLARE_BEGIN does (with the
// reserved first entry). It is the inverse of ParseManifestNote.
func AppendManifestNote(dst []byte, m *Manifest) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	entries := 1 + len(m.Devices)
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, uint32(len(noteOwner)+1))
	dst = le.AppendUint32(dst, uint32(4+8+entries*mftEntrySize))
	dst = le.AppendUint32(dst, noteTypeMFT1)
	dst = append(dst, noteOwner+"\x00\x00\x00\x00\x00\x00\x00"[:8-len(noteOwner)]...)
	dst = append(dst, 0, 0, 0, 0)
	dst = le.AppendUint32(dst, mftVersion)
	dst = le.AppendUint32(dst, uint32(entries))
	entry := func(name string, typ uint32) {
		var e [mftEntrySize]byte
		copy(e[:], name)
		le.PutUint32(e[mftNameSize:], typ)
		dst = append(dst, e[:]...)
	}
	entry("", mftTypeReservedFirst)
	for _, d := range m.Devices {
		t := uint32(mftTypeBlockBasic)
		if d.Type == NetBasic {
			t = mftTypeNetBasic
		}
		entry(d.Name, t)
	}
	return dst, nil
}

// ABI is a solo5 image's ABI note: the target it was built for.
type ABI struct {
	Target  string // hvt, spt, virtio, muen, genode
	Version uint32
}

var abiTargets = map[uint32]string{1: "hvt", 2: "spt", 3: "virtio", 4: "muen", 5: "genode"}

// ParseABINote parses the contents of a .note.solo5.abi section.
func ParseABINote(b []byte) (*ABI, error) {
	desc, err := note(b, binary.LittleEndian, noteTypeABI1)
	if err != nil {
		return nil, fmt.Errorf("solo5 ABI: %w", err)
	}
	if len(desc) != 16 {
		return nil, fmt.Errorf("solo5 ABI: descriptor of %d bytes, want 16", len(desc))
	}
	t := binary.LittleEndian.Uint32(desc)
	name, ok := abiTargets[t]
	if !ok {
		return nil, fmt.Errorf("solo5 ABI: unknown target %d", t)
	}
	return &ABI{Target: name, Version: binary.LittleEndian.Uint32(desc[4:])}, nil
}

// Image is what the solo5 notes of an image file say.
type Image struct {
	Manifest *Manifest
	ABI      *ABI // nil when the image has no ABI note
}

// ReadImage reads the solo5 notes of an ELF file in-process. It returns
// an error wrapping ErrNoManifest for an ELF file without a manifest.
func ReadImage(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readImage(f)
}

func readImage(r io.ReaderAt) (*Image, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("not an ELF file: %w", err)
	}
	section := func(name string) ([]byte, error) {
		s := f.Section(name)
		if s == nil {
			return nil, nil
		}
		if s.Size > 1<<20 {
			return nil, fmt.Errorf("section %s has %d bytes, too large for a solo5 note", name, s.Size)
		}
		return s.Data()
	}
	b, err := section(manifestSection)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, ErrNoManifest
	}
	img := &Image{}
	if img.Manifest, err = parseManifestNote(b, f.ByteOrder); err != nil {
		return nil, err
	}
	if b, err = section(abiSection); err != nil {
		return nil, err
	} else if b != nil {
		if img.ABI, err = ParseABINote(b); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// MatchDevices reports whether the requested network and block device
// names are exactly the manifest's (albatross's manifest_devices_match),
// and if not, says which to pass.
func (m *Manifest) MatchDevices(nets, blocks []string) error {
	var problems []string
	check := func(t DeviceType, flag, value string, got []string) {
		want := m.Names(t)
		a, b := slices.Sorted(slices.Values(want)), slices.Sorted(slices.Values(got))
		if slices.Equal(a, b) {
			return
		}
		var missing, extra []string
		for _, n := range a {
			if !slices.Contains(b, n) {
				missing = append(missing, n)
			}
		}
		for _, n := range b {
			if !slices.Contains(a, n) {
				extra = append(extra, n)
			}
		}
		p := fmt.Sprintf("the image declares %s devices %s, you gave %s", t, list(a), list(b))
		for _, n := range missing {
			p += fmt.Sprintf("; add %s %s:%s", flag, n, value)
		}
		for _, n := range extra {
			p += fmt.Sprintf("; drop %s %s:…", flag, n)
		}
		problems = append(problems, p)
	}
	check(NetBasic, "--net", "BRIDGE", nets)
	check(BlockBasic, "--block", "FILE", blocks)
	if problems != nil {
		return &DeviceMismatchError{Problems: problems}
	}
	return nil
}

func list(s []string) string {
	if len(s) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// DeviceMismatchError says how the requested devices differ from the
// image's manifest.
type DeviceMismatchError struct {
	Problems []string
}

func (e *DeviceMismatchError) Error() string {
	msg := "the devices do not match the image's solo5 manifest (the device names are the unikernel's own, not the host's):"
	for _, p := range e.Problems {
		msg += "\n  " + p
	}
	return msg
}

// ErrDeviceMismatch is what every DeviceMismatchError is (errors.Is).
var ErrDeviceMismatch = errors.New("the devices do not match the image's solo5 manifest")

func (e *DeviceMismatchError) Is(target error) bool { return target == ErrDeviceMismatch }
