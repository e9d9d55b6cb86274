// Package authenticode signs and verifies UEFI PE images with Authenticode
// signatures, as sbsigntool 0.9.4's sbsign and sbverify do.
//
// A signature is a PKCS#7 SignedData whose content is an
// SpcIndirectDataContent carrying the image's Authenticode digest
// (format/pe.AuthenticodeDigest, SHA-256). It is wrapped in a WIN_CERTIFICATE
// (revision 0x0200, type PKCS_SIGNED_DATA) and appended to the image, which is
// first padded with zeros to a multiple of 8 bytes; the certificate table
// data directory entry (index 4) points at it and the optional header's
// CheckSum is recomputed over the result.
//
// Sign writes output byte-identical to sbsign 0.9.4 (OpenSSL 3.0) for the
// same RSA key, certificate, input and signing time: the signed attributes
// are contentType, signingTime, messageDigest and OpenSSL's default S/MIME
// capabilities. An image that is already signed keeps its signatures and
// gets one more appended, as sbsign does.
//
// Verify follows sbverify: the digest is recomputed and compared with the
// signed one, and the signature must be made by one of the trusted
// certificates or by a certificate embedded in the signature that chains to
// one of them.
package authenticode
