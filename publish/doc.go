// Package publish owns the update server's directory: it copies the update
// payloads of verified build outputs into it (optionally compressed),
// retires old versions on request, and keeps the directory's SHA256SUMS and
// its detached OpenPGP signature SHA256SUMS.gpg in step with the files, in
// the layout systemd-sysupdate's url-file sources download from.
//
// A publication directory holds, per image ID and version, the payloads
// the reference sysupdate.d transfers match:
//
//	<id>_<version>_<uuid>.usr.raw[.gz|.xz|.zst]
//	<id>_<version>_<uuid>.usr-verity.raw[.gz|.xz|.zst]
//	<id>_<version>_<uuid>.usr-verity-sig.raw[.gz|.xz|.zst]
//	<id>_<version>.efi[.gz|.xz|.zst]
//
// plus SHA256SUMS, which lists every payload of every version (digests of
// the bytes as served, compressed or not, which is what systemd-sysupdate
// checks), and SHA256SUMS.gpg. Other files in the directory are left alone
// and not listed. A published file is never replaced by different content.
package publish
