package dps

import "fmt"

// Designator says what a partition is for, independently of architecture:
// root, usr, their verity hash and signature partitions, and the fixed
// mount points. systemd calls this the partition designator.
type Designator uint8

// The designators. DesignatorNone is for types that are known but never
// mounted automatically (linux-generic, user-home) and for unknown types.
const (
	DesignatorNone Designator = iota
	DesignatorRoot
	DesignatorUsr
	DesignatorHome
	DesignatorSrv
	DesignatorESP
	DesignatorXBOOTLDR
	DesignatorSwap
	DesignatorRootVerity
	DesignatorUsrVerity
	DesignatorRootVeritySig
	DesignatorUsrVeritySig
	DesignatorTmp
	DesignatorVar
	designatorCount
)

// designatorNames are systemd's spellings (partition_designator_table).
var designatorNames = [designatorCount]string{
	DesignatorNone:          "",
	DesignatorRoot:          "root",
	DesignatorUsr:           "usr",
	DesignatorHome:          "home",
	DesignatorSrv:           "srv",
	DesignatorESP:           "esp",
	DesignatorXBOOTLDR:      "xbootldr",
	DesignatorSwap:          "swap",
	DesignatorRootVerity:    "root-verity",
	DesignatorUsrVerity:     "usr-verity",
	DesignatorRootVeritySig: "root-verity-sig",
	DesignatorUsrVeritySig:  "usr-verity-sig",
	DesignatorTmp:           "tmp",
	DesignatorVar:           "var",
}

// String returns systemd's name for d ("root-verity", "esp", ...), or ""
// for DesignatorNone and out-of-range values.
func (d Designator) String() string {
	if d >= designatorCount {
		return ""
	}
	return designatorNames[d]
}

// ParseDesignator returns the designator systemd spells s.
func ParseDesignator(s string) (Designator, error) {
	for d := DesignatorRoot; d < designatorCount; d++ {
		if designatorNames[d] == s {
			return d, nil
		}
	}
	return DesignatorNone, fmt.Errorf("dps: unknown partition designator %q", s)
}

// IsData reports whether d is root or usr, the partitions verity protects.
func (d Designator) IsData() bool { return d == DesignatorRoot || d == DesignatorUsr }

// IsVerity reports whether d is a verity hash partition.
func (d Designator) IsVerity() bool { return d == DesignatorRootVerity || d == DesignatorUsrVerity }

// IsVeritySig reports whether d is a verity signature partition.
func (d Designator) IsVeritySig() bool {
	return d == DesignatorRootVeritySig || d == DesignatorUsrVeritySig
}

// Verity returns the verity hash designator for a data designator (root →
// root-verity, usr → usr-verity), and DesignatorNone for anything else.
func (d Designator) Verity() Designator {
	switch d {
	case DesignatorRoot:
		return DesignatorRootVerity
	case DesignatorUsr:
		return DesignatorUsrVerity
	}
	return DesignatorNone
}

// VeritySig returns the verity signature designator for a data designator,
// and DesignatorNone for anything else.
func (d Designator) VeritySig() Designator {
	switch d {
	case DesignatorRoot:
		return DesignatorRootVeritySig
	case DesignatorUsr:
		return DesignatorUsrVeritySig
	}
	return DesignatorNone
}

// Data returns the data designator a verity or signature designator
// belongs to (usr-verity-sig → usr), d itself for root and usr, and
// DesignatorNone for anything else.
func (d Designator) Data() Designator {
	switch d {
	case DesignatorRoot, DesignatorRootVerity, DesignatorRootVeritySig:
		return DesignatorRoot
	case DesignatorUsr, DesignatorUsrVerity, DesignatorUsrVeritySig:
		return DesignatorUsr
	}
	return DesignatorNone
}

// IsVersioned reports whether systemd picks among several partitions of
// this designator by comparing their labels as versions (root, usr and
// their verity and signature partitions); for the others the first
// partition in table order wins.
func (d Designator) IsVersioned() bool { return d.Data() != DesignatorNone }

// MountPoints returns where systemd mounts a partition of this designator
// when it discovers one, in order of preference: the ESP goes to /efi, or
// /boot when XBOOTLDR is absent; tmp goes to /var/tmp. It returns nil for
// designators that are not mounted as file systems of their own.
func (d Designator) MountPoints() []string {
	switch d {
	case DesignatorRoot:
		return []string{"/"}
	case DesignatorUsr:
		return []string{"/usr"}
	case DesignatorHome:
		return []string{"/home"}
	case DesignatorSrv:
		return []string{"/srv"}
	case DesignatorESP:
		return []string{"/efi", "/boot"}
	case DesignatorXBOOTLDR:
		return []string{"/boot"}
	case DesignatorTmp:
		return []string{"/var/tmp"}
	case DesignatorVar:
		return []string{"/var"}
	}
	return nil
}

// KnowsReadOnly reports whether systemd honours [FlagReadOnly] on this
// designator (gpt_partition_type_knows_read_only). The verity signature
// designators are not among them, although the specification recommends
// setting the bit there too.
func (d Designator) KnowsReadOnly() bool {
	switch d {
	case DesignatorRoot, DesignatorUsr, DesignatorRootVerity, DesignatorUsrVerity,
		DesignatorHome, DesignatorSrv, DesignatorVar, DesignatorTmp, DesignatorXBOOTLDR:
		return true
	}
	return false
}

// KnowsGrowFS reports whether systemd honours [FlagGrowFS] on this
// designator.
func (d Designator) KnowsGrowFS() bool {
	switch d {
	case DesignatorRoot, DesignatorUsr, DesignatorHome, DesignatorSrv, DesignatorVar,
		DesignatorTmp, DesignatorXBOOTLDR:
		return true
	}
	return false
}

// KnowsNoAuto reports whether systemd honours [FlagNoAuto] on this
// designator. Neither the ESP nor the verity signature partitions are
// among them.
func (d Designator) KnowsNoAuto() bool {
	switch d {
	case DesignatorRoot, DesignatorRootVerity, DesignatorUsr, DesignatorUsrVerity,
		DesignatorHome, DesignatorSrv, DesignatorVar, DesignatorTmp, DesignatorXBOOTLDR,
		DesignatorSwap:
		return true
	}
	return false
}
