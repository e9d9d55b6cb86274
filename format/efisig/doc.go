// Package efisig owns the UEFI Secure Boot key database formats (UEFI 2.10
// §32.4 and §8.2.2): EFI_SIGNATURE_LIST, the content of the PK, KEK, db and
// dbx variables and of ".esl" files, and the time-based authenticated
// variable payload (EFI_VARIABLE_AUTHENTICATION_2 followed by the new
// variable data), the content of ".auth" files.
//
// It writes exactly what efitools 1.9.2 writes: cert-to-efi-sig-list for
// one X.509 certificate per list, and sign-efi-sig-list for the
// authenticated payload, whose PKCS#7 is a bare SignedData (no ContentInfo),
// detached, SHA-256, without signed attributes, the signer certificate
// embedded, over VariableName (UTF-16LE, no terminator) || VendorGuid ||
// Attributes || EFI_TIME || Data. RSA PKCS#1 v1.5 is deterministic, so the
// same keys, owner GUID and timestamp give the same bytes. These are the
// files systemd-boot 252 reads from loader/keys/<name>/ and passes to
// SetVariable unchanged.
//
// Parsing follows the checks EDK2's authenticated variable service applies
// (CheckSignatureListFormat) where they concern the format; CheckVariable
// adds the per-variable rules (known signature types and sizes, X.509
// certificates carrying RSA keys, at most one PK).
//
// GUIDs are carried as uuid.UUID in RFC 4122 string order and converted to
// the EFI mixed-endian byte order at the byte boundary.
package efisig
