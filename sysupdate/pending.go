package sysupdate

import (
	"fmt"

	"github.com/imago-os/imago/format/osrelease"
	"github.com/imago-os/imago/format/vercmp"
)

// Pending compares the newest installed version of p with the booted one,
// IMAGE_VERSION= of root's /etc/os-release (or /usr/lib/os-release): newer
// is true when a reboot would start a newer version (the pending and
// reboot verbs). Having no installed version or no IMAGE_VERSION= is an
// error.
func Pending(p *Plan, root string) (installed, booted string, newer bool, err error) {
	if p.NewestInstalled == nil {
		return "", "", false, fmt.Errorf("sysupdate: no installed version found")
	}
	installed = p.NewestInstalled.Version
	rel, file, err := osrelease.Load(root)
	if err != nil {
		return installed, "", false, fmt.Errorf("sysupdate: reading the booted version: %w", err)
	}
	booted = rel.ImageVersion()
	if booted == "" {
		return installed, "", false, fmt.Errorf("sysupdate: %s has no IMAGE_VERSION=", joinRoot(root, file))
	}
	return installed, booted, vercmp.Compare(installed, booted) > 0, nil
}
