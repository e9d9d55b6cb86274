// Package debian makes the root tree of an image from Debian packages: step
// 1 of `imago build`. It owns the tree's package installation, its cache,
// its package manifest, and finding the kernel in it.
//
// Bootstrap runs mmdebstrap (Debian 12: 1.3.5) with the configured
// sources, variant, architecture and packages and writes the result as a
// tarball into imago's cache; every build extracts that tarball into its own
// work directory. An entry is keyed by the SHA-256 of the normalized Spec
// and by the state of the archive: the SHA-256 of the InRelease files of
// the sources, which are small and change whenever the archive does. A
// rebuild against an unchanged archive therefore downloads nothing but those
// files. With SourceDateEpoch set, two bootstraps of the same inputs against
// the same archive state give byte-identical tarballs (mmdebstrap clamps
// every timestamp and removes the logs and caches that vary; imago removes
// the copied-in /etc/resolv.conf and /etc/hostname, which come from the
// host).
//
// The tree holds no apt package lists and no downloaded packages, and no
// initrd: kernel postinst hooks that would build one during the installation
// find no-op stand-ins for dracut and update-initramfs, which are put back
// before the installation ends. The initrd is built separately
// (build/initrd).
//
// Only mmdebstrap's --mode=unshare is used: as root it keeps the user
// namespace but gives the installation its own mount namespace, so the
// mounts it makes for the chroot (proc, sys, dev) never appear on the host
// and vanish with the process, also when a build is cancelled.
//
// The manifest (ReadManifest, ParseStatus) is read from the tree's dpkg
// database in Go, with the meaning `dpkg-query -W` gives it: every package
// whose status is "installed", with its version and architecture.
//
// Matches Debian 12 (bookworm): systemd 252, dpkg 1.21, apt 2.6,
// mmdebstrap 1.3.5. docs/build-debian.md describes the cache and the tree.
package debian
