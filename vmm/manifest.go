package vmm

import "github.com/buildledger/buildledger/vmm/solo5"

// The solo5 notes of an image (package solo5) as the VMM speaks of them.
type (
	DeviceType          = solo5.DeviceType
	Device              = solo5.Device
	Manifest            = solo5.Manifest
	ABI                 = solo5.ABI
	Image               = solo5.Image
	DeviceMismatchError = solo5.DeviceMismatchError
)

// The device types solo5 defines.
const (
	NetBasic   = solo5.NetBasic
	BlockBasic = solo5.BlockBasic
)

// ErrNoManifest means the image has no solo5 manifest note.
var ErrNoManifest = solo5.ErrNoManifest

// ReadImage reads the solo5 notes of an ELF file (see solo5.ReadImage).
func ReadImage(path string) (*Image, error) { return solo5.ReadImage(path) }

// ParseManifestNote parses a .note.solo5.manifest section (see solo5).
func ParseManifestNote(b []byte) (*Manifest, error) { return solo5.ParseManifestNote(b) }

// ParseABINote parses a .note.solo5.abi section (see solo5).
func ParseABINote(b []byte) (*ABI, error) { return solo5.ParseABINote(b) }

// AppendManifestNote appends m as a .note.solo5.manifest section's
// contents (see solo5).
func AppendManifestNote(dst []byte, m *Manifest) ([]byte, error) {
	return solo5.AppendManifestNote(dst, m)
}
