package efisig

import "github.com/imago-os/imago/format/uuid"

// Signature types of EFI_SIGNATURE_LIST (UEFI 2.10 §32.4.1). These values
// are fixed by the specification; treat them as constants.
var (
	// CertSHA256 lists SHA-256 digests of images (32 bytes each).
	CertSHA256 = mustGUID("c1c41626-504c-4092-aca9-41f936934328")
	// CertRSA2048 lists bare RSA-2048 moduli (256 bytes each).
	CertRSA2048 = mustGUID("3c5766e8-269c-4e34-aa14-ed776e85b3b6")
	// CertRSA2048SHA256 lists RSA-2048 signatures of SHA-256 digests.
	CertRSA2048SHA256 = mustGUID("e2b36190-879b-4a3d-ad8d-f2e7bba32784")
	// CertSHA1 lists SHA-1 digests (20 bytes each).
	CertSHA1 = mustGUID("826ca512-cf10-4ac9-b187-be01496631bd")
	// CertRSA2048SHA1 lists RSA-2048 signatures of SHA-1 digests.
	CertRSA2048SHA1 = mustGUID("67f8444f-8743-48f1-a328-1eaab8736080")
	// CertX509 lists DER X.509 certificates; each list normally holds one,
	// since SignatureSize is fixed per list.
	CertX509 = mustGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
	// CertSHA224 lists SHA-224 digests (28 bytes each).
	CertSHA224 = mustGUID("0b6e5233-a65c-44c9-9407-d9ab83bfc8bd")
	// CertSHA384 lists SHA-384 digests (48 bytes each).
	CertSHA384 = mustGUID("ff3e5307-9fd0-48c9-85f1-8ad56c701e01")
	// CertSHA512 lists SHA-512 digests (64 bytes each).
	CertSHA512 = mustGUID("093e0fae-a6c4-4f50-9f1b-d41e2b89c19a")
	// CertX509SHA256 lists revoked certificates by the SHA-256 of their
	// TBSCertificate plus a revocation EFI_TIME (48 bytes each).
	CertX509SHA256 = mustGUID("3bd2a492-96c0-4079-b420-fcf98ef103ed")
	// CertX509SHA384 is CertX509SHA256 with SHA-384 (64 bytes each).
	CertX509SHA384 = mustGUID("7076876e-80c2-4ee6-aad2-28b349a6865b")
	// CertX509SHA512 is CertX509SHA256 with SHA-512 (80 bytes each).
	CertX509SHA512 = mustGUID("446dbf63-2502-4cda-bcfa-2465d2b0fe9d")
)

// Other GUIDs of the authenticated variable format.
var (
	// CertTypePKCS7 is the CertType of WIN_CERTIFICATE_UEFI_GUID when the
	// certificate data is a PKCS#7 SignedData.
	CertTypePKCS7 = mustGUID("4aafd29d-68df-49ee-8aa9-347d375665a7")
	// GlobalVariable is EFI_GLOBAL_VARIABLE, the vendor of PK and KEK.
	GlobalVariable = mustGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
	// ImageSecurityDatabase is EFI_IMAGE_SECURITY_DATABASE_GUID, the
	// vendor of db, dbx, dbt and dbr.
	ImageSecurityDatabase = mustGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
)

// mustGUID parses a GUID literal of this file; they are valid by
// construction.
func mustGUID(s string) uuid.UUID {
	u, err := uuid.ParseCanonical(s)
	if err != nil {
		panic(err)
	}
	return u
}

// guidSize is the size of an EFI_GUID on disk.
const guidSize = 16

// appendGUID appends u in EFI byte order: the first three fields
// little-endian, the last eight bytes as they are.
func appendGUID(dst []byte, u uuid.UUID) []byte {
	return append(dst,
		u[3], u[2], u[1], u[0],
		u[5], u[4],
		u[7], u[6],
		u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15])
}

// readGUID decodes 16 bytes in EFI byte order.
func readGUID(b []byte) uuid.UUID {
	return uuid.UUID{
		b[3], b[2], b[1], b[0],
		b[5], b[4],
		b[7], b[6],
		b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]}
}

// VendorOf returns the vendor GUID of a Secure Boot key database
// variable: GlobalVariable for PK and KEK, ImageSecurityDatabase for db,
// dbx, dbt and dbr. ok is false for any other name.
func VendorOf(name string) (vendor uuid.UUID, ok bool) {
	switch name {
	case "PK", "KEK":
		return GlobalVariable, true
	case "db", "dbx", "dbt", "dbr":
		return ImageSecurityDatabase, true
	}
	return uuid.UUID{}, false
}
