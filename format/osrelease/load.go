package osrelease

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/imago-os/imago/internal/chase"
)

// Paths inside an OS tree, in the order systemd 252 looks at them.
const (
	EtcOSReleasePath     = "/etc/os-release"
	UsrLibOSReleasePath  = "/usr/lib/os-release"
	InitrdReleasePath    = "/etc/initrd-release"
	ExtensionReleaseDir  = "/usr/lib/extension-release.d"
	extensionReleaseBase = "extension-release."
)

// maxSymlinks bounds symlink resolution, as the kernel does (ELOOP at 40).
const maxSymlinks = 40

// Load reads the os-release file of the OS tree at root ("" or "/" for the
// running system): /etc/os-release if it exists, else /usr/lib/os-release.
// Symbolic links are resolved inside root, so an absolute link in an image
// never reaches the host. It returns the path used, relative to root. When
// neither file exists the error wraps fs.ErrNotExist.
func Load(root string) (*Release, string, error) {
	for _, p := range []string{EtcOSReleasePath, UsrLibOSReleasePath} {
		rel, err := ReadFile(root, p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return rel, p, err
	}
	return nil, "", fmt.Errorf("osrelease: neither %s nor %s in %q: %w", EtcOSReleasePath, UsrLibOSReleasePath, rootOrSlash(root), fs.ErrNotExist)
}

// LoadInitrd reads /etc/initrd-release of the tree at root, the file whose
// presence marks an initrd.
func LoadInitrd(root string) (*Release, string, error) {
	rel, err := ReadFile(root, InitrdReleasePath)
	if err != nil {
		return nil, "", err
	}
	return rel, InitrdReleasePath, nil
}

// ExtensionReleasePath returns the path of the extension-release file of the
// system extension name, relative to the extension's root.
func ExtensionReleasePath(name string) string {
	return ExtensionReleaseDir + "/" + extensionReleaseBase + name
}

// ValidExtensionName reports whether name can name a system extension image
// (systemd's image_name_is_valid): a file name, not "." or "..", at most 255
// bytes, valid UTF-8, no control characters, and not starting with ".#".
func ValidExtensionName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 255 {
		return false
	}
	if strings.ContainsRune(name, '/') || strings.HasPrefix(name, ".#") || !utf8.ValidString(name) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] == 0x7f {
			return false
		}
	}
	return true
}

// LoadExtension reads /usr/lib/extension-release.d/extension-release.NAME of
// the system extension tree at root. systemd also accepts a single file with
// another NAME when it carries the user.extension-release.strict=false
// extended attribute; that fallback is not implemented here.
func LoadExtension(root, name string) (*Release, string, error) {
	if !ValidExtensionName(name) {
		return nil, "", fmt.Errorf("osrelease: %q is not a valid extension name", name)
	}
	p := ExtensionReleasePath(name)
	rel, err := ReadFile(root, p)
	if err != nil {
		return nil, "", err
	}
	return rel, p, nil
}

// ReadFile parses the file at path inside the tree at root, resolving
// symbolic links inside root. Errors name the file.
func ReadFile(root, path string) (*Release, error) {
	host, err := chase.InRoot(root, path, maxSymlinks)
	if err != nil {
		return nil, fmt.Errorf("osrelease: %s: %w", path, err)
	}
	f, err := os.Open(host)
	if err != nil {
		return nil, fmt.Errorf("osrelease: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("osrelease: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("osrelease: %s: not a regular file", host)
	}
	rel, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	return rel, nil
}

func rootOrSlash(root string) string {
	if root == "" {
		return "/"
	}
	return root
}
