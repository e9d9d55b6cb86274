// Package uki assembles and inspects Unified Kernel Images (UKIs), the
// single EFI binaries made of systemd-stub plus a kernel, initrds, a kernel
// command line and os-release that systemd-boot lists from /EFI/Linux/
// (UAPI.5, "Unified Kernel Image").
//
// Build lays the sections out exactly as systemd's ukify does in systemd
// 254–256 (src/ukify/ukify.py, pe_add_sections and make_uki): the stub's
// trailing symbol table is cut off, new sections are appended after the
// stub's last one in the order .osrel .cmdline .dtb .uname .splash .pcrpkey
// .initrd, then .sbat (merged from the stub's and the kernel's and rewritten
// in the stub's own section), then .pcrsig, with .linux last, each at the next
// SectionAlignment boundary in memory and FileAlignment boundary in the file,
// with VirtualSize equal to the data length. The result boots with the
// systemd-stub of systemd 252 that Debian 12 ships (linuxx64.efi.stub from
// systemd-boot-efi), whose section alignment is 512 bytes, as well as with
// later stubs.
//
// Signing is layered on top: the contents a PCR 11 signature covers are the
// sections' data (Sections), not their placement, so a .pcrsig can be
// computed from Sections and the UKI rebuilt with Input.PCRSig set;
// Authenticode signing of the finished image comes last. The package is
// pure: it works on byte slices.
package uki
