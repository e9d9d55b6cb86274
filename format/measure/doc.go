// Package measure predicts the PCR 11 values a Unified Kernel Image produces
// when systemd-stub boots it and systemd-pcrphase marks the boot phases, and
// signs them into the JSON document of a UKI's .pcrsig section, exactly as
// systemd-measure 252 does ("calculate" and "sign").
//
// It owns:
//   - the PCR 11 measurement of systemd-stub 252: for each of .linux .osrel
//     .cmdline .initrd .splash .dtb .pcrpkey that is present and not empty,
//     in that order, the bank's hash of the section name with its NUL and
//     then of the section's contents are extended into an all-zero PCR;
//   - the phase words systemd-pcrphase extends afterwards (a phase path such
//     as "enter-initrd:leave-initrd"), and systemd-measure's default,
//     normalised and sorted phase lists;
//   - the .pcrsig JSON: per bank, one entry per phase path with the PCR
//     list [11], the SHA-256 fingerprint of the signing key ("pkfp"), the
//     TPM2 PolicyPCR digest ("pol", format/tpm2policy) and the signature of
//     that digest with the bank's hash ("sig");
//   - systemd's JSON text forms (short, pretty) and systemd-measure's text
//     output, byte for byte.
//
// Unlike systemd-measure 252, which asks a TPM for the policy digest, the
// digest is computed in software. docs/formats/measure.md is the normative
// description.
//
// The package is pure: it works on byte slices and never touches files.
package measure
