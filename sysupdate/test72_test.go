package sysupdate

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/imago-os/imago/internal/testutil"

	"github.com/imago-os/imago/format/gpt"
)

// t72 is the fixture of systemd's TEST-72-SYSUPDATE: a GPT image file with
// two root-x86-64 and two root-x86-64-verity slots, seven transfers plus a
// feature-gated eighth, real payloads, and updates performed by Update.
type t72 struct {
	t                                  *testing.T
	work, source, disk, defs, cache    string
	dirs, xbootldr, esp, system, blobs string
	sectorSize                         int
	rng                                *rand.ChaCha8
}

func newT72(t *testing.T, sectorSize int) *t72 {
	w := t.TempDir()
	x := &t72{t: t, work: w, source: filepath.Join(w, "source"), disk: filepath.Join(w, "disk.img"), defs: filepath.Join(w, "defs"),
		cache: filepath.Join(w, "cache"), dirs: filepath.Join(w, "dirs"), xbootldr: filepath.Join(w, "xbootldr"), esp: filepath.Join(w, "esp"),
		system: filepath.Join(w, "system"), blobs: filepath.Join(w, "blobs"), sectorSize: sectorSize, rng: rand.NewChaCha8([32]byte{byte(sectorSize >> 8), 72})}
	for _, d := range []string{x.source, x.defs, x.dirs, filepath.Join(x.xbootldr, "EFI/Linux"), filepath.Join(x.esp, "EFI/Linux"), x.system} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	makeDisk(t, x.disk, sectorSize, [4]string{"_empty", "_empty", "_empty", "_empty"})
	for n, c := range t72Definitions(x) {
		writeFile(t, filepath.Join(x.defs, n), c)
	}
	return x
}

func t72Definitions(x *t72) map[string]string {
	file := func(src, path, rel, patterns, extra string) string {
		s := "[Source]\nType=regular-file\nPath=" + x.source + "\nMatchPattern=" + src + "\n[Target]\nType=regular-file\nPath=" + path + "\n"
		if rel != "" {
			s += "PathRelativeTo=" + rel + "\n"
		}
		return s + "MatchPattern=" + patterns + "\n" + extra
	}
	return map[string]string{
		"01-first.transfer": "[Source]\nType=regular-file\nPath=" + x.source + "\nMatchPattern=part1-@v.raw\n" +
			"[Target]\nType=partition\nPath=" + x.disk + "\nMatchPattern=part1-@v\nMatchPartitionType=root-x86-64\n",
		"02-second.transfer": "[Source]\nType=regular-file\nPath=" + x.source + "\nMatchPattern=part2-@v.raw.gz\n" +
			"[Target]\nType=partition\nPath=" + x.disk + "\nMatchPattern=a-very-long-partition-name-@v\nMatchPartitionType=root-x86-64-verity\n",
		"03-third.transfer": "[Source]\nType=directory\nPath=" + x.source + "\nMatchPattern=dir-@v\n" +
			"[Target]\nType=directory\nPath=" + x.dirs + "\nCurrentSymlink=" + x.dirs + "/current\nMatchPattern=dir-@v\nInstancesMax=3\n",
		"04-fourth.transfer": file("uki-@v.efi", "/EFI/Linux", "boot", "uki_@v+@l-@d.efi uki_@v+@l.efi uki_@v.efi",
			"Mode=0444\nTriesLeft=3\nTriesDone=0\nInstancesMax=2\n"),
		"05-fifth.transfer":   file("uki-extra-@v.efi", "/EFI/Linux", "boot", "uki_@v.efi.extra.d/extra.addon.efi", "Mode=0444\nInstancesMax=2\n"),
		"06-sixth.transfer":   file("linux-@v.erofs", x.system, "", "linux-@v.erofs", "ReadOnly=yes\nInstancesMax=4\n"),
		"07-seventh.transfer": file("linux-@v.erofs.caibx", x.system, "", "linux-@v.erofs.caibx", "ReadOnly=yes\nInstancesMax=4\n"),
		"optional.feature":    "[Feature]\nDescription=Optional Feature\n",
		"99-optional.transfer": "[Transfer]\nFeatures=optional\n" +
			file("optional-@v.efi", "/EFI/Linux", "boot", "uki_@v.efi.extra.d/optional.efi", "Mode=0444\nInstancesMax=2\n"),
	}
}

func (x *t72) random(n int) []byte {
	b := make([]byte, n)
	x.rng.Read(b)
	return b
}

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarGz(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg})
		tw.Write([]byte(files[n]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return gz(t, buf.Bytes())
}

// publish creates version v in the source directory as TEST-72 does and
// rewrites SHA256SUMS.
func (x *t72) publish(v string) {
	t := x.t
	slot := 2048 * x.sectorSize
	part1 := append(make([]byte, x.sectorSize), x.random(slot-x.sectorSize)...)
	part2 := x.random(slot)
	w := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(x.source, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w("part1-"+v+".raw", part1)
	w("part2-"+v+".raw", part2)
	w("part2-"+v+".raw.gz", gz(t, part2))
	for _, n := range []string{"linux-%s.erofs", "linux-%s.erofs.caibx", "uki-%s.efi", "uki-extra-%s.efi", "optional-%s.efi"} {
		w(fmt.Sprintf(n, v), []byte(hex.EncodeToString(x.random(16))+"\n"))
	}
	foo, bar := hex.EncodeToString(x.random(8)), hex.EncodeToString(x.random(8))
	writeFile(t, filepath.Join(x.source, "dir-"+v, "foo.txt"), foo)
	writeFile(t, filepath.Join(x.source, "dir-"+v, "bar.txt"), bar)
	w("dir-"+v+".tar.gz", tarGz(t, map[string]string{"foo.txt": foo, "bar.txt": bar}))
	x.writeSums(nil)
}

// writeSums lists uki*, part*, dir-*.tar.gz and linux* in SHA256SUMS (not
// optional-*), with the digests in wrong replaced.
func (x *t72) writeSums(wrong map[string]bool) {
	entries, _ := os.ReadDir(x.source)
	var b strings.Builder
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !(strings.HasPrefix(n, "uki") || strings.HasPrefix(n, "part") || strings.HasPrefix(n, "linux") ||
			(strings.HasPrefix(n, "dir-") && strings.HasSuffix(n, ".tar.gz"))) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(x.source, n))
		if err != nil {
			x.t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if wrong[n] {
			sum = sha256.Sum256(append(data, 'X'))
		}
		fmt.Fprintf(&b, "%x  %s\n", sum, n)
	}
	if err := os.WriteFile(filepath.Join(x.source, "SHA256SUMS"), []byte(b.String()), 0o644); err != nil {
		x.t.Fatal(err)
	}
}

func (x *t72) env() Env {
	no := false
	return Env{ESP: x.esp, XBOOTLDR: x.xbootldr, Verify: &no, CacheDir: x.cache}
}

func (x *t72) plan(offline bool) *Plan {
	x.t.Helper()
	ts, err := Load(Options{Definitions: x.defs, Specifiers: &testSpec})
	if err != nil {
		x.t.Fatal(err)
	}
	p, err := BuildPlan(context.Background(), ts, PlanOptions{Offline: offline, Env: x.env()})
	if err != nil {
		x.t.Fatal(err)
	}
	return p
}

// update is TEST-72's "update now": check-new finds v, Update installs it,
// check-new then finds nothing.
func (x *t72) update(v string) *UpdateResult {
	x.t.Helper()
	p := x.plan(false)
	if got := checkNew(p); got != v {
		x.t.Fatalf("check-new before update = %q, want %q", got, v)
	}
	res, err := p.Update(context.Background(), "", UpdateOptions{})
	if err != nil {
		x.t.Fatalf("update to %s: %v", v, err)
	}
	if got := checkNew(x.plan(false)); got != "-" {
		x.t.Fatalf("check-new after update = %q", got)
	}
	return res
}

func (x *t72) read(p string) []byte {
	x.t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		x.t.Fatal(err)
	}
	return b
}

func (x *t72) sameFile(got, want string) {
	x.t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		x.t.Errorf("%v", err)
		return
	}
	if !bytes.Equal(g, x.read(want)) {
		x.t.Errorf("%s differs from %s", got, want)
	}
}

// table reads the test disk's partition table.
func (x *t72) table() *gpt.Table {
	x.t.Helper()
	tab := testutil.ReadGPTImage(x.t, x.disk)
	if tab.SectorSize != x.sectorSize || tab.UsedBackup || len(tab.Warnings) != 0 {
		x.t.Fatalf("table: sector size %d, used backup %v, warnings %v", tab.SectorSize, tab.UsedBackup, tab.Warnings)
	}
	return tab
}

func (x *t72) partitionBytes(tab *gpt.Table, n int) []byte {
	x.t.Helper()
	p, ok := tab.Partition(n)
	if !ok {
		x.t.Fatalf("no partition %d", n)
	}
	off, size := p.Bytes(tab.SectorSize)
	b := make([]byte, size)
	f, _ := os.Open(x.disk)
	defer f.Close()
	if _, err := f.ReadAt(b, off); err != nil {
		x.t.Fatal(err)
	}
	return b
}

// verify is TEST-72's "verify V in slot N".
func (x *t72) verify(v string, slot int) {
	x.t.Helper()
	tab := x.table()
	p1, _ := tab.Partition(slot)
	p2, _ := tab.Partition(slot + 2)
	if p1.Name != "part1-"+v || p2.Name != "a-very-long-partition-name-"+v {
		x.t.Errorf("slot %d labels %q %q, want version %s", slot, p1.Name, p2.Name, v)
	}
	if !bytes.Equal(x.partitionBytes(tab, slot), x.read(filepath.Join(x.source, "part1-"+v+".raw"))) {
		x.t.Errorf("partition %d does not hold part1-%s.raw", slot, v)
	}
	if !bytes.Equal(x.partitionBytes(tab, slot+2), x.read(filepath.Join(x.source, "part2-"+v+".raw"))) {
		x.t.Errorf("partition %d does not hold part2-%s.raw", slot+2, v)
	}
	linux := filepath.Join(x.xbootldr, "EFI/Linux")
	x.sameFile(filepath.Join(linux, "uki_"+v+"+3-0.efi"), filepath.Join(x.source, "uki-"+v+".efi"))
	x.sameFile(filepath.Join(linux, "uki_"+v+".efi.extra.d/extra.addon.efi"), filepath.Join(x.source, "uki-extra-"+v+".efi"))
	x.sameFile(filepath.Join(x.system, "linux-"+v+".erofs"), filepath.Join(x.source, "linux-"+v+".erofs"))
	x.sameFile(filepath.Join(x.system, "linux-"+v+".erofs.caibx"), filepath.Join(x.source, "linux-"+v+".erofs.caibx"))
	if es, _ := os.ReadDir(filepath.Join(x.esp, "EFI/Linux")); len(es) != 0 {
		x.t.Errorf("the ESP got files although XBOOTLDR exists: %v", es)
	}
	if st, err := os.Stat(filepath.Join(linux, "uki_"+v+"+3-0.efi")); err != nil || st.Mode().Perm() != 0o444 {
		x.t.Errorf("uki mode: %v %v", st, err)
	}
	if st, err := os.Stat(filepath.Join(x.system, "linux-"+v+".erofs")); err != nil || st.Mode().Perm()&0o222 != 0 {
		x.t.Errorf("ReadOnly=yes file is writable: %v %v", st, err)
	}
}

// verifyCurrent also checks the current symlink of the directory transfer.
func (x *t72) verifyCurrent(v string, slot int) {
	x.t.Helper()
	x.verify(v, slot)
	for _, n := range []string{"foo.txt", "bar.txt"} {
		x.sameFile(filepath.Join(x.dirs, "current", n), filepath.Join(x.source, "dir-"+v, n))
	}
	if l, err := os.Readlink(filepath.Join(x.dirs, "current")); err != nil || l != "dir-"+v {
		x.t.Errorf("current -> %q %v, want relative dir-%s", l, err, v)
	}
}

func (x *t72) exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func (x *t72) assess(offline bool, v string) string {
	x.t.Helper()
	us := x.plan(offline).Set(v)
	if us == nil {
		return "-"
	}
	return us.Flags.Assessment()
}

// switchToURL makes transfers 2 and 3 url-file and url-tar sources on
// file:// URLs (scenario 10).
func (x *t72) switchToURL() {
	second := x.read(filepath.Join(x.defs, "02-second.transfer"))
	s := strings.Replace(strings.Replace(string(second), "Type=regular-file", "Type=url-file", 1), "Path="+x.source, "Path=file://"+x.source, 1)
	writeFile(x.t, filepath.Join(x.defs, "02-second.transfer"), s)
	third := x.read(filepath.Join(x.defs, "03-third.transfer"))
	s = strings.Replace(string(third), "Type=directory\nPath="+x.source+"\nMatchPattern=dir-@v", "Type=url-tar\nPath=file://"+x.source+"\nMatchPattern=dir-@v.tar.gz", 1)
	writeFile(x.t, filepath.Join(x.defs, "03-third.transfer"), s)
}

func TestTest72(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			t.Parallel()
			x := newT72(t, ss)
			linux := filepath.Join(x.xbootldr, "EFI/Linux")
			run := func(name string, f func()) {
				t.Run(name, func(t *testing.T) {
					x.t = t
					f()
				})
				x.t = t
				if t.Failed() {
					t.FailNow() // later scenarios build on this one
				}
			}
			run("1-first-install", func() {
				x.publish("v1")
				res := x.update("v1")
				if len(res.Installed) != 7 || res.Installed[0].Partition != 1 || res.Installed[1].Partition != 3 {
					t.Errorf("installed %+v", res.Installed)
				}
				x.verifyCurrent("v1", 1)
			})
			run("2-second-slot", func() {
				x.publish("v2")
				x.update("v2")
				x.verifyCurrent("v2", 2)
				x.verify("v1", 1)
			})
			run("3-replace-oldest", func() {
				x.publish("v3")
				x.update("v3")
				x.verifyCurrent("v3", 1)
				x.verify("v2", 2)
				for _, p := range []string{filepath.Join(linux, "uki_v1+3-0.efi"), filepath.Join(linux, "uki_v1.efi.extra.d")} {
					if x.exists(p) {
						x.t.Errorf("%s survived the vacuum", p)
					}
				}
			})
			run("4-incomplete-server-side", func() {
				x.publish("v4")
				os.Remove(filepath.Join(x.source, "uki-extra-v4.efi"))
				x.writeSums(nil)
				if got := checkNew(x.plan(false)); got != "-" {
					x.t.Errorf("check-new offers %q", got)
				}
			})
			run("5-skip-incomplete", func() {
				x.publish("v5")
				x.update("v5")
				x.verifyCurrent("v5", 2)
				x.verify("v3", 1)
			})
			run("6-repair", func() {
				if err := os.RemoveAll(filepath.Join(linux, "uki_v5.efi.extra.d")); err != nil {
					x.t.Fatal(err)
				}
				if got := x.assess(true, "v5"); got != "current+incomplete" {
					x.t.Errorf("damaged v5 is %q", got)
				}
				before := x.read(x.disk)
				res := x.update("v5")
				if len(res.Installed) != 1 || res.Installed[0].Transfer != "05-fifth" || !res.Plan.Repair {
					x.t.Errorf("repair installed %+v", res.Installed)
				}
				if !bytes.Equal(before, x.read(x.disk)) {
					x.t.Error("the repair changed the disk")
				}
				if got := x.assess(true, "v5"); got != "current" {
					x.t.Errorf("repaired v5 is %q", got)
				}
				x.verify("v3", 1)
				x.verifyCurrent("v5", 2)
			})
			optional := filepath.Join(linux, "uki_v5.efi.extra.d/optional.efi")
			run("7-enable-feature", func() {
				fs, err := LoadFeatures(Options{Definitions: x.defs})
				if err != nil || len(fs) != 1 || fs[0].Name != "optional" || fs[0].Enabled || fs[0].Description != "Optional Feature" {
					x.t.Fatalf("features %+v %v", fs, err)
				}
				ts, _ := Load(Options{Definitions: x.defs, Specifiers: &testSpec})
				if of := TransfersOf(ts, "optional"); len(of) != 1 || of[0].ID != "99-optional" || of[0].Enabled {
					x.t.Errorf("transfers of optional: %+v", of)
				}
				if x.exists(optional) {
					x.t.Fatal("optional.efi exists before the feature is enabled")
				}
				writeFile(x.t, filepath.Join(x.defs, "optional.feature.d/enable.conf"), "[Feature]\nEnabled=true\n")
				if got := x.assess(true, "v5"); got != "current+incomplete" {
					x.t.Errorf("v5 with the feature enabled is %q", got)
				}
				before := x.read(x.disk)
				x.update("v5")
				x.sameFile(optional, filepath.Join(x.source, "optional-v5.efi"))
				if got := x.assess(true, "v5"); got != "current" {
					x.t.Errorf("v5 after filling in is %q", got)
				}
				if !bytes.Equal(before, x.read(x.disk)) {
					x.t.Error("filling in the feature changed the disk")
				}
			})
			run("8-disable-feature", func() {
				os.RemoveAll(filepath.Join(x.defs, "optional.feature.d"))
				p := x.plan(false)
				if got := checkNew(p); got != "-" {
					x.t.Errorf("check-new offers %q", got)
				}
				res, err := x.plan(true).Vacuum(context.Background(), UpdateOptions{})
				if err != nil || len(res.Errors) != 0 {
					x.t.Fatalf("vacuum: %v %v", err, res.Errors)
				}
				if x.exists(optional) {
					x.t.Error("vacuum left the disabled feature's file")
				}
				if !x.exists(filepath.Join(linux, "uki_v5.efi.extra.d/extra.addon.efi")) {
					x.t.Error("vacuum removed the directory with another transfer's file")
				}
				if got := x.assess(true, "v5"); got != "current" {
					x.t.Errorf("v5 after vacuum is %q", got)
				}
				x.verify("v3", 1)
				x.verifyCurrent("v5", 2)
			})
			run("9-next", func() {
				x.publish("v6")
				x.update("v6")
				x.verifyCurrent("v6", 1)
				x.verify("v5", 2)
			})
			run("10-remote-sources", func() {
				x.publish("v7")
				x.switchToURL()
				p := x.plan(false)
				if p.Transfers[1].Source.Type != URLFile || p.Transfers[2].Source.Type != URLTar {
					x.t.Fatalf("source types %s %s", p.Transfers[1].Source.Type, p.Transfers[2].Source.Type)
				}
				up, err := p.PlanUpdate(context.Background(), "", UpdateOptions{})
				if err != nil {
					x.t.Fatal(err)
				}
				gzSize := int64(len(x.read(filepath.Join(x.source, "part2-v7.raw.gz"))))
				if tp := up.Transfers[1]; tp.URL != "file://"+x.source+"/part2-v7.raw.gz" || tp.DownloadSize != gzSize || tp.SignatureChecked ||
					tp.Slot == nil || tp.Slot.Number != 4 || tp.TargetName != "a-very-long-partition-name-v7" {
					x.t.Errorf("plan for transfer 2: %+v", tp)
				}
				x.update("v7")
				x.verifyCurrent("v7", 2)
				x.verify("v6", 1)
				// Installed downloads leave the cache.
				if left, _ := os.ReadDir(x.cache); len(left) != 0 {
					x.t.Errorf("download cache not emptied after the install: %d entries", len(left))
				}
			})
			run("12-next", func() {
				x.publish("v8")
				x.update("v8")
				x.verifyCurrent("v8", 1)
				x.verify("v7", 2)
			})
			run("13-bad-hashes", func() {
				x.publish("v9")
				wrong := map[string]bool{}
				for _, n := range []string{"part1-v9.raw", "part2-v9.raw", "part2-v9.raw.gz", "uki-v9.efi", "uki-extra-v9.efi", "linux-v9.erofs", "linux-v9.erofs.caibx", "dir-v9.tar.gz"} {
					wrong[n] = true
				}
				x.writeSums(wrong)
				diskBefore := x.read(x.disk)
				p := x.plan(false)
				if _, err := p.Update(context.Background(), "", UpdateOptions{}); !errors.Is(err, ErrHashMismatch) {
					x.t.Errorf("update with bad hashes: %v", err)
				}
				if !bytes.Equal(diskBefore, x.read(x.disk)) {
					x.t.Error("a failed download changed the disk")
				}
				x.verifyCurrent("v8", 1)
				x.verify("v7", 2)
				if got := x.assess(false, "v9"); got != "candidate" {
					x.t.Errorf("v9 is %q", got)
				}
				x.writeSums(nil)
				x.update("v9")
				x.verifyCurrent("v9", 2)
				x.verify("v8", 1)
			})
		})
	}
}

// TestTest72Tiny is scenario 14: a 2-byte uncompressed file, shorter than
// any compression magic, through url-file.
func TestTest72Tiny(t *testing.T) {
	w := t.TempDir()
	src, blobs, defs := filepath.Join(w, "source"), filepath.Join(w, "blobs"), filepath.Join(w, "defs")
	writeFile(t, filepath.Join(src, "tiny-v1.bin"), "xx")
	sum := sha256.Sum256([]byte("xx"))
	writeFile(t, filepath.Join(src, "SHA256SUMS"), hex.EncodeToString(sum[:])+"  tiny-v1.bin\n")
	writeFile(t, filepath.Join(defs, "50-tiny.transfer"), "[Source]\nType=url-file\nPath=file://"+src+"\nMatchPattern=tiny-@v.bin\n"+
		"[Target]\nType=regular-file\nPath="+blobs+"\nMatchPattern=tiny-@v.bin\nInstancesMax=1\n")
	ts, err := Load(Options{Definitions: defs, Specifiers: &testSpec})
	if err != nil {
		t.Fatal(err)
	}
	if ts[0].InstancesMax != 2 {
		t.Errorf("InstancesMax=1 became %d, want 2", ts[0].InstancesMax)
	}
	no := false
	p, err := BuildPlan(context.Background(), ts, PlanOptions{Env: Env{Verify: &no, CacheDir: filepath.Join(w, "cache")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Update(context.Background(), "", UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(blobs, "tiny-v1.bin")); err != nil || string(b) != "xx" {
		t.Errorf("tiny file %q %v", b, err)
	}
}
