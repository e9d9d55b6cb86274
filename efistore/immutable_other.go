//go:build !linux

package efistore

// isEfivarfs is false outside Linux: there is no efivarfs.
func isEfivarfs(string) bool { return false }

// clearImmutable has nothing to do outside Linux.
func clearImmutable(string) (restore func()) { return func() {} }
