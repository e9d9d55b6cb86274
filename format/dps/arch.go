package dps

// Arch is a CPU architecture as systemd names it (uname-like identifiers
// from systemd's architecture table, e.g. "x86-64", "arm64", "ppc64-le").
// The empty Arch means "no architecture": the type of an ESP, /home, swap
// and so on does not depend on one.
type Arch string

// The architectures that have root and /usr partition types.
const (
	ArchAlpha       Arch = "alpha"
	ArchARC         Arch = "arc"
	ArchARM         Arch = "arm"
	ArchARM64       Arch = "arm64"
	ArchIA64        Arch = "ia64"
	ArchLoongArch64 Arch = "loongarch64"
	ArchMIPS        Arch = "mips" // big-endian, as is mips64; types since systemd 255 and 252.19
	ArchMIPS64      Arch = "mips64"
	ArchMIPSLE      Arch = "mips-le"
	ArchMIPS64LE    Arch = "mips64-le"
	ArchPARISC      Arch = "parisc"
	ArchPPC         Arch = "ppc"
	ArchPPC64       Arch = "ppc64"
	ArchPPC64LE     Arch = "ppc64-le"
	ArchRISCV32     Arch = "riscv32"
	ArchRISCV64     Arch = "riscv64"
	ArchS390        Arch = "s390"
	ArchS390X       Arch = "s390x"
	ArchTILEGX      Arch = "tilegx"
	ArchX86         Arch = "x86"
	ArchX86_64      Arch = "x86-64"
)

// archAliases are the alternative spellings systemd 254 and later accept in
// partition type identifiers ("root-amd64"); they never appear as a name.
var archAliases = map[string]Arch{
	"aarch64": ArchARM64,
	"amd64":   ArchX86_64,
	"armv7l":  ArchARM,
	"ppc64le": ArchPPC64LE,
	"x86_64":  ArchX86_64,
}

// goArches maps Go's GOARCH values to systemd's names. Go has no port for
// the other architectures in the table.
var goArches = map[string]Arch{
	"386":      ArchX86,
	"amd64":    ArchX86_64,
	"arm":      ArchARM,
	"arm64":    ArchARM64,
	"loong64":  ArchLoongArch64,
	"mips":     ArchMIPS,
	"mipsle":   ArchMIPSLE,
	"mips64":   ArchMIPS64,
	"mips64le": ArchMIPS64LE,
	"ppc64":    ArchPPC64,
	"ppc64le":  ArchPPC64LE,
	"riscv64":  ArchRISCV64,
	"s390x":    ArchS390X,
}

// ArchFromGOARCH returns the architecture for a Go GOARCH value (pass
// runtime.GOARCH for the running program). It reports false for a GOARCH
// the specification has no partition types for.
func ArchFromGOARCH(goarch string) (Arch, bool) {
	a, ok := goArches[goarch]
	return a, ok
}

// Secondary returns the architecture whose binaries a also runs and whose
// partitions systemd accepts as "secondary": x86 for x86-64 and arm for
// arm64. It returns "" for every other architecture.
func (a Arch) Secondary() Arch {
	switch a {
	case ArchX86_64:
		return ArchX86
	case ArchARM64:
		return ArchARM
	}
	return ""
}

// Arches returns every architecture that has partition types, in table
// order.
func Arches() []Arch {
	var out []Arch
	for _, t := range table {
		if t.Arch != "" && t.Designator == DesignatorRoot {
			out = append(out, t.Arch)
		}
	}
	return out
}
