// Package pe reads and writes the PE/COFF images that UEFI runs: systemd-boot,
// systemd-stub, Linux kernels built with the EFI stub, and Unified Kernel
// Images.
//
// It owns the on-disk layout described by Microsoft's PE/COFF specification
// as far as EFI images use it: the DOS header's pointer to the PE signature,
// the COFF file header, the PE32 and PE32+ optional headers with their data
// directories, and the section table. Parse validates what it reads so that
// every offset it hands out lies inside the image; a File can be changed with
// the operations systemd's ukify (systemd 254 to 256) performs when it builds
// a UKI — strip a trailing COFF symbol table, align raw data, drop the
// certificate table, append sections after the last one, rewrite a section in
// place — and written back with Bytes.
//
// It also computes the two checksums a signer needs: the optional header's
// CheckSum (as sbsign 0.9.4 writes it) and the Authenticode image digest
// (the ranges sbsign, osslsigncode and UEFI firmware hash), as described in
// docs/formats/pe.md.
//
// The package is pure: it works on byte slices and never touches files.
package pe
