package orb

import (
	"os"
	"testing"
)

func TestScratch(t *testing.T) {
	data, _ := os.ReadFile("testdata/ts2ocaml.opam-switch")
	s, err := ParseSwitch(data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Format()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", out)
}
