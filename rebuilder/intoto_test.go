package rebuilder

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/internal/tooltest"

	"github.com/google/uuid"
	intoto "github.com/in-toto/in-toto-golang/in_toto"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/ledger/event"
)

// intotoKey makes a key of alg as in-toto loads it from our PEM, and its
// public half for a layout.
func intotoKey(t *testing.T, alg attest.KeyAlgorithm) (priv, pub intoto.Key) {
	priv, pub, _ = intotoKeyPEM(t, alg)
	return priv, pub
}

// intotoKeyPEM is intotoKey with the public key's PEM, as the ledger lists
// registered keys.
func intotoKeyPEM(t *testing.T, alg attest.KeyAlgorithm) (priv, pub intoto.Key, pubPEM string) {
	t.Helper()
	p, err := attest.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	if priv, err = attest.LoadInTotoKey(p); err != nil {
		t.Fatalf("in-toto cannot load our %s key: %v", alg, err)
	}
	s, err := attest.LoadSigner(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub = priv
	pub.KeyVal = intoto.KeyVal{Public: priv.KeyVal.Public}
	return priv, pub, string(s.PublicKeyPEM())
}

// linkFixture is a recorded build, two rebuilders' in-toto keys, a layout
// (from Layout, signed with an RSA layout key that also signs the
// recorded link) and the directory of links.
type linkFixture struct {
	b          *event.BuildRecorded
	good       digest.Digest
	ka, kb     intoto.Key
	layout     *intoto.Metablock
	layoutPub  intoto.Key
	dir, links string
}

func newLinkFixture(t *testing.T, standing bool) *linkFixture {
	t.Helper()
	main := "bin/hello.hvt"
	f := &linkFixture{good: digest.Sum([]byte("image")), dir: t.TempDir()}
	f.links = filepath.Join(f.dir, "links")
	f.b = &event.BuildRecorded{Job: "hello", UUID: uuid.New(), Platform: "debian-12", Script: digest.Sum([]byte("make")),
		Artifacts:  []event.Artifact{{Path: main, SHA256: f.good, Size: 5}, {Path: "build-environment", SHA256: digest.Sum([]byte("env")), Size: 3}},
		MainBinary: &main}
	layoutPriv, layoutPub, layoutPEM := intotoKeyPEM(t, attest.RSA3072)
	f.layoutPub = layoutPub
	var kaPEM, kbPEM string
	f.ka, _, kaPEM = intotoKeyPEM(t, attest.ECDSAP256)
	f.kb, _, kbPEM = intotoKeyPEM(t, attest.Ed25519)
	keys := []LayoutKey{{"a", kaPEM}, {"b", kbPEM}, {"a again", kaPEM}}
	lmb, ids, err := Layout(f.b, keys, 2, LayoutKey{"layout", layoutPEM}, time.Now().Add(time.Hour))
	if standing {
		lmb, ids, err = StandingLayout(keys, 2, LayoutKey{"layout", layoutPEM}, time.Now().Add(time.Hour))
	}
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != f.ka.KeyID+","+f.kb.KeyID {
		t.Fatalf("layout key ids %v, in-toto's %s %s", ids, f.ka.KeyID, f.kb.KeyID)
	}
	if err := lmb.Sign(layoutPriv); err != nil {
		t.Fatal(err)
	}
	f.layout = lmb
	if err := lmb.Dump(filepath.Join(f.dir, "root.layout")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(f.dir, "layout.pub"), []byte(layoutPEM), 0o644)
	rec := RecordedLink(f.b)
	if err := rec.Sign(layoutPriv); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(f.links, 0o755)
	if err := rec.Dump(filepath.Join(f.links, fmt.Sprintf(intoto.LinkNameFormat, RecordedStep, layoutPriv.KeyID))); err != nil {
		t.Fatal(err)
	}
	return f
}

// link writes k's rebuild link with got as the main binary's digest.
func (f *linkFixture) link(t *testing.T, k intoto.Key, got digest.Digest) string {
	t.Helper()
	main := *f.b.MainBinary
	o := &Outcome{Build: f.b, Result: &Result{}, Verdict: attest.Reproduced,
		Comparison: Compare(f.b.Artifacts, []event.Artifact{{Path: main, SHA256: got, Size: 5}})}
	mb, err := Link(o, k)
	if err != nil {
		t.Fatal(err)
	}
	p, err := WriteLink(mb, f.links, k)
	if err != nil {
		t.Fatal(err)
	}
	if want := "rebuild." + k.KeyID[:8] + ".link"; filepath.Base(p) != want {
		t.Fatalf("link file %s, want %s", p, want)
	}
	return p
}

// cases runs verify over the fixture's cases: 2 agreeing rebuilds of the
// recorded bytes pass; an altered link, a missing one, disagreeing ones,
// two agreeing on other bytes than recorded, and two agreeing on fewer
// files than recorded fail.
func (f *linkFixture) cases(t *testing.T, verify func() error) {
	t.Helper()
	f.link(t, f.ka, f.good)
	pb := f.link(t, f.kb, f.good)
	if err := verify(); err != nil {
		t.Fatalf("2 agreeing rebuild links of the recorded bytes refused: %v", err)
	}
	raw, _ := os.ReadFile(pb)
	os.WriteFile(pb, []byte(strings.Replace(string(raw), f.good.String(), digest.Sum([]byte("x")).String(), 1)), 0o644)
	if err := verify(); err == nil {
		t.Fatal("an altered link verified")
	}
	os.Remove(pb)
	if err := verify(); err == nil {
		t.Fatal("one link of a 2-of-2 step verified")
	}
	other := digest.Sum([]byte("other bytes"))
	f.link(t, f.kb, other)
	if err := verify(); err == nil {
		t.Fatal("links with different products verified")
	}
	f.link(t, f.ka, other)
	if err := verify(); err == nil {
		t.Fatal("two rebuilds agreeing on other bytes than recorded verified")
	}
	for _, k := range []intoto.Key{f.ka, f.kb} {
		f.linkProducts(t, k, nil)
	}
	if err := verify(); err == nil {
		t.Fatal("two rebuilds agreeing on no files verified")
	}
}

// linkProducts writes k's rebuild link with exactly the given products.
func (f *linkFixture) linkProducts(t *testing.T, k intoto.Key, products []event.Artifact) {
	t.Helper()
	o := &Outcome{Build: f.b, Result: &Result{}, Verdict: attest.Differs, Comparison: Compare(f.b.Artifacts, products)}
	mb, err := Link(o, k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteLink(mb, f.links, k); err != nil {
		t.Fatal(err)
	}
}

// eachLayout runs f over a fixture with the per-build layout (Layout) and
// one with the standing layout (StandingLayout).
func eachLayout(t *testing.T, f func(*testing.T, *linkFixture)) {
	t.Run("per-build", func(t *testing.T) { f(t, newLinkFixture(t, false)) })
	t.Run("standing", func(t *testing.T) { f(t, newLinkFixture(t, true)) })
}

// TestLinkVerifiesWithInToto: in-toto-golang's own verifier (InTotoVerify)
// over Layout's layout and Link's links.
func TestLinkVerifiesWithInToto(t *testing.T) {
	eachLayout(t, func(t *testing.T, f *linkFixture) {
		f.cases(t, func() error {
			_, err := intoto.InTotoVerify(f.layout, map[string]intoto.Key{f.layoutPub.KeyID: f.layoutPub}, f.links, "", nil, nil, false)
			return err
		})
	})
}

// TestLinkVerifiesWithPythonInToto: the reference implementation (Python
// in-toto, Debian's in-toto-verify) over the same layouts and links.
func TestLinkVerifiesWithPythonInToto(t *testing.T) {
	commandVerifies(t, tooltest.InTotoVerify(t))
}

// TestLinkVerifiesWithInTotoGolangCLI: in-toto-golang's own command
// (in-toto-golang verify), a separate program, over the same layouts and
// links.
func TestLinkVerifiesWithInTotoGolangCLI(t *testing.T) {
	commandVerifies(t, tooltest.InTotoGolang(t), "verify")
}

// commandVerifies runs the fixture's cases with an in-toto verifier
// command: argv, then --layout, --layout-keys and --link-dir.
func commandVerifies(t *testing.T, argv ...string) {
	eachLayout(t, func(t *testing.T, f *linkFixture) {
		f.cases(t, func() error {
			args := append(argv[1:len(argv):len(argv)], "--layout", filepath.Join(f.dir, "root.layout"),
				"--layout-keys", filepath.Join(f.dir, "layout.pub"), "--link-dir", f.links)
			if out, err := exec.Command(argv[0], args...).CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
	})
}

// LoadInTotoKey gives P-384 keys the scheme Python in-toto expects.
func TestLoadInTotoKeyP384(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	ik, err := attest.LoadInTotoKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil || ik.Scheme != "ecdsa-sha2-nistp384" {
		t.Fatalf("P-384: %+v %v", ik.Scheme, err)
	}
}
