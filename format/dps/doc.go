// Package dps is the registry of the Discoverable Partitions Specification
// (UAPI.2): the GPT partition type UUIDs that systemd recognises, their
// identifiers as systemd-repart's Type= and systemd-dissect spell them, the
// architecture and designator (root, usr, their verity and verity signature
// partitions, esp, home, ...) each type stands for, and the partition
// attribute bits the specification defines.
//
// The table matches systemd 252 (src/systemd/sd-gpt.h and src/shared/gpt.c)
// and is a superset of it: the MIPS big-endian types (systemd 255, and the
// 252 stable series from 252.19 on) and the architecture aliases aarch64,
// amd64, armv7l, ppc64le and x86_64 (systemd 254) are also known;
// [Type.Since] says which release first had a type.
//
// UUIDs are held as [UUID], 16 bytes in RFC 4122 string order, the order in
// which systemd hashes and prints them. The mixed-endian GPT on-disk form is
// the business of the gpt package, which has its own GUID type with the same
// layout, so a value converts with a plain Go conversion in either direction
// and neither package imports the other.
//
// Nothing here depends on the architecture the program runs on: resolving an
// unqualified identifier such as "root" takes the native architecture as a
// parameter, and [ArchFromGOARCH] maps a Go architecture name to it.
package dps
