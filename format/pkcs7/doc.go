// Package pkcs7 writes, parses and verifies PKCS#7 (RFC 2315) SignedData, the
// container of dm-verity root hash signatures and, later, of Authenticode.
//
// Sign produces DER byte-identical to OpenSSL 3.0's PKCS7_sign (and so to
// `openssl smime -sign -binary`) for the same RSA key, certificate and
// content: SignedData and SignerInfo version 1, digest AlgorithmIdentifiers
// with NULL parameters, rsaEncryption with NULL parameters for RSA keys and
// ecdsa-with-SHAxxx without parameters for EC keys, the signer certificate
// embedded first, signed attributes sorted as DER requires. This is the
// encoding systemd-repart 252 writes into verity signature partitions.
//
// Content of type id-data is carried as an OCTET STRING; any other content
// type is carried as the DER value itself, as PKCS#7 (not CMS) does, which is
// what Authenticode needs. In both cases the digest covers the contents
// octets of that value.
//
// Parse accepts DER only (no BER indefinite lengths) and no trailing bytes.
// Verify follows OpenSSL's PKCS7_verify with PKCS7_NOINTERN|PKCS7_NOVERIFY,
// as systemd 252 uses it for verity signatures: every signer must be one of
// the given certificates and its signature must be valid; certificates
// embedded in the message are not trusted and no chain is built.
package pkcs7
