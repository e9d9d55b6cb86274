// Package gpt reads and writes GUID Partition Tables as the UEFI
// specification (version 2.10, chapter 5) defines them and as util-linux's
// libfdisk 2.38 (sfdisk) and systemd 252 read and write them: the
// protective MBR, the primary header at LBA 1 with its partition entry array,
// and the backup entry array and header at the end of the disk.
//
// The package owns the table only; it never reads or writes partition
// contents. It works on an [io.ReaderAt] or [io.WriterAt] plus an explicit
// disk size, for logical sector sizes of 512, 1024, 2048 and 4096 bytes.
//
// Reading checks everything the specification lets a reader check (header
// signature, revision, size and CRC32, the entry array's CRC32, where the
// arrays and usable area lie, that partitions lie inside the usable area and
// do not overlap) and names the first problem found. When the primary table
// is unusable the backup at the last LBA is used instead, and [Table]
// records that in UsedBackup and Warnings, as libfdisk does.
//
// Writing puts the table down in the order that keeps a readable table on
// disk if it is interrupted at any point: backup entries, backup header,
// primary entries, primary header, protective MBR, syncing in between when
// the writer can sync. Until the primary header is rewritten a reader sees
// either the old primary table or, once the primary entries no longer match
// the old primary header's CRC, the complete new backup.
//
// GUIDs are held as [GUID] in RFC 4122 string order; the mixed-endian
// on-disk order (first three fields little-endian) is converted at the edge.
// GUID has the same layout as the dps package's UUID, so partition type
// values convert with a plain Go conversion.
package gpt
