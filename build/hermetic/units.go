package hermetic

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/imago-os/imago/format/unitfile"
)

// systemUnitDirs are the unit directories of /usr, in systemd 252's lookup
// order (Debian builds it with /lib/systemd/system first; on a merged-/usr
// tree both are the same directory).
var systemUnitDirs = []string{"/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

const etcSystemUnits = "/etc/systemd/system"

// enablement is the analysis of the links under /etc/systemd/system.
type enablement struct {
	// covered are the link paths that the preset recreates.
	covered map[string]bool
	// presets are the preset lines, "enable UNIT [INSTANCE...]".
	presets []string
}

// unitInstall is the [Install] section of a unit file.
type unitInstall struct {
	wantedBy, requiredBy, alias, also []string
	defaultInstance                   string
}

// loadInstall reads the [Install] section of a unit from the unit
// directories of /usr. ok is false when /usr has no such unit file.
func loadInstall(root, name string) (unitInstall, bool) {
	fsys := os.DirFS(root)
	for _, dir := range systemUnitDirs {
		f, err := unitfile.ReadFile(fsys, path.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return unitInstall{}, false
		}
		var in unitInstall
		words := func(key string) []string {
			var out []string
			for _, v := range f.Values("Install", key) {
				if v == "" {
					out = nil
					continue
				}
				w, err := unitfile.SplitWords(v, "", unitfile.ExtractUnquote|unitfile.ExtractRelax)
				if err == nil {
					out = append(out, w...)
				}
			}
			return out
		}
		in.wantedBy, in.requiredBy, in.alias, in.also = words("WantedBy"), words("RequiredBy"), words("Alias"), words("Also")
		if d := words("DefaultInstance"); len(d) > 0 {
			in.defaultInstance = d[len(d)-1]
		}
		return in, true
	}
	return unitInstall{}, false
}

// splitInstance splits "foo@bar.service" into "foo@.service" and "bar".
func splitInstance(name string) (template, instance string) {
	at := strings.IndexByte(name, '@')
	dot := strings.LastIndexByte(name, '.')
	if at < 0 || dot < at {
		return name, ""
	}
	return name[:at+1] + name[dot:], name[at+1 : dot]
}

// withInstance makes "foo@bar.service" from "foo@.service" and "bar".
func withInstance(template, instance string) string {
	at := strings.IndexByte(template, '@')
	return template[:at+1] + instance + template[at+1:]
}

// installLinks adds to out the links (paths relative to /etc/systemd/system,
// each mapped to the unit file name it points at) that enabling unit (with
// instance, for a template) creates, following Also=.
// ok is false when a unit file or a specifier makes it unpredictable.
func installLinks(root, unit, instance string, seen map[string]bool, out map[string]string) bool {
	key := unit + "\x00" + instance
	if seen[key] {
		return true
	}
	seen[key] = true
	in, found := loadInstall(root, unit)
	if !found {
		return false
	}
	name := unit
	if _, inst := splitInstance(unit); inst == "" && strings.Contains(unit, "@") {
		if instance == "" {
			instance = in.defaultInstance
		}
		if instance == "" {
			return len(in.wantedBy)+len(in.requiredBy)+len(in.alias) == 0 && alsoLinks(root, in.also, seen, out)
		}
		name = withInstance(unit, instance)
	}
	ok := true
	add := func(suffix string, targets []string) {
		for _, t := range targets {
			if strings.Contains(t, "%") {
				ok = false
				continue
			}
			out[t+suffix+"/"+name] = unit
		}
	}
	add(".wants", in.wantedBy)
	add(".requires", in.requiredBy)
	for _, a := range in.alias {
		if strings.Contains(a, "%") || strings.Contains(a, "@") {
			ok = false
			continue
		}
		out[a] = unit
	}
	return alsoLinks(root, in.also, seen, out) && ok
}

func alsoLinks(root string, also []string, seen map[string]bool, out map[string]string) bool {
	ok := true
	for _, a := range also {
		if !installLinks(root, a, "", seen, out) {
			ok = false
		}
	}
	return ok
}

// analyzeEnablement decides which links under /etc/systemd/system a preset
// file can recreate. On first boot PID 1 applies presets ("enable" lines
// only) before it loads units, so enablement expressed as presets is in
// effect on that very boot, while links restored by tmpfiles.d would come
// too late. links maps each link (path relative to /etc/systemd/system) to
// its target.
func analyzeEnablement(root string, links map[string]string) enablement {
	en := enablement{covered: map[string]bool{}}
	// Units the links say are enabled, with the instances of templates.
	instances := map[string]map[string]bool{}
	for l, target := range links {
		dir, base := path.Split(l)
		dir = strings.TrimSuffix(dir, "/")
		tbase := path.Base(target)
		if target == "/dev/null" || tbase == base && dir == "" {
			continue
		}
		switch {
		case dir == "" || strings.HasSuffix(dir, ".wants") || strings.HasSuffix(dir, ".requires"):
			if strings.Contains(dir, "/") {
				continue
			}
			tmpl, inst := splitInstance(base)
			if tmpl != tbase && base != tbase && dir != "" {
				continue
			}
			if instances[tbase] == nil {
				instances[tbase] = map[string]bool{}
			}
			if inst != "" && tmpl == tbase {
				instances[tbase][inst] = true
			}
		}
	}
	units := make([]string, 0, len(instances))
	for u := range instances {
		units = append(units, u)
	}
	sort.Strings(units)
	for _, u := range units {
		var inst []string
		for i := range instances[u] {
			inst = append(inst, i)
		}
		sort.Strings(inst)
		want := map[string]string{}
		ok := true
		if len(inst) == 0 {
			ok = installLinks(root, u, "", map[string]bool{}, want)
		}
		for _, i := range inst {
			ok = installLinks(root, u, i, map[string]bool{}, want) && ok
		}
		if !ok || len(want) == 0 {
			continue
		}
		// The preset must create exactly links the tree has, pointing at the
		// same unit files.
		exact := true
		for w, unit := range want {
			if t, have := links[w]; !have || path.Base(t) != unit {
				exact = false
			}
		}
		if !exact {
			continue
		}
		for w := range want {
			en.covered[w] = true
		}
		line := "enable " + u
		if len(inst) > 0 {
			line += " " + strings.Join(inst, " ")
		}
		en.presets = append(en.presets, line)
	}
	return en
}
