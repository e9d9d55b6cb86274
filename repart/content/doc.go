// Package content fills the new partitions of a repart run: everything
// systemd-repart writes inside a partition before the partition table
// names it. It owns the content keys of repart.d (disk-format spec §4.2):
//
//   - CopyBlocks= (a file, a block device, the device behind a directory,
//     or, through FindBootedPartition, the booted partition of the same
//     type for "auto");
//   - Format= with CopyFiles= and MakeDirectories=, through the fsimage
//     package (mkfs populates from a directory; no loop devices, no mounts);
//   - Encrypt=, as a LUKS2 container made offline: cryptsetup writes the
//     header into a scratch file and this package encrypts the content with
//     aes-xts-plain64 itself, so neither device-mapper nor loop devices are
//     needed;
//   - Verity=hash and Verity=signature: the hash tree of the data partition
//     (format/verity, spec §2.5–2.7) and the signature JSON (format/veritysig,
//     spec §3), with the partition UUIDs derived from the root hash.
//
// It matches systemd-repart 252 as Debian 12 ships it (the v252 stable
// branch): the same mkfs arguments, the same LUKS2 parameters (aes-xts-plain64
// with a 256-bit key, the disk's sector size, the partition label, the
// LUKS UUID derived from the partition UUID, libcryptsetup's default PBKDF),
// verity blocks of the disk's sector size, and the same signature JSON.
// docs/repart-content.md lists every difference.
//
// The repart engine decides sizes, offsets, UUIDs and labels; this package
// writes one partition range at a time and never writes outside it.
// External programs run through internal/toolexec.
package content
