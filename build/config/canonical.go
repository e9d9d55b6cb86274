package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/imago-os/imago/format/unitfile"
)

// Canonical returns the definition's settings as one imago.conf: every
// key with its effective value, defaults included, in a fixed order, one
// list item per line, paths inside the definition directory relative to it.
// Loading it from the same directory gives the same Definition.
func (d *Definition) Canonical() ([]byte, error) {
	f := &unitfile.File{}
	add := func(section, key, value string) { f.Add(section, key, value) }
	addList := func(section, key string, values []string, quote bool) {
		for _, v := range values {
			if quote {
				v = quoteWord(v)
			}
			add(section, key, v)
		}
	}
	rel := func(p string) string { return quoteWord(relPath(d.Dir, p)) }
	relList := func(ps []string) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = rel(p)
		}
		return out
	}
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	optional := func(section, key, value string) {
		if value != "" {
			add(section, key, value)
		}
	}

	dist := d.Distribution
	add("Distribution", "Distribution", dist.Distribution)
	add("Distribution", "Release", dist.Release)
	add("Distribution", "Architecture", string(dist.Architecture))
	add("Distribution", "Mirror", dist.Mirror)
	add("Distribution", "SecurityMirror", dist.SecurityMirror)
	optional("Distribution", "Snapshot", dist.Snapshot)
	if len(dist.Repositories) == 0 {
		add("Distribution", "Repositories", "")
	}
	addList("Distribution", "Repositories", dist.Repositories, true)

	out := d.Output
	add("Output", "Format", out.Format)
	add("Output", "ImageId", out.ImageID)
	optional("Output", "ImageVersion", out.ImageVersion)
	add("Output", "OutputDirectory", rel(out.OutputDirectory))
	add("Output", "UsrFileSystem", out.UsrFileSystem)

	c := d.Content
	addList("Content", "Packages", c.Packages, true)
	addList("Content", "RemovePackages", c.RemovePackages, true)
	addList("Content", "RemoveFiles", c.RemoveFiles, true)
	for _, t := range c.ExtraTrees {
		add("Content", "ExtraTrees", quoteWord(relPath(d.Dir, t.Source)+":"+t.Target))
	}
	addList("Content", "PostInstallationScripts", relList(c.PostInstallationScripts), false)
	addList("Content", "FinalizeScripts", relList(c.FinalizeScripts), false)
	addList("Content", "KernelCommandLine", c.KernelCommandLine, false)
	if c.RootPassword != nil {
		v := c.RootPassword.Value
		if c.RootPassword.Hashed {
			v = "hashed:" + v
		}
		add("Content", "RootPassword", v)
	}
	optional("Content", "Hostname", c.Hostname)
	add("Content", "WithRecommends", yesNo(c.WithRecommends))
	add("Content", "InstallImago", yesNo(c.InstallImago))
	if c.SourceDateEpoch != nil {
		add("Content", "SourceDateEpoch", strconv.FormatInt(c.SourceDateEpoch.Unix(), 10))
	}

	v := d.Validation
	add("Validation", "SecureBoot", yesNo(v.SecureBoot))
	add("Validation", "SecureBootAutoEnroll", yesNo(v.SecureBootAutoEnroll))
	for _, kv := range [][2]string{{"SecureBootKey", v.SecureBootKey}, {"SecureBootCertificate", v.SecureBootCertificate}} {
		if kv[1] != "" {
			add("Validation", kv[0], rel(kv[1]))
		}
	}
	add("Validation", "Verity", v.Verity)
	for _, kv := range [][2]string{{"VerityKey", v.VerityKey}, {"VerityCertificate", v.VerityCertificate}} {
		if kv[1] != "" {
			add("Validation", kv[0], rel(kv[1]))
		}
	}
	add("Validation", "SignExpectedPcr", yesNo(v.SignExpectedPcr))
	for _, kv := range [][2]string{{"SignExpectedPcrKey", v.SignExpectedPcrKey}, {"SignExpectedPcrCertificate", v.SignExpectedPcrCertificate}} {
		if kv[1] != "" {
			add("Validation", kv[0], rel(kv[1]))
		}
	}
	add("Validation", "Checksum", yesNo(v.Checksum))
	add("Validation", "Sign", yesNo(v.Sign))
	if v.Key != "" {
		add("Validation", "Key", rel(v.Key))
	}

	if d.Build.CacheDirectory != "" {
		add("Build", "CacheDirectory", rel(d.Build.CacheDirectory))
	}
	text, err := f.Format()
	if err != nil {
		return nil, fmt.Errorf("config: canonical form: %w", err)
	}
	return text, nil
}

// Hash returns a SHA-256 (hex) over the canonical settings and the names
// and contents of the files in repart.d and sysupdate.d: equal hashes mean
// equal definitions. It does not cover the contents of extra trees,
// scripts or keys, which the build steps that use them hash themselves.
func (d *Definition) Hash() (string, error) {
	text, err := d.Canonical()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "imago-definition\n%d\n", len(text))
	h.Write(text)
	for _, dir := range []struct{ path, name string }{{d.RepartDir, "repart.d"}, {d.SysupdateDir, "sysupdate.d"}} {
		if dir.path == "" || d.fsys == nil {
			fmt.Fprintf(h, "-\n")
			continue
		}
		if err := hashDir(h, d.fsys, dir.name); err != nil {
			return "", fmt.Errorf("config: %s: %w", dir.path, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashDir feeds every file below dir in fsys, sorted by path, as
// "path size sha256" lines into h; a symbolic link counts by its target.
func hashDir(h io.Writer, fsys fs.FS, dir string) error {
	var files []string
	err := fs.WalkDir(fsys, dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	fmt.Fprintf(h, "%d\n", len(files))
	for _, p := range files {
		var data []byte
		if lfs, ok := fsys.(interface{ ReadLink(string) (string, error) }); ok {
			if target, err := lfs.ReadLink(p); err == nil {
				data = []byte("symlink:" + target)
			}
		}
		if data == nil {
			data, err = fs.ReadFile(fsys, p)
			if err != nil {
				return err
			}
		}
		fmt.Fprintf(h, "%s %d %x\n", strconv.Quote(p), len(data), sha256.Sum256(data))
	}
	return nil
}

// quoteWord writes a list item so that splitting it again (whitespace and
// commas separate, quotes group, C escapes decode) gives it back.
func quoteWord(w string) string {
	if w != "" && !strings.ContainsAny(w, listSeparators+"\"'\\") {
		return w
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(w); i++ {
		switch c := w[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
