package attest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buildledger/buildledger/internal/tooltest"

	"github.com/google/uuid"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/attest/rekorv2"
	"github.com/buildledger/buildledger/ledger/checkpoint"
)

func cosignPath(t *testing.T) string   { return tooltest.Cosign(t) }
func cosignV3Path(t *testing.T) string { return tooltest.CosignV3(t) }

// eachCosign runs f as a subtest with cosign v2 and with cosign v3.
func eachCosign(t *testing.T, f func(t *testing.T, cosign string)) {
	t.Run("v2", func(t *testing.T) { f(t, cosignPath(t)) })
	t.Run("v3", func(t *testing.T) { f(t, cosignV3Path(t)) })
}

// cosignV2 reports whether cosign is a v2 release (whose bundle
// verification needs --new-bundle-format and --trusted-root).
func cosignV2(t *testing.T, cosign string) bool {
	t.Helper()
	out, _ := runCosign(t, cosign, nil, "version")
	return strings.Contains(out, "v2.")
}

// emptyTrustedRoot writes a trusted root with no authorities or logs: all a
// key-based verification of a bundle without log entries needs.
func emptyTrustedRoot(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(p, []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCosign(t *testing.T, cosign string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cosign, args...)
	// Offline: no TUF root, no Rekor, no home directory state.
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "TUF_ROOT=" + t.TempDir(), "PATH=/usr/bin:/bin"}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCosignVerifiesEnvelopes is the README's command: cosign
// verify-blob-attestation, offline, accepts our envelopes for every key
// algorithm against the artifact, and rejects the wrong artifact, the wrong
// key and the wrong predicate type.
func TestCosignVerifiesEnvelopes(t *testing.T) { eachCosign(t, testCosignVerifiesEnvelopes) }

func testCosignVerifiesEnvelopes(t *testing.T, cosign string) {
	dir := t.TempDir()
	blob := filepath.Join(dir, "hello.hvt")
	content := []byte("a unikernel image\n")
	if err := os.WriteFile(blob, content, 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.hvt")
	if err := os.WriteFile(other, []byte("something else\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &attest.Rebuild{
		Subjects: []attest.Subject{{Name: "bin/hello.hvt", SHA256: attest.Sum(content)}},
		Job:      "hello", Build: uuid.New(), Platform: "debian-12", LogIndex: 7,
		Inputs:  []attest.Input{{Name: attest.InputScript, SHA256: attest.Sum([]byte("make"))}},
		Verdict: attest.Reproduced, BuilderID: "https://rebuilder.example/a",
		StartedOn: time.Unix(1.7e9, 0), FinishedOn: time.Unix(1.7e9+60, 0),
	}
	st, err := r.Statement()
	if err != nil {
		t.Fatal(err)
	}
	var wrongPub string
	for _, alg := range []attest.KeyAlgorithm{attest.ECDSAP256, attest.Ed25519, attest.RSA2048} {
		t.Run(string(alg), func(t *testing.T) {
			p, err := attest.GenerateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			s, err := attest.LoadSigner(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			env, err := attest.Sign(context.Background(), st, s)
			if err != nil {
				t.Fatal(err)
			}
			envFile, pub := filepath.Join(dir, string(alg)+".dsse.json"), filepath.Join(dir, string(alg)+".pub")
			os.WriteFile(envFile, env, 0o644)
			os.WriteFile(pub, s.PublicKeyPEM(), 0o644)
			verify := func(key, typ, artifact string) (string, error) {
				return runCosign(t, cosign, nil, "verify-blob-attestation", "--key", key, "--signature", envFile,
					"--type", typ, "--insecure-ignore-tlog", artifact)
			}
			if out, err := verify(pub, "slsaprovenance1", blob); err != nil || !strings.Contains(out, "Verified OK") {
				t.Fatalf("cosign rejects our envelope: %v\n%s", err, out)
			}
			if out, err := verify(pub, "https://slsa.dev/provenance/v1", blob); err != nil {
				t.Fatalf("cosign with the predicate type URI: %v\n%s", err, out)
			}
			if out, err := verify(pub, "slsaprovenance1", other); err == nil {
				t.Fatalf("cosign accepted another artifact:\n%s", out)
			}
			if out, err := verify(pub, "spdxjson", blob); err == nil {
				t.Fatalf("cosign accepted another predicate type:\n%s", out)
			}
			if wrongPub != "" {
				if out, err := verify(wrongPub, "slsaprovenance1", blob); err == nil {
					t.Fatalf("cosign accepted another key:\n%s", out)
				}
			}
			// The same envelope as a Sigstore bundle v0.3 (--bundle; cosign
			// v2 needs --new-bundle-format and a trusted root, here empty:
			// the bundle carries no log entry, so --insecure-ignore-tlog).
			bundle, err := attest.Bundle(env, s.KeyID())
			if err != nil {
				t.Fatal(err)
			}
			bundleFile := filepath.Join(dir, string(alg)+".sigstore.json")
			os.WriteFile(bundleFile, bundle, 0o644)
			verifyBundle := func(key, artifact string) (string, error) {
				args := []string{"verify-blob-attestation", "--key", key, "--bundle", bundleFile, "--type", "slsaprovenance1", "--insecure-ignore-tlog"}
				if cosignV2(t, cosign) {
					args = append(args, "--new-bundle-format", "--trusted-root", emptyTrustedRoot(t))
				}
				return runCosign(t, cosign, nil, append(args, artifact)...)
			}
			if out, err := verifyBundle(pub, blob); err != nil || !strings.Contains(out, "Verified OK") {
				t.Fatalf("cosign rejects our bundle: %v\n%s", err, out)
			}
			if out, err := verifyBundle(pub, other); err == nil {
				t.Fatalf("cosign accepted our bundle for another artifact:\n%s", out)
			}
			if wrongPub != "" {
				if out, err := verifyBundle(wrongPub, blob); err == nil {
					t.Fatalf("cosign accepted our bundle with another key:\n%s", out)
				}
			}
			wrongPub = pub
		})
	}
}

// cosignAttestSetup makes what cosign attest-blob needs: a cosign key pair
// (encrypted, password in pw) in dir, an artifact and a predicate file.
func cosignAttestSetup(t *testing.T, cosign string) (dir string, pw []string, blob, pred string) {
	t.Helper()
	dir = t.TempDir()
	pw = []string{"COSIGN_PASSWORD=correct horse"}
	if out, err := runCosign(t, cosign, pw, "generate-key-pair", "--output-key-prefix", filepath.Join(dir, "cosign")); err != nil {
		t.Fatalf("generate-key-pair: %v\n%s", err, out)
	}
	blob = filepath.Join(dir, "hello.hvt")
	os.WriteFile(blob, []byte("a unikernel image\n"), 0o644)
	pred = filepath.Join(dir, "pred.json")
	os.WriteFile(pred, []byte(`{"buildDefinition":{"buildType":"https://example.com/t","externalParameters":{}},"runDetails":{"builder":{"id":"https://example.com/b"}}}`), 0o644)
	return dir, pw, blob, pred
}

// TestCosignAttestationsVerify goes the other way: an attestation made by
// cosign attest-blob with a cosign-generated (encrypted) key verifies with
// Verify after LoadSigner/LoadVerifier read cosign's key files. cosign v2
// only: v3 writes bundles (TestCosignBundleAccepted), not bare envelopes.
func TestCosignAttestationsVerify(t *testing.T) {
	cosign := cosignPath(t)
	dir, pw, blob, pred := cosignAttestSetup(t, cosign)
	bundle := filepath.Join(dir, "att.json")
	if out, err := runCosign(t, cosign, pw, "attest-blob", "--key", filepath.Join(dir, "cosign.key"), "--predicate", pred,
		"--type", "slsaprovenance1", "--tlog-upload=false", "--output-signature", bundle, "--yes", blob); err != nil {
		t.Fatalf("attest-blob: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	// cosign v2 writes the envelope base64-encoded with --output-signature.
	env := raw
	if dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw))); err == nil && json.Valid(dec) {
		env = dec
	}
	pubPEM, err := os.ReadFile(filepath.Join(dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := attest.LoadVerifier(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	got, err := attest.Verify(env, v)
	if err != nil {
		t.Fatalf("our verifier rejects cosign's attestation: %v\n%s", err, env)
	}
	if got.PredicateType != attest.PredicateType || len(got.Subjects) != 1 || got.Subjects[0].SHA256 != attest.Sum([]byte("a unikernel image\n")) {
		t.Fatalf("verified: %+v", got)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := attest.LoadSigner(keyPEM, func() ([]byte, error) { return []byte("correct horse"), nil })
	if err != nil {
		t.Fatalf("cosign's encrypted key: %v", err)
	}
	if s.KeyID() != v.KeyID() {
		t.Fatalf("key ids of cosign.key and cosign.pub differ")
	}
}

// TestCosignBundleAccepted: a Sigstore bundle v0.3 written by cosign
// attest-blob --bundle (the format cosign v3 writes by default) yields the
// envelope inside, which verifies with cosign's key.
func TestCosignBundleAccepted(t *testing.T) { eachCosign(t, testCosignBundleAccepted) }

func testCosignBundleAccepted(t *testing.T, cosign string) {
	dir, pw, blob, pred := cosignAttestSetup(t, cosign)
	bundle := filepath.Join(dir, "att.sigstore.json")
	args := []string{"attest-blob", "--key", filepath.Join(dir, "cosign.key"), "--predicate", pred,
		"--type", "slsaprovenance1", "--tlog-upload=false", "--bundle", bundle, "--yes", blob}
	if cosignV2(t, cosign) {
		args = append(args[:1], append([]string{"--new-bundle-format"}, args[1:]...)...)
	} else {
		// v3 signs with a signing config fetched online unless told not to.
		args = append(args[:1], append([]string{"--use-signing-config=false"}, args[1:]...)...)
	}
	if out, err := runCosign(t, cosign, pw, args...); err != nil {
		t.Fatalf("attest-blob: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if !attest.IsBundle(raw) {
		t.Fatalf("not recognised as a bundle: %.200s", raw)
	}
	env, err := attest.EnvelopeOfBundle(raw)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, _ := os.ReadFile(filepath.Join(dir, "cosign.pub"))
	v, err := attest.LoadVerifier(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	got, err := attest.Verify(env, v)
	if err != nil || len(got.Subjects) != 1 || got.Subjects[0].SHA256 != attest.Sum([]byte("a unikernel image\n")) {
		t.Fatalf("cosign's bundle: %+v %v", got, err)
	}
}

// TestCosignVerifiesInclusion: a bundle whose envelope is an entry of a
// Rekor v2 style log (package rekorv2), with its inclusion proof and a
// checkpoint signed by the log key, verifies with cosign against the
// log's trusted root, the log check on (no --insecure-ignore-tlog); an
// altered proof, another log's trusted root or another artifact fail.
func TestCosignVerifiesInclusion(t *testing.T) { eachCosign(t, testCosignVerifiesInclusion) }

func testCosignVerifiesInclusion(t *testing.T, cosign string) {
	dir := t.TempDir()
	content := []byte("a unikernel image\n")
	blob := filepath.Join(dir, "hello.hvt")
	os.WriteFile(blob, content, 0o644)
	other := filepath.Join(dir, "other.hvt")
	os.WriteFile(other, []byte("other bytes\n"), 0o644)
	r := &attest.Rebuild{Subjects: []attest.Subject{{Name: "bin/hello.hvt", SHA256: attest.Sum(content)}},
		Job: "hello", Build: uuid.New(), Platform: "debian-12", LogIndex: 7, Verdict: attest.Reproduced,
		BuilderID: "https://rebuilder.example/a"}
	st, err := r.Statement()
	if err != nil {
		t.Fatal(err)
	}
	const base = "https://ledger.example.org/attestation-log"
	newLog := func() (rekorv2.Log, note.Signer) {
		skey, vkey, err := checkpoint.GenerateKey("ledger.example.org")
		if err != nil {
			t.Fatal(err)
		}
		signer, err := note.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := rekorv2.KeyOfNoteVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		return rekorv2.Log{BaseURL: base, Key: pub, ValidFrom: time.Unix(1.7e9, 0)}, signer
	}
	lg, signer := newLog()
	other2, _ := newLog()
	for _, alg := range []attest.KeyAlgorithm{attest.ECDSAP256, attest.Ed25519, attest.RSA2048} {
		t.Run(string(alg), func(t *testing.T) {
			p, _ := attest.GenerateKey(alg)
			s, err := attest.LoadSigner(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			env, err := attest.Sign(context.Background(), st, s)
			if err != nil {
				t.Fatal(err)
			}
			entry, err := rekorv2.Entry(env, s.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			tree := testonly.New(rfc6962.DefaultHasher)
			tree.AppendData([]byte("e0"), []byte("e1"), entry, []byte("e3"), []byte("e4"))
			hashes, err := tree.InclusionProof(2, tree.Size())
			if err != nil {
				t.Fatal(err)
			}
			cp, err := checkpoint.Sign(signer, "ledger.example.org", tree.Size(), [32]byte(tree.Hash()))
			if err != nil {
				t.Fatal(err)
			}
			pub := filepath.Join(dir, string(alg)+".pub")
			os.WriteFile(pub, s.PublicKeyPEM(), 0o644)
			write := func(name string, b []byte) string {
				p := filepath.Join(dir, string(alg)+"-"+name)
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			}
			trusted, err := lg.TrustedRoot()
			if err != nil {
				t.Fatal(err)
			}
			otherRoot, _ := other2.TrustedRoot()
			bundle := func(h [][]byte) string {
				b, err := lg.Bundle(env, s.KeyID(), entry, rekorv2.Proof{Index: 2, Size: tree.Size(), Root: tree.Hash(), Hashes: h, Checkpoint: cp.Note})
				if err != nil {
					t.Fatal(err)
				}
				return write(fmt.Sprintf("bundle-%x.json", h[0][:4]), b)
			}
			good := bundle(hashes)
			verify := func(bundle, root, artifact string) (string, error) {
				args := []string{"verify-blob-attestation", "--key", pub, "--bundle", bundle, "--trusted-root", root, "--type", "slsaprovenance1"}
				if cosignV2(t, cosign) {
					args = append(args, "--new-bundle-format")
				}
				return runCosign(t, cosign, nil, append(args, artifact)...)
			}
			root := write("trusted_root.json", trusted)
			if out, err := verify(good, root, blob); err != nil || !strings.Contains(out, "Verified OK") {
				t.Fatalf("cosign rejects the bundle with inclusion: %v\n%s\nentry %s", err, out, entry)
			}
			if out, err := verify(good, root, other); err == nil {
				t.Fatalf("another artifact verified:\n%s", out)
			}
			if out, err := verify(good, write("other_root.json", otherRoot), blob); err == nil {
				t.Fatalf("another log's trusted root verified:\n%s", out)
			}
			altered := append([][]byte{}, hashes...)
			altered[0] = append([]byte{}, hashes[0]...)
			altered[0][0] ^= 1
			if out, err := verify(bundle(altered), root, blob); err == nil {
				t.Fatalf("an altered inclusion proof verified:\n%s", out)
			}
		})
	}
}
