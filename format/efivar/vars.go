package efivar

import (
	"fmt"
	"math/bits"
)

// Names of the Boot Loader Interface variables (vendor VendorLoader) as
// systemd-boot and systemd-stub 252 set and read them.
const (
	// Written by the OS (bootctl set-oneshot, systemctl reboot
	// --boot-loader-entry=); systemd-boot boots that entry once and deletes
	// the variable as soon as it has read it.
	LoaderEntryOneShot = "LoaderEntryOneShot"
	// Written by the OS (bootctl set-default): entry ID or glob, or
	// "@saved" to use LoaderEntryLastBooted.
	LoaderEntryDefault = "LoaderEntryDefault"
	// Written by systemd-boot in "@saved" mode (non-volatile).
	LoaderEntryLastBooted = "LoaderEntryLastBooted"
	// Written by systemd-boot (volatile): the ID of the entry it booted.
	// In v252 this is the lowercased file name of a UKI including its boot
	// counter and ".efi".
	LoaderEntrySelected = "LoaderEntrySelected"
	// Written by systemd-boot (volatile): every entry ID in menu order.
	LoaderEntries = "LoaderEntries"
	// Menu timeout: decimal seconds, "menu-force" or "menu-hidden".
	LoaderConfigTimeout = "LoaderConfigTimeout"
	// Menu timeout for the next boot only; systemd-boot deletes it.
	LoaderConfigTimeoutOneShot = "LoaderConfigTimeoutOneShot"
	// Console mode number as a decimal string.
	LoaderConfigConsoleMode = "LoaderConfigConsoleMode"
	// Written by systemd-boot (volatile) after it decremented a boot
	// counter: the new path of the entry, `\EFI\Linux\name+L-D.efi`.
	LoaderBootCountPath = "LoaderBootCountPath"
	// Partition UUID of the ESP the loader was started from, as a string.
	LoaderDevicePartUUID = "LoaderDevicePartUUID"
	// Path of the loader image on its partition, with backslashes.
	LoaderImageIdentifier = "LoaderImageIdentifier"
	// "systemd-boot VERSION".
	LoaderInfo = "LoaderInfo"
	// Firmware vendor and version, e.g. "EDK II 1.00".
	LoaderFirmwareInfo = "LoaderFirmwareInfo"
	// UEFI revision, e.g. "UEFI 2.70".
	LoaderFirmwareType = "LoaderFirmwareType"
	// Microseconds since power-on when the loader started, decimal.
	LoaderTimeInitUSec = "LoaderTimeInitUSec"
	// Microseconds since power-on when the loader started the kernel.
	LoaderTimeExecUSec = "LoaderTimeExecUSec"
	// Microseconds spent in the menu.
	LoaderTimeMenuUSec = "LoaderTimeMenuUSec"
	// u64 little-endian mask of LoaderFeature bits.
	LoaderFeatures = "LoaderFeatures"
	// Random bytes the installer stores for seeding; opaque.
	LoaderSystemToken = "LoaderSystemToken"
	// "systemd-stub VERSION".
	StubInfo = "StubInfo"
	// u64 little-endian mask of StubFeature bits.
	StubFeatures = "StubFeatures"
	// PCR the stub measured the UKI's sections into, decimal ("11").
	StubPcrKernelImage = "StubPcrKernelImage"
	// PCR the stub measured the kernel command line and credentials into
	// ("12").
	StubPcrKernelParameters = "StubPcrKernelParameters"
	// PCR the stub measured system extension images into ("13").
	StubPcrInitRDSysExts = "StubPcrInitRDSysExts"
	// PCR for configuration extensions (systemd-stub 256 and later).
	StubPcrInitRDConfExts = "StubPcrInitRDConfExts"
)

// Names of systemd's own variables (vendor VendorSystemd).
const (
	// A boolean string; systemd-repart 252 to 257, run in the initrd,
	// resets the partitions marked FactoryReset=yes when it is true, and
	// deletes the variable after it reset anything.
	FactoryReset = "FactoryReset"
	// The JSON request of systemd-factory-reset (systemd 258 and later);
	// systemd 252 ignores it.
	FactoryResetRequest = "FactoryResetRequest"
	// Extra kernel command line options for systemd (bootctl
	// systemd-efi-options).
	SystemdOptions = "SystemdOptions"
)

// Encoding says how a variable's payload is encoded.
type Encoding int

// The payload encodings systemd uses.
const (
	// EncodingRaw is opaque bytes.
	EncodingRaw Encoding = iota
	// EncodingString is one UTF-16LE string ending in a 16-bit NUL
	// (EncodeString, DecodeString).
	EncodingString
	// EncodingStringList is NUL-terminated UTF-16LE strings, concatenated
	// (EncodeStringList, DecodeStringList).
	EncodingStringList
	// EncodingDecimal is an unsigned decimal number written as an
	// EncodingString (EncodeDecimal, DecodeDecimal).
	EncodingDecimal
	// EncodingUint64 is 8 bytes, a little-endian u64 (EncodeUint64,
	// DecodeUint64).
	EncodingUint64
	// EncodingBoolean is an EncodingString read with ParseBoolean.
	EncodingBoolean
)

// String names the encoding in lowercase, as imago prints it.
func (e Encoding) String() string {
	switch e {
	case EncodingRaw:
		return "raw"
	case EncodingString:
		return "string"
	case EncodingStringList:
		return "string-list"
	case EncodingDecimal:
		return "decimal"
	case EncodingUint64:
		return "uint64"
	case EncodingBoolean:
		return "boolean"
	}
	return fmt.Sprintf("encoding(%d)", int(e))
}

// EncodingOf returns how systemd encodes the payload of a variable it
// knows, and EncodingRaw for every other variable.
// LoaderConfigTimeout and LoaderConfigTimeoutOneShot are strings because
// they may hold "menu-force" or "menu-hidden" instead of a number.
func EncodingOf(id ID) Encoding {
	switch id.Vendor {
	case VendorLoader:
		switch id.Name {
		case LoaderEntryOneShot, LoaderEntryDefault, LoaderEntryLastBooted, LoaderEntrySelected,
			LoaderConfigTimeout, LoaderConfigTimeoutOneShot, LoaderBootCountPath,
			LoaderDevicePartUUID, LoaderImageIdentifier, LoaderInfo, LoaderFirmwareInfo,
			LoaderFirmwareType, StubInfo:
			return EncodingString
		case LoaderEntries:
			return EncodingStringList
		case LoaderConfigConsoleMode, LoaderTimeInitUSec, LoaderTimeExecUSec, LoaderTimeMenuUSec,
			StubPcrKernelImage, StubPcrKernelParameters, StubPcrInitRDSysExts, StubPcrInitRDConfExts:
			return EncodingDecimal
		case LoaderFeatures, StubFeatures:
			return EncodingUint64
		}
	case VendorSystemd:
		switch id.Name {
		case FactoryReset:
			return EncodingBoolean
		case FactoryResetRequest, SystemdOptions:
			return EncodingString
		}
	}
	return EncodingRaw
}

// Values of LoaderConfigTimeout and LoaderConfigTimeoutOneShot with a
// special meaning.
const (
	// TimeoutMenuForce is what bootctl set-timeout menu-force writes
	// (UINT32_MAX): show the menu and wait indefinitely.
	TimeoutMenuForce = 4294967295
	// TimeoutMenuHidden is what bootctl set-timeout menu-hidden writes:
	// boot the default entry at once unless a key is pressed.
	TimeoutMenuHidden = 0
	// TimeoutMenuForceString and TimeoutMenuHiddenString are the string
	// forms systemd-boot writes itself when the user changes the timeout
	// in the menu; it accepts both forms.
	TimeoutMenuForceString  = "menu-force"
	TimeoutMenuHiddenString = "menu-hidden"
)

// LoaderFeature is the LoaderFeatures bit mask systemd-boot publishes, so
// the OS can tell what the installed loader supports before relying on it.
type LoaderFeature uint64

// The LoaderFeatures bits (src/fundamental/efivars-fundamental.h).
// systemd-boot 252 sets bits 0 to 10 (0x7ff).
const (
	LoaderFeatureConfigTimeout LoaderFeature = 1 << iota
	LoaderFeatureConfigTimeoutOneShot
	LoaderFeatureEntryDefault
	LoaderFeatureEntryOneShot
	LoaderFeatureBootCounting
	LoaderFeatureXBOOTLDR
	LoaderFeatureRandomSeed
	LoaderFeatureLoadDriver
	LoaderFeatureSortKey
	LoaderFeatureSavedEntry
	LoaderFeatureDevicetree
	LoaderFeatureSecureBootEnroll // systemd-boot 254 and later
	LoaderFeatureRetainShim       // systemd-boot 254 and later
	LoaderFeatureMenuDisable      // systemd-boot 255 and later
)

// Names lists the set bits by name, lowest first; bits without a name are
// listed as "bit-N".
func (f LoaderFeature) Names() []string {
	return bitNames(uint64(f), []string{
		"config-timeout", "config-timeout-one-shot", "entry-default", "entry-one-shot",
		"boot-counting", "xbootldr", "random-seed", "load-driver", "sort-key",
		"saved-entry", "devicetree", "secure-boot-enroll", "retain-shim", "menu-disable",
	})
}

// StubFeature is the StubFeatures bit mask systemd-stub publishes.
type StubFeature uint64

// The StubFeatures bits. systemd-stub 252 sets bits 0 to 3 (0x0f).
const (
	StubFeatureReportBootPartition StubFeature = 1 << iota
	StubFeaturePickUpCredentials
	StubFeaturePickUpSysExts
	StubFeatureThreePCRs
	StubFeatureRandomSeed       // systemd-stub 253 and later
	StubFeatureCmdlineAddons    // systemd-stub 254 and later
	StubFeatureCmdlineSMBIOS    // systemd-stub 254 and later
	StubFeatureDevicetreeAddons // systemd-stub 255 and later
	StubFeaturePickUpConfExts   // systemd-stub 256 and later
)

// Names lists the set bits by name, lowest first; bits without a name are
// listed as "bit-N".
func (f StubFeature) Names() []string {
	return bitNames(uint64(f), []string{
		"report-boot-partition", "pick-up-credentials", "pick-up-sysexts", "three-pcrs",
		"random-seed", "cmdline-addons", "cmdline-smbios", "devicetree-addons", "pick-up-confexts",
	})
}

func bitNames(mask uint64, names []string) []string {
	var out []string
	for mask != 0 {
		bit := bits.TrailingZeros64(mask)
		mask &^= 1 << bit
		if bit < len(names) {
			out = append(out, names[bit])
		} else {
			out = append(out, fmt.Sprintf("bit-%d", bit))
		}
	}
	return out
}

// FactoryResetValue is the payload imago writes to request a factory
// reset: the string "1", which systemd-repart reads as true.
const FactoryResetValue = "1"

// EncodeFactoryResetRequest returns the payload of the FactoryReset
// variable that requests a factory reset (EncodeString of
// FactoryResetValue). It is written with AttributesSystemd.
func EncodeFactoryResetRequest() []byte {
	return appendUTF16(nil, FactoryResetValue)
}

// DecodeFactoryReset reads the FactoryReset payload the way
// systemd-repart 252 does (efi_get_variable_string, then parse_boolean).
// A value that is not a boolean is an error; systemd-repart then fails,
// and with it the boot's repartitioning step.
func DecodeFactoryReset(data []byte) (bool, error) {
	s := DecodeString(data)
	b, err := ParseBoolean(s)
	if err != nil {
		return false, fmt.Errorf("efivar: %s: %w", FactoryReset, err)
	}
	return b, nil
}
