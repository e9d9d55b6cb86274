package measure

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/imago-os/imago/internal/pemkey"
)

// ParsePrivateKeyPEM reads the first private key of a PEM file, as
// systemd-measure's --private-key= does: a "PRIVATE KEY" (PKCS#8), "RSA
// PRIVATE KEY" (PKCS#1) or "EC PRIVATE KEY" (SEC 1) block; blocks of other
// types before it are skipped. Only RSA and ECDSA keys can sign PCR
// policies; encrypted keys are refused.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	key, err := pemkey.ParseSigner(data)
	if err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("measure: unsupported private key type %T (want RSA or ECDSA)", key)
}

// ParsePublicKeyPEM reads the first "PUBLIC KEY" (SubjectPublicKeyInfo)
// block of a PEM file, as systemd-measure's --public-key= and the .pcrpkey
// section hold it. Only RSA and ECDSA keys are accepted.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("measure: no PEM public key found")
		}
		if block.Type != "PUBLIC KEY" {
			continue
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("measure: PUBLIC KEY: %w", err)
		}
		switch k := key.(type) {
		case *rsa.PublicKey:
			return k, nil
		case *ecdsa.PublicKey:
			return k, nil
		}
		return nil, fmt.Errorf("measure: unsupported public key type %T (want RSA or ECDSA)", key)
	}
}
