package sysupdate

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/imago-os/imago/keys"
)

// keyringPaths are where systemd looks for the keyring that update
// manifests are verified against, in order: the .pgp names of newer
// releases, then the .gpg names systemd 252 uses (which imago's Debian 12
// targets ship), administrator's copy before the vendor's.
var keyringPaths = []string{
	"/etc/systemd/import-pubring.pgp",
	"/etc/systemd/import-pubring.gpg",
	"/usr/lib/systemd/import-pubring.pgp",
	"/usr/lib/systemd/import-pubring.gpg",
}

// maxSignatureSize bounds SHA256SUMS.gpg as systemd-pull does.
const maxSignatureSize = 1 << 20

// FindKeyring returns the path of the OpenPGP keyring that SHA256SUMS.gpg
// is checked against, below root ("" means "/"): the first that exists of
// /etc/systemd/import-pubring.pgp, /etc/systemd/import-pubring.gpg,
// /usr/lib/systemd/import-pubring.pgp and /usr/lib/systemd/import-pubring.gpg.
func FindKeyring(root string) (string, error) {
	p, err := findKeyring(root)
	if err != nil {
		return "", fmt.Errorf("sysupdate: %w", err)
	}
	return p, nil
}

func findKeyring(root string) (string, error) {
	var tried []string
	for _, p := range keyringPaths {
		full := joinRoot(root, p)
		st, err := os.Stat(full)
		if err == nil && !st.IsDir() {
			return full, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("keyring: %w", err)
		}
		tried = append(tried, full)
	}
	return "", fmt.Errorf("no keyring to verify update manifests: none of %s exists", strings.Join(tried, ", "))
}

// verifyManifest checks the detached signature sig of the manifest data
// fetched from manifestURL against the keyring file. Errors wrap
// ErrSignature.
func verifyManifest(keyring string, data, sig []byte, manifestURL string) error {
	kr, err := os.ReadFile(keyring)
	if err != nil {
		return fmt.Errorf("%s.gpg: %w: keyring: %w", manifestURL, ErrSignature, err)
	}
	if _, err := keys.VerifyUpdateManifest(bytes.NewReader(kr), bytes.NewReader(data), bytes.NewReader(sig)); err != nil {
		return fmt.Errorf("%s.gpg: %w: not signed by a key in %s: %w", manifestURL, ErrSignature, keyring, err)
	}
	return nil
}
