package event

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
)

func keyAlgorithm(pub any) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ecdsa-p256", nil
		case elliptic.P384():
			return "ecdsa-p384", nil
		}
		return "", fmt.Errorf("ECDSA curve %s is not accepted (P-256 or P-384)", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return "ed25519", nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("RSA key of %d bits is too short (2048 or more)", k.N.BitLen())
		}
		return fmt.Sprintf("rsa-%d", k.N.BitLen()), nil
	}
	return "", fmt.Errorf("public key type %T is not accepted (ECDSA P-256/P-384, Ed25519, RSA)", pub)
}
