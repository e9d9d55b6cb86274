package dps

import (
	"fmt"
	"math/bits"
)

// Partition attribute bits, as they appear in the 64-bit attribute field of
// a GPT entry. Bits 0-2 are defined by UEFI for every partition; bits 59,
// 60 and 63 are the ones the specification gives meaning to for discoverable
// partitions (see [Designator.KnowsReadOnly] and friends for where systemd
// honours them).
const (
	FlagRequiredPartition  uint64 = 1 << 0  // UEFI: the platform needs this partition
	FlagNoBlockIOProtocol  uint64 = 1 << 1  // UEFI: firmware must not expose it as a block device
	FlagLegacyBIOSBootable uint64 = 1 << 2  // UEFI: legacy BIOS may boot from it
	FlagGrowFS             uint64 = 1 << 59 // grow the file system to the partition on mount
	FlagReadOnly           uint64 = 1 << 60 // mount read-only
	FlagNoAuto             uint64 = 1 << 63 // do not mount automatically
)

// flagNames are the names systemd-repart uses for its boolean keys
// (NoAuto=, ReadOnly=, GrowFileSystem=) in the form the rest of imago prints
// them, plus the UEFI bits.
var flagNames = []struct {
	bit  uint64
	name string
}{
	{FlagRequiredPartition, "required-partition"},
	{FlagNoBlockIOProtocol, "no-block-io-protocol"},
	{FlagLegacyBIOSBootable, "legacy-bios-bootable"},
	{FlagGrowFS, "growfs"},
	{FlagReadOnly, "read-only"},
	{FlagNoAuto, "no-auto"},
}

// FlagNames lists the set bits of attrs in ascending bit order, by name for
// the bits above and as "bit-N" for the others.
func FlagNames(attrs uint64) []string {
	var out []string
	for attrs != 0 {
		n := bits.TrailingZeros64(attrs)
		bit := uint64(1) << n
		attrs &^= bit
		name := fmt.Sprintf("bit-%d", n)
		for _, f := range flagNames {
			if f.bit == bit {
				name = f.name
			}
		}
		out = append(out, name)
	}
	return out
}

// ParseFlagName returns the bit for a name FlagNames produces.
func ParseFlagName(name string) (uint64, error) {
	for _, f := range flagNames {
		if f.name == name {
			return f.bit, nil
		}
	}
	var n uint
	if _, err := fmt.Sscanf(name, "bit-%d", &n); err == nil && n < 64 && fmt.Sprintf("bit-%d", n) == name {
		return 1 << n, nil
	}
	return 0, fmt.Errorf("dps: unknown partition flag %q", name)
}
