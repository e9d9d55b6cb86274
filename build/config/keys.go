package config

import (
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/imago-os/imago/format/dps"
	"github.com/imago-os/imago/format/unitfile"
)

// key is how one key is parsed. apply handles a non-empty assignment; reset
// an empty one, which restores the default (or empties a list).
type key struct {
	apply func(p *parser, e unitfile.Entry) error
	reset func(p *parser)
}

// sections maps each section to its keys. It is never modified.
var sections = map[string]map[string]key{
	"Distribution": {
		"Distribution": {
			apply: func(p *parser, e unitfile.Entry) error {
				if e.Value != "debian" {
					return e.Errorf("%q is not supported (supported: debian)", e.Value)
				}
				p.d.Distribution.Distribution = e.Value
				return nil
			},
			reset: func(p *parser) { p.d.Distribution.Distribution = DefaultDistribution },
		},
		"Release": {
			apply: func(p *parser, e unitfile.Entry) error {
				if !releaseRE.MatchString(e.Value) {
					return e.Errorf("%q is not a release name (lower-case letters, digits, '.' and '-')", e.Value)
				}
				p.d.Distribution.Release = e.Value
				return nil
			},
			reset: func(p *parser) { p.d.Distribution.Release = DefaultRelease },
		},
		"Architecture": {
			apply: func(p *parser, e unitfile.Entry) error {
				a := dps.Arch(e.Value)
				if _, ok := debianArches[a]; !ok {
					return e.Errorf("%q is not supported (supported: x86-64, arm64)", e.Value)
				}
				p.d.Distribution.Architecture = a
				return nil
			},
			reset: func(p *parser) { p.d.Distribution.Architecture = hostArch() },
		},
		"Mirror": {
			apply: func(p *parser, e unitfile.Entry) error {
				if err := checkURL(e.Value); err != nil {
					return e.Errorf("%v", err)
				}
				p.d.Distribution.Mirror = e.Value
				return nil
			},
			reset: func(p *parser) { p.d.Distribution.Mirror = "" },
		},
		"SecurityMirror": {
			apply: func(p *parser, e unitfile.Entry) error {
				if err := checkURL(e.Value); err != nil {
					return e.Errorf("%v", err)
				}
				p.d.Distribution.SecurityMirror = e.Value
				return nil
			},
			reset: func(p *parser) { p.d.Distribution.SecurityMirror = "" },
		},
		"Snapshot": {
			apply: func(p *parser, e unitfile.Entry) error {
				if !snapshotRE.MatchString(e.Value) {
					return e.Errorf("%q is not a snapshot time stamp like 20250101T000000Z", e.Value)
				}
				p.d.Distribution.Snapshot = e.Value
				return nil
			},
			reset: func(p *parser) { p.d.Distribution.Snapshot = "" },
		},
		// The default (main) holds until the first assignment.
		"Repositories": setOnce(listKey(
			func(d *Definition) *[]string { return &d.Distribution.Repositories },
			func(w string) error {
				if !componentRE.MatchString(w) {
					return fmt.Errorf("%q is not an archive component name", w)
				}
				return nil
			}), func(p *parser) *bool { return &p.repositoriesSet }),
	},
	"Output": {
		"Format": {
			apply: func(p *parser, e unitfile.Entry) error {
				if e.Value != "disk" {
					return e.Errorf("%q is not supported (supported: disk)", e.Value)
				}
				p.d.Output.Format = e.Value
				return nil
			},
			reset: func(p *parser) { p.d.Output.Format = DefaultFormat },
		},
		"ImageId": {
			apply: func(p *parser, e unitfile.Entry) error {
				if err := checkImageID(e.Value); err != nil {
					return e.Errorf("%q: %v", e.Value, err)
				}
				p.d.Output.ImageID = e.Value
				return nil
			},
			reset: func(p *parser) { p.d.Output.ImageID = "" },
		},
		"ImageVersion": {
			apply: func(p *parser, e unitfile.Entry) error {
				if err := checkImageVersion(e.Value); err != nil {
					return e.Errorf("%q: %v", e.Value, err)
				}
				p.d.Output.ImageVersion = e.Value
				return nil
			},
			reset: func(p *parser) { p.d.Output.ImageVersion = "" },
		},
		"OutputDirectory": {
			apply: func(p *parser, e unitfile.Entry) error {
				v, err := singlePath(e)
				if err != nil {
					return err
				}
				p.d.Output.OutputDirectory = p.abs(v)
				return nil
			},
			reset: func(p *parser) { p.d.Output.OutputDirectory = "" },
		},
		"UsrFileSystem": {
			apply: func(p *parser, e unitfile.Entry) error {
				if e.Value != "erofs" && e.Value != "squashfs" {
					return e.Errorf("%q is not supported (supported: erofs, squashfs)", e.Value)
				}
				p.d.Output.UsrFileSystem = e.Value
				return nil
			},
			reset: func(p *parser) { p.d.Output.UsrFileSystem = DefaultUsrFileSystem },
		},
	},
	"Content": {
		"Packages": listKey(
			func(d *Definition) *[]string { return &d.Content.Packages }, checkPackage),
		"RemovePackages": listKey(
			func(d *Definition) *[]string { return &d.Content.RemovePackages }, checkPackage),
		"RemoveFiles": listKey(
			func(d *Definition) *[]string { return &d.Content.RemoveFiles },
			func(w string) error {
				if !strings.HasPrefix(w, "/") {
					return fmt.Errorf("%q is not an absolute path", w)
				}
				if _, err := path.Match(w, ""); err != nil {
					return fmt.Errorf("%q: bad glob pattern", w)
				}
				return nil
			}),
		"ExtraTrees": {
			apply: func(p *parser, e unitfile.Entry) error {
				words, err := splitPaths(e)
				if err != nil {
					return err
				}
				for _, w := range words {
					t, err := p.tree(w)
					if err != nil {
						return e.Errorf("%v", err)
					}
					p.d.Content.ExtraTrees = append(p.d.Content.ExtraTrees, t)
				}
				return nil
			},
			reset: func(p *parser) { p.d.Content.ExtraTrees = nil },
		},
		"PostInstallationScripts": scriptsKey(func(d *Definition) *[]string { return &d.Content.PostInstallationScripts }),
		"FinalizeScripts":         scriptsKey(func(d *Definition) *[]string { return &d.Content.FinalizeScripts }),
		"KernelCommandLine": {
			apply: func(p *parser, e unitfile.Entry) error {
				// Quotes group a parameter's value and stay in it, as the
				// kernel wants them; backslashes are ordinary characters.
				words, err := unitfile.SplitWords(e.Value, "", unitfile.ExtractKeepQuote|unitfile.ExtractRetainEscape)
				if err != nil {
					return e.Errorf("%v", err)
				}
				for _, w := range words {
					for _, own := range []string{"usrhash=", "roothash=", "mount.usr="} {
						if strings.HasPrefix(w, own) {
							return e.Errorf("%q: imago sets %s itself", w, own)
						}
					}
					if strings.ContainsFunc(w, isControl) {
						return e.Errorf("%q: control characters are not allowed", w)
					}
				}
				p.d.Content.KernelCommandLine = append(p.d.Content.KernelCommandLine, words...)
				return nil
			},
			reset: func(p *parser) { p.d.Content.KernelCommandLine = nil },
		},
		"RootPassword": {
			apply: func(p *parser, e unitfile.Entry) error {
				pw := &Password{Value: e.Value}
				if v, ok := strings.CutPrefix(e.Value, "hashed:"); ok {
					pw = &Password{Value: v, Hashed: true}
				}
				if strings.ContainsRune(pw.Value, ':') && pw.Hashed {
					return e.Errorf("a password hash cannot contain ':'")
				}
				if strings.ContainsFunc(pw.Value, isControl) {
					return e.Errorf("control characters are not allowed")
				}
				p.d.Content.RootPassword = pw
				return nil
			},
			reset: func(p *parser) { p.d.Content.RootPassword = nil },
		},
		"Hostname": {
			apply: func(p *parser, e unitfile.Entry) error {
				if !hostnameRE.MatchString(e.Value) || len(e.Value) > 64 {
					return e.Errorf("%q is not a valid host name", e.Value)
				}
				p.d.Content.Hostname = e.Value
				return nil
			},
			reset: func(p *parser) { p.d.Content.Hostname = "" },
		},
		"Bootable": {
			apply: func(p *parser, e unitfile.Entry) error {
				if e.Value == "auto" {
					return nil
				}
				b, err := unitfile.ParseBool(e.Value)
				if err != nil {
					return e.Errorf("%q is not a boolean or \"auto\"", e.Value)
				}
				if !b {
					return e.Errorf("imago builds bootable disk images only")
				}
				return nil
			},
			reset: func(*parser) {},
		},
		"WithRecommends": boolKey(func(d *Definition) *bool { return &d.Content.WithRecommends }, false),
		"InstallImago":   boolKey(func(d *Definition) *bool { return &d.Content.InstallImago }, false),
		"SourceDateEpoch": {
			apply: func(p *parser, e unitfile.Entry) error {
				n, err := strconv.ParseInt(e.Value, 10, 64)
				if err != nil || n < 0 || n > maxEpoch {
					return e.Errorf("%q is not a number of seconds since 1970", e.Value)
				}
				t := time.Unix(n, 0).UTC()
				p.d.Content.SourceDateEpoch = &t
				return nil
			},
			reset: func(p *parser) { p.d.Content.SourceDateEpoch = nil },
		},
	},
	"Validation": {
		"SecureBoot":           boolKey(func(d *Definition) *bool { return &d.Validation.SecureBoot }, true),
		"SecureBootAutoEnroll": boolKey(func(d *Definition) *bool { return &d.Validation.SecureBootAutoEnroll }, true),
		"SecureBootKey":        fileKey(func(d *Definition) *string { return &d.Validation.SecureBootKey }),
		"SecureBootCertificate": fileKey(func(d *Definition) *string {
			return &d.Validation.SecureBootCertificate
		}),
		"Verity": {
			apply: func(p *parser, e unitfile.Entry) error {
				if b, err := unitfile.ParseBool(e.Value); (err == nil && b) || e.Value == "signed" || e.Value == "auto" {
					p.d.Validation.Verity = "signed"
					return nil
				}
				return e.Errorf("%q is not supported: imago always builds a verity hash partition and a signature partition for /usr (Verity=signed)", e.Value)
			},
			reset: func(p *parser) { p.d.Validation.Verity = "signed" },
		},
		"VerityKey":         fileKey(func(d *Definition) *string { return &d.Validation.VerityKey }),
		"VerityCertificate": fileKey(func(d *Definition) *string { return &d.Validation.VerityCertificate }),
		"SignExpectedPcr": {
			apply: func(p *parser, e unitfile.Entry) error {
				if e.Value == "auto" {
					p.d.Validation.SignExpectedPcr = true
					return nil
				}
				b, err := unitfile.ParseBool(e.Value)
				if err != nil {
					return e.Errorf("%q is not a boolean or \"auto\"", e.Value)
				}
				p.d.Validation.SignExpectedPcr = b
				return nil
			},
			reset: func(p *parser) { p.d.Validation.SignExpectedPcr = true },
		},
		"SignExpectedPcrKey": fileKey(func(d *Definition) *string { return &d.Validation.SignExpectedPcrKey }),
		"SignExpectedPcrCertificate": fileKey(func(d *Definition) *string {
			return &d.Validation.SignExpectedPcrCertificate
		}),
		"Checksum": boolKey(func(d *Definition) *bool { return &d.Validation.Checksum }, true),
		"Sign":     boolKey(func(d *Definition) *bool { return &d.Validation.Sign }, true),
		"Key":      fileKey(func(d *Definition) *string { return &d.Validation.Key }),
	},
	"Build": {
		"CacheDirectory": {
			apply: func(p *parser, e unitfile.Entry) error {
				v, err := singlePath(e)
				if err != nil {
					return err
				}
				p.d.Build.CacheDirectory = p.abs(v)
				return nil
			},
			reset: func(p *parser) { p.d.Build.CacheDirectory = "" },
		},
	},
}

// maxEpoch is the last second a FAT time stamp, the narrowest the build
// writes, can hold (the end of 2107).
const maxEpoch = 4354819199

var (
	releaseRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)
	snapshotRE  = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z$`)
	componentRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	// Debian package names, optionally with :arch, =version or /release.
	packageRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+:=~_/-]*$`)
	hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)
	imageIDRE  = regexp.MustCompile(`^[a-z0-9._-]+$`)
	// The characters systemd-sysupdate allows in a version, without '_'
	// and '+', which separate the version from what follows it in the
	// names imago gives partitions and files.
	versionRE = regexp.MustCompile(`^[A-Za-z0-9.,-]+$`)
)

// gptLabelMax is the longest GPT partition label, in UTF-16 code units.
const gptLabelMax = 36

func checkImageID(v string) error {
	if !imageIDRE.MatchString(v) {
		return fmt.Errorf("an image ID consists of lower-case letters, digits, '.', '_' and '-'")
	}
	if len(v) > gptLabelMax-2 {
		return fmt.Errorf("longer than %d characters: with the version it must fit a %d-character partition label", gptLabelMax-2, gptLabelMax)
	}
	return nil
}

func checkImageVersion(v string) error {
	if !versionRE.MatchString(v) || v == "." || v == ".." {
		return fmt.Errorf("a version consists of letters, digits, '.', ',' and '-'")
	}
	return nil
}

// checkLabel checks that "<id>_<version>" fits a GPT partition label.
func checkLabel(id, version string) error {
	if n := len(id) + 1 + len(version); n > gptLabelMax {
		return fmt.Errorf("the partition label %q has %d characters, more than the %d a GPT label holds: shorten ImageId= or ImageVersion=", id+"_"+version, n, gptLabelMax)
	}
	return nil
}

func checkURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%q is not a URL", v)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", v)
		}
	case "file":
		if u.Path == "" {
			return fmt.Errorf("%q has no path", v)
		}
	default:
		return fmt.Errorf("%q: the scheme must be http, https or file", v)
	}
	return nil
}

func checkPackage(w string) error {
	if !packageRE.MatchString(w) {
		return fmt.Errorf("%q is not a package name", w)
	}
	return nil
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// listSeparators split the values of list keys: whitespace and commas, as
// mkosi's comma-separated lists also may be.
const listSeparators = " \t\n\r,"

// splitPaths splits a list value into words; quotes group words and C
// escapes are decoded, so paths with spaces can be written.
func splitPaths(e unitfile.Entry) ([]string, error) {
	words, err := unitfile.SplitWords(e.Value, listSeparators, unitfile.ExtractUnquote|unitfile.ExtractCUnescape)
	if err != nil {
		return nil, e.Errorf("%v", err)
	}
	for _, w := range words {
		if w == "" || strings.ContainsFunc(w, isControl) {
			return nil, e.Errorf("%q: empty words and control characters are not allowed", w)
		}
	}
	return words, nil
}

// singlePath reads a key that holds one path.
func singlePath(e unitfile.Entry) (string, error) {
	words, err := splitPaths(e)
	if err != nil {
		return "", err
	}
	if len(words) != 1 {
		return "", e.Errorf("want one path, got %d words", len(words))
	}
	return words[0], nil
}

// listKey is a key whose assignments add words to a list.
func listKey(field func(*Definition) *[]string, check func(string) error) key {
	return key{
		apply: func(p *parser, e unitfile.Entry) error {
			words, err := splitPaths(e)
			if err != nil {
				return err
			}
			for _, w := range words {
				if err := check(w); err != nil {
					return e.Errorf("%v", err)
				}
			}
			l := field(p.d)
			*l = append(*l, words...)
			return nil
		},
		reset: func(p *parser) { *field(p.d) = nil },
	}
}

// setOnce records in a flag that k was assigned, so that a default can be
// applied afterwards to a key that never was.
func setOnce(k key, flag func(*parser) *bool) key {
	return key{
		apply: func(p *parser, e unitfile.Entry) error {
			*flag(p) = true
			return k.apply(p, e)
		},
		reset: func(p *parser) {
			*flag(p) = true
			k.reset(p)
		},
	}
}

// boolKey is a boolean key with a default.
func boolKey(field func(*Definition) *bool, def bool) key {
	return key{
		apply: func(p *parser, e unitfile.Entry) error {
			b, err := unitfile.ParseBool(e.Value)
			if err != nil {
				return e.Errorf("%q is not a boolean", e.Value)
			}
			*field(p.d) = b
			return nil
		},
		reset: func(p *parser) { *field(p.d) = def },
	}
}

// fileKey is a key that names an existing regular file.
func fileKey(field func(*Definition) *string) key {
	return key{
		apply: func(p *parser, e unitfile.Entry) error {
			v, err := singlePath(e)
			if err != nil {
				return err
			}
			abs := p.abs(v)
			fi, err := p.stat(abs)
			if err != nil {
				return e.Errorf("%s: %v", abs, unwrapPathError(err))
			}
			if !fi.Mode().IsRegular() {
				return e.Errorf("%s: not a regular file", abs)
			}
			*field(p.d) = abs
			return nil
		},
		reset: func(p *parser) { *field(p.d) = "" },
	}
}

// scriptsKey is a list of existing executable files.
func scriptsKey(field func(*Definition) *[]string) key {
	return key{
		apply: func(p *parser, e unitfile.Entry) error {
			words, err := splitPaths(e)
			if err != nil {
				return err
			}
			for _, w := range words {
				abs := p.abs(w)
				fi, err := p.stat(abs)
				if err != nil {
					return e.Errorf("%s: %v", abs, unwrapPathError(err))
				}
				if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
					return e.Errorf("%s: not an executable file", abs)
				}
				l := field(p.d)
				*l = append(*l, abs)
			}
			return nil
		},
		reset: func(p *parser) { *field(p.d) = nil },
	}
}

// tree parses one ExtraTrees= word, SOURCE[:TARGET].
func (p *parser) tree(w string) (Tree, error) {
	src, target, hasTarget := strings.Cut(w, ":")
	if src == "" {
		return Tree{}, fmt.Errorf("%q: no source directory", w)
	}
	if !hasTarget {
		target = "/"
	}
	if !strings.HasPrefix(target, "/") {
		return Tree{}, fmt.Errorf("%q: the target %q is not an absolute path", w, target)
	}
	abs := p.abs(src)
	fi, err := p.stat(abs)
	if err != nil {
		return Tree{}, fmt.Errorf("%s: %v", abs, unwrapPathError(err))
	}
	if !fi.IsDir() {
		return Tree{}, fmt.Errorf("%s: not a directory", abs)
	}
	return Tree{Source: abs, Target: path.Clean(target)}, nil
}

// unwrapPathError drops the path from a *fs.PathError, whose path is the
// name inside the definition's file system rather than the one the user
// knows.
func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// relPath writes a path of the definition relative to its directory when it
// is inside it, for the canonical form.
func relPath(dir, p string) string {
	if rel, err := filepath.Rel(dir, p); err == nil && fs.ValidPath(filepath.ToSlash(rel)) && rel != "." {
		return rel
	}
	if p == dir {
		return "."
	}
	return p
}
