// Package config reads an imago image definition: the directory that
// `imago build` turns into a disk image and update artifacts.
//
// A definition is imago.conf plus imago.conf.d/*.conf, in systemd's INI
// syntax (format/unitfile) with the drop-in rules of systemd:
// imago.conf first, then the drop-ins sorted by file name; a later
// assignment of a single-valued key overrides an earlier one, each
// assignment of a list key adds to the list, and an empty assignment resets
// a key to its default (a list to empty). Sections and key names are those
// of mkosi where mkosi has the setting ([Distribution] Release=,
// [Content] Packages=, [Validation] SecureBootKey=, ...), plus a few of
// imago's own. Values are taken literally: no specifiers are expanded.
// Relative paths are relative to the definition directory.
//
// Beside the configuration files, a definition may have:
//
//   - repart.d/: the partition definitions installed as /usr/lib/repart.d
//     in the image; systemd-repart applies them on first boot. The B slot
//     declared there (the usr, usr-verity and usr-verity-sig partitions
//     labelled _empty) also fixes the size the build gives slot A, read
//     here into Definition.Slots.
//   - sysupdate.d/: the update transfers installed as /usr/lib/sysupdate.d.
//
// Every problem is reported with the file, line and key it comes from;
// unknown sections and keys are errors. The normative reference of every
// key, its default and what imago does with it is docs/definition.md. The
// meaning matches systemd 252 (Debian 12) where systemd is involved.
package config
