// Package keys owns imago's signing keys: it generates, writes, loads and
// checks a key set, the directory of keys and certificates a build signs
// with.
//
// A key set holds:
//
//   - the UEFI Secure Boot PK, KEK and db: RSA-2048 keys with self-signed
//     SHA-256 X.509 certificates, each also as an EFI signature list (.esl,
//     one certificate, one owner GUID shared by the set) and as a time-based
//     authenticated variable update (.auth: PK and KEK signed by PK, db by
//     KEK), byte-identical to what efitools 1.9.2's cert-to-efi-sig-list and
//     sign-efi-sig-list write, ready for systemd-boot 252 to enroll from
//     loader/keys/<name>/;
//   - the certificate and key that sign dm-verity root hashes (systemd-repart
//     252's --private-key/--certificate);
//   - the RSA-2048 key pair that signs PCR 11 policies, under the names
//     systemd 252 gives it (tpm2-pcr-private-key.pem, tpm2-pcr-public-key.pem);
//   - an OpenPGP (v4, Ed25519) key that signs update manifests (SHA256SUMS),
//     its public half as the binary keyring systemd-sysupdate 252 hands to gpg
//     (import-pubring.gpg).
//
// Private keys are written with mode 0600 and never replaced unless asked.
// LoadOrGenerate makes a set once in a directory and reuses it afterwards;
// DefaultDir names the per-user directory a build uses when its definition
// names no keys.
package keys
