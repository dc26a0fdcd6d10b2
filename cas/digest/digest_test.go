package digest_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/buildledger/buildledger/cas/digest"
)

func TestDigestText(t *testing.T) {
	abc := digest.Sum([]byte("abc"))
	const abcHex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if abc.String() != abcHex {
		t.Fatalf("Sum(abc) = %s", abc)
	}
	for _, tc := range []struct {
		in      string
		ok      bool
		errPart string
	}{
		{abcHex, true, ""},
		{strings.Repeat("0", 64), true, ""},
		{strings.ToUpper(abcHex), false, "uppercase"},
		{abcHex[:63] + "F", false, "uppercase"},
		{"sha256:" + abcHex, false, "prefix"},
		{abcHex[:63], false, "63 characters"},
		{abcHex + "0", false, "65 characters"},
		{"", false, "0 characters"},
		{abcHex[:62] + "zz", false, "non-hex"},
		{abcHex[:63] + " ", false, "non-hex"},
		{" " + abcHex[:63], false, "non-hex"},
		{abcHex[:62] + "é", false, "non-hex"},
	} {
		d, err := digest.ParseDigest(tc.in)
		switch {
		case tc.ok && (err != nil || d.String() != tc.in):
			t.Errorf("ParseDigest(%q) = %s, %v", tc.in, d, err)
		case !tc.ok && err == nil:
			t.Errorf("ParseDigest(%q) succeeded", tc.in)
		case !tc.ok && !strings.Contains(err.Error(), tc.errPart):
			t.Errorf("ParseDigest(%q): error %q does not mention %q", tc.in, err, tc.errPart)
		}
	}
	if !(digest.Digest{}).IsZero() || abc.IsZero() {
		t.Error("IsZero is wrong")
	}
}

func TestDigestJSON(t *testing.T) {
	type doc struct{ D digest.Digest }
	in := doc{digest.Sum([]byte("x"))}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"D":"` + in.D.String() + `"}`; string(b) != want {
		t.Fatalf("Marshal = %s, want %s", b, want)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("Unmarshal = %v, %v", out, err)
	}
	// A failed decode leaves the value alone.
	keep := digest.Sum([]byte("keep"))
	d := keep
	if err := d.UnmarshalText([]byte("SHA256:" + keep.String())); err == nil {
		t.Fatal("UnmarshalText accepted a prefixed digest")
	}
	if d != keep {
		t.Fatal("failed UnmarshalText changed the digest")
	}
	if err := json.Unmarshal([]byte(`{"D":"abc"}`), &out); err == nil || out != in {
		t.Fatalf("Unmarshal of a short digest: %v, %v", out, err)
	}
}

func FuzzParseDigest(f *testing.F) {
	f.Add(digest.Sum(nil).String())
	f.Add("sha256:" + digest.Sum(nil).String())
	f.Add(strings.Repeat("A", 64))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := digest.ParseDigest(s)
		if err != nil {
			if !d.IsZero() {
				t.Fatal("error with a non-zero digest")
			}
			var u digest.Digest
			if u.UnmarshalText([]byte(s)) == nil {
				t.Fatal("UnmarshalText accepts what ParseDigest refuses")
			}
			return
		}
		if d.String() != s {
			t.Fatalf("ParseDigest(%q).String() = %q", s, d)
		}
		b, _ := d.MarshalText()
		var u digest.Digest
		if err := u.UnmarshalText(b); err != nil || u != d {
			t.Fatalf("text round trip: %v", err)
		}
	})
}
