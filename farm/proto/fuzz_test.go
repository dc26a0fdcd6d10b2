package proto

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzUnmarshal checks that Unmarshal never panics, that it refuses with a
// *FormatError, and that whatever it accepts Marshal writes back byte for
// byte (DER is canonical) and decodes again to the same value.
func FuzzUnmarshal(f *testing.F) {
	for _, g := range goldens {
		f.Add(unhex(f, g.der))
	}
	for _, c := range roundTrips {
		if der, err := Marshal(c); err == nil && len(der) < 4096 {
			f.Add(der)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0xa6, 0x80, 0x05, 0x00, 0x00, 0x00})
	f.Add([]byte{0xad, 0x00})
	f.Add([]byte{0xa3, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := Unmarshal(der)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v is not a *FormatError", err, err)
			}
			if fe.Offset < 0 || fe.Offset > len(der) {
				t.Fatalf("error offset %d outside the %d-byte input: %v", fe.Offset, len(der), err)
			}
			return
		}
		enc, err := Marshal(c)
		if err != nil {
			t.Fatalf("Marshal refuses what Unmarshal accepted (%#v): %v", c, err)
		}
		if !bytes.Equal(enc, der) {
			t.Fatalf("re-encoding differs:\n  in %x\n out %x", der, enc)
		}
		c2, err := Unmarshal(enc)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("second decode = %#v, %v; want %#v", c2, err, c)
		}
	})
}
