// Package repart is imago's partitioning engine: it reads repart.d
// definitions and grows a GUID partition table from them exactly as
// systemd-repart 252 does, on image files and on block devices.
//
// It owns the steps of systemd-repart that decide the partition table:
// parsing and validating [Partition] definitions (with drop-ins, specifiers
// and the v252 defaults), matching existing partitions to definitions by
// type, dropping by priority, the weight-based allocation of free space
// between minimum and maximum sizes with padding and 4 KiB alignment,
// growing onto an enlarged disk, partition numbering, the HMAC-SHA256
// derivation of partition and disk UUIDs from a seed, default labels, the
// attribute flags, factory reset, and the order of writes that keeps the old
// table intact until the new one is complete.
//
// Filling new partitions (CopyBlocks=, Format=, CopyFiles=,
// MakeDirectories=, Encrypt=, Verity=) is the Content step plugged into
// Options, run between the wipe of the new partitions and the write of the
// table, as systemd does. NewContent is that step, built on the
// repart/content package; it also sets the verity partition UUIDs from the
// root hash.
//
// The behaviour matched is that of systemd-repart 252 as Debian 12 ships it
// (252.39, whose stable branch rounds SizeMinBytes= down and SizeMaxBytes=
// up). Every place where imago differs on purpose is listed in
// docs/repart.md; none of them changes the partition table systemd would
// write from the same definitions, seed and disk.
package repart
