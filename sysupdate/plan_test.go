package sysupdate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-os/imago/format/sha256sums"
)

// test72 is the fixture of systemd's TEST-72-SYSUPDATE (transfers 1 to 7)
// on a disk image file. Installing is simulated by labelling partitions and
// creating target files, since this package does not write yet.
type test72 struct {
	t                           *testing.T
	work, source, disk, defs    string
	dirs, xbootldr, esp, system string
	sectorSize                  int
	labels                      [4]string
}

func newTest72(t *testing.T, sectorSize int) *test72 {
	w := t.TempDir()
	x := &test72{t: t, work: w, source: filepath.Join(w, "source"), disk: filepath.Join(w, "disk.img"), defs: filepath.Join(w, "defs"),
		dirs: filepath.Join(w, "dirs"), xbootldr: filepath.Join(w, "xbootldr"), esp: filepath.Join(w, "esp"), system: filepath.Join(w, "system"),
		sectorSize: sectorSize, labels: [4]string{"_empty", "_empty", "_empty", "_empty"}}
	for _, d := range []string{x.source, x.defs, x.dirs, filepath.Join(x.xbootldr, "EFI/Linux"), filepath.Join(x.esp, "EFI/Linux"), x.system} {
		os.MkdirAll(d, 0o755)
	}
	x.writeDisk()
	defs := map[string]string{
		"01-first.transfer": `[Source]
Type=regular-file
Path=` + x.source + `
MatchPattern=part1-@v.raw
[Target]
Type=partition
Path=` + x.disk + `
MatchPattern=part1-@v
MatchPartitionType=root-x86-64
`,
		"02-second.transfer": `[Source]
Type=regular-file
Path=` + x.source + `
MatchPattern=part2-@v.raw.gz
[Target]
Type=partition
Path=` + x.disk + `
MatchPattern=a-very-long-partition-name-@v
MatchPartitionType=root-x86-64-verity
`,
		"03-third.transfer": `[Source]
Type=directory
Path=` + x.source + `
MatchPattern=dir-@v
[Target]
Type=directory
Path=` + x.dirs + `
CurrentSymlink=` + x.dirs + `/current
MatchPattern=dir-@v
InstancesMax=3
`,
		"04-fourth.transfer": `[Source]
Type=regular-file
Path=` + x.source + `
MatchPattern=uki-@v.efi
[Target]
Type=regular-file
Path=/EFI/Linux
PathRelativeTo=boot
MatchPattern=uki_@v+@l-@d.efi \
             uki_@v+@l.efi \
             uki_@v.efi
Mode=0444
TriesLeft=3
TriesDone=0
InstancesMax=2
`,
		"05-fifth.transfer": `[Source]
Type=regular-file
Path=` + x.source + `
MatchPattern=uki-extra-@v.efi
[Target]
Type=regular-file
Path=/EFI/Linux
PathRelativeTo=boot
MatchPattern=uki_@v.efi.extra.d/extra.addon.efi
Mode=0444
InstancesMax=2
`,
		"06-sixth.transfer": `[Source]
Type=regular-file
Path=` + x.source + `
MatchPattern=linux-@v.erofs
[Target]
Type=regular-file
Path=` + x.system + `
MatchPattern=linux-@v.erofs
ReadOnly=yes
InstancesMax=4
`,
		"07-seventh.transfer": `[Source]
Type=regular-file
Path=` + x.source + `
MatchPattern=linux-@v.erofs.caibx
[Target]
Type=regular-file
Path=` + x.system + `
MatchPattern=linux-@v.erofs.caibx
ReadOnly=yes
InstancesMax=4
`,
	}
	for n, c := range defs {
		writeFile(t, filepath.Join(x.defs, n), c)
	}
	return x
}

func (x *test72) writeDisk() { makeDisk(x.t, x.disk, x.sectorSize, x.labels) }

// publish creates version v's files in the source directory.
func (x *test72) publish(v string) {
	for _, n := range []string{"part1-%s.raw", "part2-%s.raw.gz", "uki-%s.efi", "uki-extra-%s.efi", "linux-%s.erofs", "linux-%s.erofs.caibx", "dir-%s/foo.txt"} {
		writeFile(x.t, filepath.Join(x.source, fmt.Sprintf(n, v)), v)
	}
}

// install simulates an installation of v into slot (1 or 2).
func (x *test72) install(v string, slot int) {
	x.labels[slot-1] = "part1-" + v
	x.labels[slot+1] = "a-very-long-partition-name-" + v
	x.writeDisk()
	writeFile(x.t, filepath.Join(x.dirs, "dir-"+v, "foo.txt"), v)
	writeFile(x.t, filepath.Join(x.xbootldr, "EFI/Linux", "uki_"+v+"+3-0.efi"), v)
	writeFile(x.t, filepath.Join(x.xbootldr, "EFI/Linux", "uki_"+v+".efi.extra.d/extra.addon.efi"), v)
	writeFile(x.t, filepath.Join(x.system, "linux-"+v+".erofs"), v)
	writeFile(x.t, filepath.Join(x.system, "linux-"+v+".erofs.caibx"), v)
}

// remove simulates evicting v from slot.
func (x *test72) remove(v string, slot int) {
	x.labels[slot-1], x.labels[slot+1] = "_empty", "_empty"
	x.writeDisk()
	for _, p := range []string{filepath.Join(x.dirs, "dir-"+v), filepath.Join(x.xbootldr, "EFI/Linux", "uki_"+v+"+3-0.efi"),
		filepath.Join(x.xbootldr, "EFI/Linux", "uki_"+v+".efi.extra.d"), filepath.Join(x.system, "linux-"+v+".erofs"), filepath.Join(x.system, "linux-"+v+".erofs.caibx")} {
		os.RemoveAll(p)
	}
}

func (x *test72) plan(offline bool) *Plan {
	x.t.Helper()
	ts, err := Load(Options{Definitions: x.defs, Specifiers: &testSpec})
	if err != nil {
		x.t.Fatal(err)
	}
	p, err := BuildPlan(context.Background(), ts, PlanOptions{Offline: offline, Env: Env{ESP: x.esp, XBOOTLDR: x.xbootldr, Verify: &noVerify}})
	if err != nil {
		x.t.Fatal(err)
	}
	return p
}

// list renders the plan as "version:assessment" pairs, newest first.
func list(p *Plan) string {
	var s []string
	for _, us := range p.Sets {
		s = append(s, us.Version+":"+us.Flags.Assessment())
	}
	return strings.Join(s, " ")
}

func checkNew(p *Plan) string {
	v, ok := p.CheckNew()
	if !ok {
		return "-"
	}
	return v
}

func TestTest72Scenarios(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			x := newTest72(t, ss)
			step := func(name, wantList, wantNew string, offline bool) *Plan {
				t.Helper()
				p := x.plan(offline)
				if got := list(p); got != wantList {
					t.Errorf("%s: list = %q, want %q", name, got, wantList)
				}
				if got := checkNew(p); got != wantNew {
					t.Errorf("%s: check-new = %q, want %q", name, got, wantNew)
				}
				return p
			}
			step("nothing published", "", "-", false)

			// 1. First install.
			x.publish("v1")
			p := step("v1 published", "v1:candidate", "v1", false)
			for _, v := range p.VacuumPlan(1, "v1") {
				if v.Err != nil || len(v.Remove) != 0 {
					t.Errorf("vacuum before v1: %s %v %d", v.Transfer.ID, v.Err, len(v.Remove))
				}
			}
			// The first target pattern names the new instances.
			uki := p.Transfers[3]
			f := p.Candidate.Available[3].Fields
			f.TriesLeft, f.HasTriesLeft = *uki.TriesLeft, true
			f.TriesDone, f.HasTriesDone = *uki.TriesDone, true
			if name, err := uki.Target.Patterns[0].Format(f); err != nil || name != "uki_v1+3-0.efi" {
				t.Errorf("uki name %q %v", name, err)
			}
			x.install("v1", 1)
			step("v1 installed", "v1:current", "-", false)

			// 2. Second slot.
			x.publish("v2")
			p = step("v2 published", "v2:candidate v1:current", "v2", false)
			for _, v := range p.VacuumPlan(1, "v2") {
				if v.Err != nil || len(v.Remove) != 0 {
					t.Errorf("vacuum before v2: %s %v %d", v.Transfer.ID, v.Err, len(v.Remove))
				}
			}
			x.install("v2", 2)
			step("v2 installed", "v2:current v1:installed", "-", false)

			// 3. Replace the oldest: the vacuum frees v1's slot and files.
			x.publish("v3")
			p = step("v3 published", "v3:candidate v2:current v1:installed", "v3", false)
			removed := map[string]string{}
			for _, v := range p.VacuumPlan(1, "v3") {
				if v.Err != nil {
					t.Errorf("vacuum %s: %v", v.Transfer.ID, v.Err)
				}
				var names []string
				for _, in := range v.Remove {
					names = append(names, in.Name)
				}
				removed[v.Transfer.ID] = strings.Join(names, ",")
			}
			want := map[string]string{"01-first": "part1-v1", "02-second": "a-very-long-partition-name-v1", "03-third": "",
				"04-fourth": "uki_v1+3-0.efi", "05-fifth": "uki_v1.efi.extra.d/extra.addon.efi", "06-sixth": "", "07-seventh": ""}
			for id, w := range want {
				if removed[id] != w {
					t.Errorf("vacuum for v3: %s removes %q, want %q", id, removed[id], w)
				}
			}
			x.remove("v1", 1)
			os.RemoveAll(filepath.Join(x.source, "dir-v1")) // keep the sets short
			x.install("v3", 1)
			step("v3 installed", "v3:current v2:installed", "-", false) // v1 no longer complete on the source

			// 4. An incomplete server-side version is not offered.
			x.publish("v4")
			os.Remove(filepath.Join(x.source, "uki-extra-v4.efi"))
			step("v4 incomplete", "v3:current v2:installed", "-", false)

			// 5. A complete v5 skips the incomplete v4.
			x.publish("v5")
			step("v5 published", "v5:candidate v3:current v2:installed", "v5", false)
			x.remove("v2", 2)
			x.install("v5", 2)
			step("v5 installed", "v5:current v3:installed v2:available", "-", false)

			// 6. A local install missing a piece is reported incomplete
			// (offline) and offered again for repair.
			os.RemoveAll(filepath.Join(x.xbootldr, "EFI/Linux/uki_v5.efi.extra.d"))
			step("v5 damaged, offline", "v5:current+incomplete v3:installed", "-", true)
			step("v5 damaged", "v5:current+incomplete v3:installed v2:available", "v5", false)
			x.install("v5", 2)
			step("v5 repaired", "v5:current v3:installed", "-", true)

			// ProtectVersion= and MinVersion= (the booted version is
			// usually protected with %A).
			ts, _ := Load(Options{Definitions: x.defs, Specifiers: &testSpec})
			ts[0].ProtectVersions = []string{"v3"}
			ts[2].MinVersion = "v4"
			p, err := BuildPlan(context.Background(), ts, PlanOptions{Env: Env{ESP: x.esp, XBOOTLDR: x.xbootldr}})
			if err != nil {
				t.Fatal(err)
			}
			if got := list(p); got != "v5:current v3:protected+obsolete v2:available+obsolete" {
				t.Errorf("protected/obsolete: %q", got)
			}
			if us := p.Set("v3"); us == nil || us.Installed[0].Partition.Number != 1 || us.Installed[1].Partition.Number != 3 {
				t.Errorf("v3 slots: %+v", us)
			}
			// With both slots used and v3 protected, an update must evict
			// v5; protecting both leaves nothing to evict.
			if v := p.VacuumPlan(1, "v6")[0]; v.Limit != 1 || len(v.Remove) != 1 || v.Remove[0].Version() != "v5" {
				t.Errorf("vacuum with v3 protected: %+v", v)
			}
			ts[0].ProtectVersions = []string{"v3", "v5"}
			if v := p.VacuumPlan(1, "v6")[0]; len(v.Remove) != 0 {
				t.Errorf("vacuum with all protected: %+v", v)
			}
		})
	}
}

func TestAssessment(t *testing.T) {
	cases := map[Flags]string{
		0:                          "n/a",
		FlagInstalled | FlagNewest: "current",
		FlagInstalled | FlagNewest | FlagAvailable | FlagProtected: "current",
		FlagAvailable | FlagNewest:                                 "candidate",
		FlagAvailable | FlagNewest | FlagProtected:                 "candidate",
		FlagInstalled:                                              "installed",
		FlagInstalled | FlagAvailable:                              "installed",
		FlagInstalled | FlagProtected:                              "protected",
		FlagAvailable | FlagProtected:                              "available",
		FlagInstalled | FlagNewest | FlagObsolete:                  "current+obsolete",
		FlagInstalled | FlagAvailable | FlagObsolete:               "installed+obsolete",
		FlagInstalled | FlagProtected | FlagObsolete:               "protected+obsolete",
		FlagAvailable | FlagNewest | FlagObsolete:                  "available+obsolete",
		FlagInstalled | FlagNewest | FlagIncomplete:                "current+incomplete",
		FlagInstalled | FlagIncomplete:                             "installed+incomplete",
		FlagInstalled | FlagProtected | FlagIncomplete:             "protected+incomplete",
		FlagInstalled | FlagNewest | FlagObsolete | FlagIncomplete: "current+obsolete+incomplete",
	}
	for f, want := range cases {
		if got := f.Assessment(); got != want {
			t.Errorf("%#x: %q, want %q", f, got, want)
		}
	}
}

func TestVacuumLimits(t *testing.T) {
	tr := mustParse(t, minimal)
	d := &Discovery{}
	for _, v := range []string{"5", "4", "3", "2"} {
		d.Instances = append(d.Instances, &Instance{Name: "foo_" + v + ".raw"})
		d.Instances[len(d.Instances)-1].Fields.Version = v
	}
	v := vacuumTransfer(tr, d, 0, "")
	if v.Limit != 3 || len(v.Remove) != 1 || v.Remove[0].Version() != "2" {
		t.Errorf("space 0: %+v", v)
	}
	tr.ProtectVersions = []string{"2", "3"}
	v = vacuumTransfer(tr, d, 1, "")
	if v.Limit != 2 || len(v.Remove) != 2 || v.Remove[0].Version() != "4" || v.Remove[1].Version() != "5" {
		t.Errorf("protected: limit %d remove %v", v.Limit, v.Remove)
	}
	if v = vacuumTransfer(tr, d, 3, ""); v.Err == nil {
		t.Error("space == InstancesMax accepted")
	}
	// Partitions: fewer than two slots of the type is refused.
	pt := mustParse(t, "[Source]\nType=regular-file\nPath=/s\nMatchPattern=a_@v\n[Target]\nType=partition\nPath=/dev/sda\n")
	if v = vacuumTransfer(pt, &Discovery{EmptySlots: []PartitionInfo{{}}}, 1, ""); v.Err == nil || !strings.Contains(v.Err.Error(), "at least 2") {
		t.Errorf("one slot: %v", v.Err)
	}
}

// TestTest72RemoteSources is scenario 10: transfers 2 and 3 switched to
// url-file and url-tar sources on file:// URLs with a SHA256SUMS manifest.
func TestTest72RemoteSources(t *testing.T) {
	x := newTest72(t, 512)
	for _, v := range []string{"v6", "v7"} {
		x.publish(v)
		writeFile(t, filepath.Join(x.source, "dir-"+v+".tar.gz"), "tar "+v)
	}
	x.install("v6", 1)
	names := []string{"part2-v6.raw.gz", "part2-v7.raw.gz", "dir-v6.tar.gz", "dir-v7.tar.gz", "uki-v7.efi"}
	entries, err := sha256sums.SumDir(x.source, names)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create(filepath.Join(x.source, "SHA256SUMS"))
	sha256sums.WriteSysupdate(f, entries)
	f.Close()
	second, _ := os.ReadFile(filepath.Join(x.defs, "02-second.transfer"))
	writeFile(t, filepath.Join(x.defs, "02-second.transfer"), strings.Replace(strings.Replace(string(second), "Type=regular-file", "Type=url-file", 1), "Path="+x.source, "Path=file://"+x.source, 1))
	third, _ := os.ReadFile(filepath.Join(x.defs, "03-third.transfer"))
	s := strings.Replace(string(third), "Type=directory\nPath="+x.source+"\nMatchPattern=dir-@v", "Type=url-tar\nPath=file://"+x.source+"\nMatchPattern=dir-@v.tar.gz", 1)
	writeFile(t, filepath.Join(x.defs, "03-third.transfer"), s)
	p := x.plan(false)
	if got := list(p); got != "v7:candidate v6:current" {
		t.Errorf("list = %q", got)
	}
	if p.Transfers[1].Source.Type != URLFile || p.Transfers[2].Source.Type != URLTar {
		t.Fatalf("types %s %s", p.Transfers[1].Source.Type, p.Transfers[2].Source.Type)
	}
	in := p.Candidate.Available[2]
	if in.Path != "file://"+x.source+"/dir-v7.tar.gz" || in.Fields.SHA256 != entries[3].Digest {
		t.Errorf("url-tar instance %+v", in)
	}
}
