package checkpoint_test

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/ledger/checkpoint"
)

// TestSignOpen: a signed checkpoint opens with its key and origin into the
// same size and root; another key, another origin or one changed byte of
// the body is refused with ErrBad.
func TestSignOpen(t *testing.T) {
	const origin = "example.org/log"
	skey, vkey, err := checkpoint.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	root := [32]byte{1, 2, 3}
	cp, err := checkpoint.Sign(signer, origin, 42, root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := checkpoint.Open(cp.Note, origin, vkey)
	if err != nil || got.Size != 42 || got.Hash != root || got.Origin != origin || !bytes.Equal(got.Note, cp.Note) {
		t.Fatalf("Open: %+v %v", got, err)
	}
	_, other, err := checkpoint.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(cp.Note, []byte("\n42\n"), []byte("\n43\n"), 1)
	for name, c := range map[string]struct {
		note         []byte
		origin, vkey string
	}{
		"another key":    {cp.Note, origin, other},
		"another origin": {cp.Note, "example.org/other", vkey},
		"size changed":   {tampered, origin, vkey},
		"not a note":     {[]byte("hello\n"), origin, vkey},
		"bad key":        {cp.Note, origin, "not a key"},
	} {
		if _, err := checkpoint.Open(c.note, c.origin, c.vkey); !errors.Is(err, checkpoint.ErrBad) {
			t.Errorf("%s: %v, want ErrBad", name, err)
		}
	}
}
