// Package sysupdate is imago's engine for systemd-sysupdate style A/B
// updates. It reads transfer definitions (sysupdate.d/*.conf as in systemd
// 252, and *.transfer as in systemd 257 and later), discovers the instances
// (versions) present on each transfer's source and target, groups them into
// update sets across all transfers and computes what systemd-sysupdate's
// list and check-new verbs report.
//
// It implements "systemd-sysupdate" of the runtime formats digest: the
// definition keys and their validation follow systemd 252
// (src/sysupdate/sysupdate-transfer.c) plus the keys later releases added;
// update-set discovery follows the newer algorithm that keeps an
// incompletely installed version (flagged incomplete) instead of ignoring
// it. The match pattern language lives in the pattern sub-package.
//
// It also performs the update, vacuum and pending verbs: Plan.Update
// downloads and verifies url-* payloads, writes every transfer's payload to
// a temporary file or directory or into a partition slot still labelled
// _empty, and only then renames the files and labels the partitions, so
// that an interruption never damages the installed versions; Plan.Vacuum
// enforces InstancesMax= and removes the instances of transfers whose
// features are disabled; Pending compares the newest installed version
// with the booted one.
package sysupdate
