// Package initrd builds the image's initrd: step 3 of `imago build`. It
// owns the choice of what goes into the initrd, running dracut, the cache of
// built initrds, and checking that the result holds what the first boot
// needs.
//
// The initrd is systemd-based and built from the tree's own packages by the
// tree's own dracut (Debian 12: dracut 059), run in a chroot of the tree.
// dracut's --sysroot mode is not used: dracut 059 evaluates systemd's
// directories with the host's pkg-config and resolves libraries with the
// host's ldd, so it only works when the host matches the tree. The chroot
// runs in a private mount namespace (unshare(1)), in which /proc and the
// host's /dev are mounted for dracut: nothing is mounted on the host, and
// the mounts vanish with the process, also when a build is cancelled. /sys
// is not mounted, so nothing of the build host's kernel leaks in.
//
// By default the initrd holds what first boot needs: systemd and udev, the
// veritysetup generator (for usrhash=), systemd-repart with the image's
// repart.d files at /usr/lib/repart.d and the mkfs programs their Format=
// lines call, systemd-cryptsetup with the TPM2 libraries systemd loads at
// run time (libtss2-esys, -rc, -mu, -tcti-device) and libcryptsetup's
// systemd-tpm2 token plugin, systemd-pcrphase with its initrd unit, and the
// kernel modules for virtio disks and consoles, device mapper (verity,
// crypt), erofs, squashfs, btrfs, ext4, vfat, the TPM and efivarfs. The
// TPM2 pieces are installed as files rather than through dracut's tpm2-tss
// module, which requires tpm2-tools and with it curl and Kerberos in the
// image.
//
// dracut writes an uncompressed archive (--reproducible, no early
// microcode, no stripping); imago lists it (the newc cpio format, read in
// Go), checks every required file and kernel module (a module the kernel
// has built in counts), and compresses it with zstd (the Debian 12 kernel
// has CONFIG_RD_ZSTD=y) or gzip. With the same tree, inputs and
// SOURCE_DATE_EPOCH, two builds give the same bytes.
//
// Built initrds are cached in CACHE/initrd, keyed by the SHA-256 of the
// tree's package manifest, its dracut configuration, the kernel version,
// the module, driver and file lists, the repart.d files and the
// compression.
//
// Matches Debian 12: systemd 252, dracut 059, zstd 1.5.4.
// docs/build-debian.md describes the initrd's content.
package initrd
