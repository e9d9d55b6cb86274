package gpt

import (
	"fmt"
	"strconv"
	"strings"
)

// The attribute bits UEFI defines for every partition. Bits 48-63 belong to
// the partition type; the Discoverable Partitions bits (59, 60, 63) are in
// the dps package.
const (
	AttrRequiredPartition  uint64 = 1 << 0
	AttrNoBlockIOProtocol  uint64 = 1 << 1
	AttrLegacyBIOSBootable uint64 = 1 << 2
)

// The names libfdisk uses for bits 0-2, and the first type-specific bit.
const (
	attrNameRequired = "RequiredPartition"
	attrNameNoBlock  = "NoBlockIOProtocol"
	attrNameLegacy   = "LegacyBIOSBootable"
	firstTypeBit     = 48
)

// FormatAttributes spells attrs the way sfdisk prints and reads them
// ("RequiredPartition LegacyBIOSBootable GUID:59,60,63"): names for bits
// 0-2, then "GUID:" and the set bits among 48-63. Like sfdisk it cannot show
// bits 3-47, which UEFI reserves; it returns "" when no other bit is set.
func FormatAttributes(attrs uint64) string {
	var words []string
	for _, a := range []struct {
		bit  uint64
		name string
	}{{AttrRequiredPartition, attrNameRequired}, {AttrNoBlockIOProtocol, attrNameNoBlock}, {AttrLegacyBIOSBootable, attrNameLegacy}} {
		if attrs&a.bit != 0 {
			words = append(words, a.name)
		}
	}
	var guidBits []string
	for n := firstTypeBit; n < 64; n++ {
		if attrs&(1<<n) != 0 {
			guidBits = append(guidBits, strconv.Itoa(n))
		}
	}
	if guidBits != nil {
		words = append(words, "GUID:"+strings.Join(guidBits, ","))
	}
	return strings.Join(words, " ")
}

// ParseAttributes reads the notation FormatAttributes writes, which is also
// what sfdisk scripts accept: the three names, and bit numbers 48-63 written
// as "GUID:N" or plain "N", separated by blanks or commas.
func ParseAttributes(s string) (uint64, error) {
	var attrs uint64
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
	for _, f := range fields {
		switch f {
		case attrNameRequired:
			attrs |= AttrRequiredPartition
			continue
		case attrNameNoBlock:
			attrs |= AttrNoBlockIOProtocol
			continue
		case attrNameLegacy:
			attrs |= AttrLegacyBIOSBootable
			continue
		}
		num := strings.TrimPrefix(f, "GUID:")
		n, err := strconv.Atoi(num)
		if err != nil || n < firstTypeBit || n > 63 || strconv.Itoa(n) != num {
			return 0, fmt.Errorf("gpt: attribute %q in %q is neither a known name nor a bit number 48-63", f, s)
		}
		attrs |= 1 << n
	}
	return attrs, nil
}
