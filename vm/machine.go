package vm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"unsafe"
)

// Architectures, by the names the Discoverable Partitions Specification uses.
const (
	ArchX86_64 = "x86-64"
	ArchARM64  = "arm64"
)

// Accelerators.
const (
	AccelAuto = ""    // KVM when usable, else TCG
	AccelKVM  = "kvm" // hardware virtualisation; an error when not usable
	AccelTCG  = "tcg" // software emulation
)

// Secure Boot key stores the firmware's variable store can start from.
const (
	// KeysNone is an empty variable store: the firmware is in setup mode
	// and Secure Boot is not enforced until a boot loader (systemd-boot's
	// secure-boot-enroll) or the OS enrolls a PK, KEK and db.
	KeysNone = "none"
	// KeysSnakeoil enrolls Debian's snakeoil test key as PK, KEK and db
	// (private key in /usr/share/ovmf/PkKek-1-snakeoil.key, passphrase
	// "snakeoil"); Secure Boot is enforced from the first boot.
	KeysSnakeoil = "snakeoil"
	// KeysMicrosoft enrolls Debian's PK and Microsoft's KEK and db, as on
	// most PCs; Secure Boot is enforced from the first boot.
	KeysMicrosoft = "microsoft"
)

// archInfo describes how to run one guest architecture.
type archInfo struct {
	qemu      string // qemu binary
	machine   string // -machine type
	tpmDevice string // the TPM device model
	goarch    string // the host GOARCH on which KVM can run this guest
	// Firmware: the first existing file of each list is used.
	firmwareDir     string
	firmwarePackage string
	code            []string // without Secure Boot
	secureCode      []string // with Secure Boot
	vars            map[string]string
	// secureNeedsSMM: x86 OVMF protects its variable store in SMM, which
	// needs an SMM-capable machine and a secure flash device.
	secureNeedsSMM bool
}

var arches = map[string]*archInfo{
	ArchX86_64: {
		qemu: "qemu-system-x86_64",
		// No HPET: guests keep time with the TSC or, under TCG (where
		// the TSC is found unstable), the ACPI PM timer, and qemu spends
		// less time emulating a timer nobody needs (mkosi does the
		// same). Under TCG a Debian 6.1 kernel was once seen hanging
		// right after switching its clocksource to the HPET.
		machine:         "q35,hpet=off",
		tpmDevice:       "tpm-tis",
		goarch:          "amd64",
		firmwareDir:     "/usr/share/OVMF",
		firmwarePackage: "ovmf",
		code:            []string{"OVMF_CODE_4M.fd"},
		secureCode:      []string{"OVMF_CODE_4M.secboot.fd"},
		vars: map[string]string{
			KeysNone:      "OVMF_VARS_4M.fd",
			KeysSnakeoil:  "OVMF_VARS_4M.snakeoil.fd",
			KeysMicrosoft: "OVMF_VARS_4M.ms.fd",
		},
		secureNeedsSMM: true,
	},
	ArchARM64: {
		qemu:            "qemu-system-aarch64",
		machine:         "virt",
		tpmDevice:       "tpm-tis-device",
		goarch:          "arm64",
		firmwareDir:     "/usr/share/AAVMF",
		firmwarePackage: "qemu-efi-aarch64",
		code:            []string{"AAVMF_CODE.no-secboot.fd", "AAVMF_CODE.fd"},
		secureCode:      []string{"AAVMF_CODE.secboot.fd", "AAVMF_CODE.ms.fd", "AAVMF_CODE.fd"},
		vars: map[string]string{
			KeysNone:      "AAVMF_VARS.fd",
			KeysSnakeoil:  "AAVMF_VARS.snakeoil.fd",
			KeysMicrosoft: "AAVMF_VARS.ms.fd",
		},
	},
}

// HostArch returns the architecture of the machine imago runs on, or "" when
// imago knows no guest of that kind.
func HostArch() string {
	for name, a := range arches {
		if a.goarch == runtime.GOARCH {
			return name
		}
	}
	return ""
}

// firmwareFiles returns the firmware code file and the variable store
// template for a configuration.
func firmwareFiles(a *archInfo, secureBoot bool, keys string) (code, vars string, err error) {
	list := a.code
	if secureBoot {
		list = a.secureCode
	}
	for _, name := range list {
		p := filepath.Join(a.firmwareDir, name)
		if _, err := os.Stat(p); err == nil {
			code = p
			break
		}
	}
	if code == "" {
		return "", "", fmt.Errorf("vm: UEFI firmware %s not found: install the Debian package %s",
			filepath.Join(a.firmwareDir, list[0]), a.firmwarePackage)
	}
	name, ok := a.vars[keys]
	if !ok {
		return "", "", fmt.Errorf("vm: unknown Secure Boot key store %q (want %s, %s or %s)", keys, KeysNone, KeysSnakeoil, KeysMicrosoft)
	}
	vars = filepath.Join(a.firmwareDir, name)
	if _, err := os.Stat(vars); err != nil {
		return "", "", fmt.Errorf("vm: UEFI variable store template %s not found: install the Debian package %s", vars, a.firmwarePackage)
	}
	return code, vars, nil
}

// varsStateName is the file in the state directory that holds the
// variable store of one firmware flavour. Each flavour keeps its own, so
// that turning Secure Boot off and on again does not mix stores written by
// different firmware builds.
func varsStateName(secureBoot bool, keys string) string {
	switch {
	case !secureBoot:
		return "efivars.fd"
	case keys == KeysNone:
		return "efivars-secureboot.fd"
	default:
		return "efivars-" + keys + ".fd"
	}
}

// kvmModules are the kernel modules that run ordinary (firmware-booted)
// guests. A /dev/kvm served by something else, such as a paravirtual
// nested KVM that only runs specially built guest kernels, opens fine but
// cannot run UEFI firmware.
var kvmModules = map[string][]string{
	"amd64": {"kvm_intel", "kvm_amd"},
}

// errKVM says why KVM is not used.
var errKVM = errors.New("KVM not usable")

// KVMUsable reports whether qemu can use KVM to run guest, and if not,
// why. It opens /dev/kvm, asks for the API version, and on x86 checks that
// /dev/kvm is served by the Intel or AMD hardware virtualisation module.
func KVMUsable(arch string) error {
	a, ok := arches[arch]
	if !ok {
		return fmt.Errorf("%w: unknown architecture %q", errKVM, arch)
	}
	if a.goarch != runtime.GOARCH {
		return fmt.Errorf("%w: a %s guest on a %s host", errKVM, arch, runtime.GOARCH)
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", errKVM, err)
	}
	defer f.Close()
	const kvmGetAPIVersion = 0xAE00
	const kvmAPIVersion = 12
	v, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, uintptr(unsafe.Pointer(nil)))
	if errno != 0 {
		return fmt.Errorf("%w: /dev/kvm: KVM_GET_API_VERSION: %v", errKVM, errno)
	}
	if v != kvmAPIVersion {
		return fmt.Errorf("%w: /dev/kvm: API version %d, want %d", errKVM, v, kvmAPIVersion)
	}
	if mods := kvmModules[runtime.GOARCH]; len(mods) > 0 {
		for _, m := range mods {
			if _, err := os.Stat(filepath.Join("/sys/module", m)); err == nil {
				return nil
			}
		}
		return fmt.Errorf("%w: /dev/kvm is not served by %s (it cannot run UEFI firmware)", errKVM, strings.Join(mods, " or "))
	}
	return nil
}
