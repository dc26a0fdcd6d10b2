package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Signer signs attestations with a private key through a sigstore signer.
// The algorithm follows the key, as cosign chooses it: ECDSA P-256 with
// SHA-256 (P-384 with SHA-384, P-521 with SHA-512), Ed25519 (pure), RSA
// 2048/3072/4096 PKCS #1 v1.5 with SHA-256.
type Signer struct {
	sv  signature.SignerVerifier
	pub crypto.PublicKey
	der []byte
	id  KeyID
}

// Verifier checks signatures of one public key through a sigstore verifier.
type Verifier struct {
	v     signature.Verifier
	pub   crypto.PublicKey
	der   []byte
	id    KeyID
	sshID string // the keyid go-securesystemslib derives ("SHA256:…"), a hint some signers write
}

// hintedBy reports whether an envelope signature's keyid hint names this
// key: its KeyID in hex or go-securesystemslib's SHA256 key id.
func (v *Verifier) hintedBy(hint string) bool {
	return hint != "" && (hint == v.id.String() || hint == v.sshID)
}

// LoadSigner loads a PEM private key: PKCS #8 ("PRIVATE KEY"), SEC 1 ("EC
// PRIVATE KEY"), PKCS #1 ("RSA PRIVATE KEY"), or a cosign key ("ENCRYPTED
// SIGSTORE PRIVATE KEY" / "ENCRYPTED COSIGN PRIVATE KEY", which needs
// password). password is called only for encrypted keys; it may be nil for
// plain ones.
func LoadSigner(pemBytes []byte, password func() ([]byte, error)) (*Signer, error) {
	var pf cryptoutils.PassFunc
	if password != nil {
		pf = func(bool) ([]byte, error) { return password() }
	}
	if b, _ := pem.Decode(pemBytes); b != nil && pf == nil {
		switch b.Type {
		case "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("attest: private key is encrypted (%s) and no password was given", b.Type)
		}
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, pf)
	if err != nil {
		return nil, fmt.Errorf("attest: private key: %w", err)
	}
	return NewSigner(priv)
}

// LoadSignerFile is LoadSigner of a file; the password of an encrypted
// key is read from $COSIGN_PASSWORD, as cosign does.
func LoadSignerFile(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := LoadSigner(b, func() ([]byte, error) {
		pw, ok := os.LookupEnv("COSIGN_PASSWORD")
		if !ok {
			return nil, fmt.Errorf("%s is encrypted: set COSIGN_PASSWORD", path)
		}
		return []byte(pw), nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// NewSigner returns a Signer for an ECDSA, Ed25519 or RSA private key.
func NewSigner(priv crypto.PrivateKey) (*Signer, error) {
	sv, err := signature.LoadDefaultSignerVerifier(priv)
	if err != nil {
		return nil, fmt.Errorf("attest: private key: %w", err)
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("attest: public key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("attest: public key: %w", err)
	}
	return &Signer{sv: sv, pub: pub, der: der, id: KeyIDOf(der)}, nil
}

// KeyID returns the id of the signer's public key.
func (s *Signer) KeyID() KeyID { return s.id }

// PublicKey returns the signer's public key.
func (s *Signer) PublicKey() crypto.PublicKey { return s.pub }

// PublicKeyPEM returns the signer's public key as a PEM "PUBLIC KEY" block
// (DER SubjectPublicKeyInfo), the form cosign and LoadVerifier read.
func (s *Signer) PublicKeyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: s.der})
}

// Verifier returns a Verifier for the signer's public key.
func (s *Signer) Verifier() *Verifier {
	v, err := newVerifier(s.pub)
	if err != nil {
		panic(err) // the key was accepted by NewSigner
	}
	return v
}

// LoadVerifier loads a PEM "PUBLIC KEY" block (DER SubjectPublicKeyInfo)
// of an ECDSA, Ed25519 or RSA key.
func LoadVerifier(pemPublicKey []byte) (*Verifier, error) {
	b, rest := pem.Decode(pemPublicKey)
	if b == nil {
		return nil, errors.New("attest: public key: no PEM block")
	}
	if b.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("attest: public key: PEM block is %q, want \"PUBLIC KEY\"", b.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("attest: public key: data after the PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("attest: public key: %w", err)
	}
	return newVerifier(pub)
}

// NewVerifier returns a Verifier for an ECDSA, Ed25519 or RSA public key.
func NewVerifier(pub crypto.PublicKey) (*Verifier, error) { return newVerifier(pub) }

func newVerifier(pub crypto.PublicKey) (*Verifier, error) {
	v, err := signature.LoadDefaultVerifier(pub)
	if err != nil {
		return nil, fmt.Errorf("attest: public key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("attest: public key: %w", err)
	}
	sshID, _ := dsse.SHA256KeyID(pub)
	return &Verifier{v: v, pub: pub, der: der, id: KeyIDOf(der), sshID: sshID}, nil
}

// KeyID returns the id of the verifier's public key.
func (v *Verifier) KeyID() KeyID { return v.id }

// PublicKey returns the verifier's public key.
func (v *Verifier) PublicKey() crypto.PublicKey { return v.pub }

// PublicKeyDER returns the DER SubjectPublicKeyInfo of the key, whose
// SHA-256 is KeyID.
func (v *Verifier) PublicKeyDER() []byte { return append([]byte(nil), v.der...) }

// KeyAlgorithm selects the kind of key GenerateKey makes.
type KeyAlgorithm string

// Key algorithms.
const (
	ECDSAP256 KeyAlgorithm = "ecdsa-p256"
	Ed25519   KeyAlgorithm = "ed25519"
	RSA2048   KeyAlgorithm = "rsa-2048"
	RSA3072   KeyAlgorithm = "rsa-3072"
)

// GenerateKey makes a new private key and returns it as an unencrypted
// PKCS #8 PEM block, which LoadSigner reads. It is meant for tests and
// for setting up a rebuilder; keep the result secret.
func GenerateKey(alg KeyAlgorithm) ([]byte, error) {
	var priv crypto.PrivateKey
	var err error
	switch alg {
	case ECDSAP256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case Ed25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case RSA2048:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	default:
		return nil, fmt.Errorf("attest: unknown key algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("attest: generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("attest: generate %s key: %w", alg, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
