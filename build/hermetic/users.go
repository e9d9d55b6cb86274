package hermetic

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/imago-os/imago/format/unitfile"
)

// sysusersDirs are the sysusers.d directories that are part of /usr, in
// priority order.
var sysusersDirs = []string{"/usr/local/lib/sysusers.d", "/usr/lib/sysusers.d"}

// Paths systemd-sysusers 252 falls back to (meson defaults, as Debian builds
// it): the shell of a user without one, root's shell when /bin/bash exists,
// and the home directory of a user without one.
const (
	nologinShell    = "/usr/sbin/nologin"
	defaultRootBash = "/bin/bash"
	defaultHome     = "/"
)

// declaredUser is what an existing sysusers.d 'u' line says.
type declaredUser struct {
	uidSet, gidSet bool
	uid, gid       uint32
	groupName      string // "u name uid:groupname"
	gecos          string
	home, shell    string // "" when not given
	source         string
}

type declaredGroup struct {
	gidSet bool
	gid    uint32
	source string
}

// sysusersConfig is what the /usr sysusers.d files of the tree declare.
type sysusersConfig struct {
	users   map[string]declaredUser
	groups  map[string]declaredGroup
	members map[[2]string]bool // {user, group}
}

// readSysusers parses the sysusers.d files of /usr in the tree, skipping the
// one named skip, keeping the first declaration of each name as systemd does.
// Lines it cannot read are ignored: systemd ignores them too, with an error.
func readSysusers(root, skip string) (*sysusersConfig, error) {
	cfg := &sysusersConfig{users: map[string]declaredUser{}, groups: map[string]declaredGroup{}, members: map[[2]string]bool{}}
	files, err := confFiles(root, sysusersDirs, ".conf")
	if err != nil {
		return nil, fmt.Errorf("hermetic: listing sysusers.d: %w", err)
	}
	for _, f := range files {
		if path.Base(f) == skip {
			continue
		}
		data, err := readInRoot(root, f)
		if err != nil {
			return nil, fmt.Errorf("hermetic: %s: %w", f, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || line[0] == '#' {
				continue
			}
			cols, err := unitfile.SplitWords(line, "", unitfile.ExtractUnquote)
			if err != nil || len(cols) < 2 || len(cols) > 6 || strings.Contains(line, "%") {
				continue
			}
			for len(cols) < 6 {
				cols = append(cols, "-")
			}
			for i := range cols {
				if cols[i] == "-" {
					cols[i] = ""
				}
			}
			src := f + ":" + strconv.Itoa(n)
			name, id := cols[1], cols[2]
			switch cols[0] {
			case "u":
				if _, dup := cfg.users[name]; dup {
					continue
				}
				d := declaredUser{gecos: cols[3], home: cols[4], shell: cols[5], source: src}
				if id != "" && !strings.HasPrefix(id, "/") {
					uidPart, gidPart, hasGID := strings.Cut(id, ":")
					if hasGID {
						if v, err := parseID(gidPart); err == nil {
							d.gid, d.gidSet = v, true
						} else {
							d.groupName = gidPart
						}
					}
					if uidPart != "" {
						if v, err := parseID(uidPart); err == nil {
							d.uid, d.uidSet = v, true
						}
					}
				}
				cfg.users[name] = d
			case "g":
				if _, dup := cfg.groups[name]; dup {
					continue
				}
				d := declaredGroup{source: src}
				if v, err := parseID(id); err == nil {
					d.gid, d.gidSet = v, true
				}
				cfg.groups[name] = d
			case "m":
				cfg.members[[2]string{name, id}] = true
			}
		}
	}
	return cfg, nil
}

// validSysusersName mirrors systemd's valid_user_group_name() in strict
// mode: [a-zA-Z_][a-zA-Z0-9_-]*, at most 31 bytes, not all digits.
func validSysusersName(s string) bool {
	if s == "" || len(s) > 31 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !alpha && (i == 0 || !(c >= '0' && c <= '9' || c == '-')) {
			return false
		}
	}
	return true
}

// quoteSysusers writes a sysusers.d column: systemd splits columns with
// extract_first_word(EXTRACT_UNQUOTE) and expands '%' specifiers, and "-" or
// nothing means "not set".
func quoteSysusers(s string) string {
	if s == "" {
		return "-"
	}
	s = strings.ReplaceAll(s, "%", "%%")
	if s != "-" && !strings.ContainsAny(s, " \t\r\n\"'\\") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// usersPlan is the outcome of comparing the tree's account files with the
// sysusers.d declarations.
type usersPlan struct {
	lines     []string // sysusers.d lines, groups first
	users     int
	groups    int
	passwords map[string]string // user -> hash, for credentials
}

// planUsers decides which sysusers.d lines recreate the tree's accounts with
// the same IDs. An account declared elsewhere with the same IDs, home and
// shell is left to that declaration; any other account is declared again
// here, pinned to the tree's values (the file sorts first, so it wins).
func planUsers(root string, cfg *sysusersConfig, rep *Report) (*usersPlan, error) {
	read := func(p string) ([]byte, error) {
		data, err := readInRoot(root, p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return data, err
	}
	var users []User
	var groups []Group
	var shadows []Shadow
	var gshadows []GShadow
	for _, f := range []struct {
		path  string
		parse func([]byte) error
	}{
		{"/etc/passwd", func(b []byte) (err error) { users, err = ParsePasswd(b); return }},
		{"/etc/group", func(b []byte) (err error) { groups, err = ParseGroup(b); return }},
		{"/etc/shadow", func(b []byte) (err error) { shadows, err = ParseShadow(b); return }},
		{"/etc/gshadow", func(b []byte) (err error) { gshadows, err = ParseGShadow(b); return }},
	} {
		data, err := read(f.path)
		if err != nil {
			return nil, fmt.Errorf("hermetic: %s: %w", f.path, err)
		}
		if err := f.parse(data); err != nil {
			return nil, fmt.Errorf("hermetic: %s: %w", f.path, err)
		}
	}
	plan := &usersPlan{passwords: map[string]string{}}
	groupByName := map[string]Group{}
	for _, g := range groups {
		groupByName[g.Name] = g
	}
	hasBash := false
	if p, err := resolveInRoot(root, defaultRootBash); err == nil {
		hasBash = exists(p)
	}

	// Groups. A 'u NAME' line without a GID makes group NAME too, with the
	// UID as GID when that is free.
	implicitGID := func(name string) (uint32, bool, string) {
		d, ok := cfg.users[name]
		if !ok || d.gidSet || d.groupName != "" {
			return 0, false, ""
		}
		return d.uid, d.uidSet, d.source
	}
	sortedGroups := append([]Group(nil), groups...)
	sort.SliceStable(sortedGroups, func(i, j int) bool { return sortedGroups[i].GID < sortedGroups[j].GID })
	var glines []string
	for _, g := range sortedGroups {
		if !validSysusersName(g.Name) {
			rep.add(NotRecreated, "/etc/group", "group %s: the name is not valid for systemd-sysusers", g.Name)
			continue
		}
		if d, ok := cfg.groups[g.Name]; ok && d.gidSet && d.gid == g.GID {
			continue
		}
		if _, ok := cfg.groups[g.Name]; !ok {
			if gid, set, _ := implicitGID(g.Name); set && gid == g.GID {
				continue
			}
		}
		glines = append(glines, fmt.Sprintf("g %s %d", g.Name, g.GID))
	}

	// Users.
	sortedUsers := append([]User(nil), users...)
	sort.SliceStable(sortedUsers, func(i, j int) bool { return sortedUsers[i].UID < sortedUsers[j].UID })
	var ulines []string
	for _, u := range sortedUsers {
		if !validSysusersName(u.Name) {
			rep.add(NotRecreated, "/etc/passwd", "user %s: the name is not valid for systemd-sysusers", u.Name)
			continue
		}
		if strings.ContainsAny(u.Home+u.Shell, "\r\x00") {
			rep.add(NotRecreated, "/etc/passwd", "user %s: a line break or NUL in the home directory or shell cannot be written to sysusers.d", u.Name)
			continue
		}
		if strings.ContainsAny(u.GECOS, ":\r\x00") || !utf8.ValidString(u.GECOS) {
			rep.add(Changed, "/etc/passwd", "user %s: the GECOS field %q is not valid for systemd-sysusers and is left empty", u.Name, u.GECOS)
			u.GECOS = ""
		}
		if d, ok := cfg.users[u.Name]; ok && d.uidSet && d.uid == u.UID && sameHome(d.home, u.Home) && sameShell(d, u, hasBash) && declaredGID(d, groupByName, u.Name) == int64(u.GID) {
			if d.gecos != u.GECOS {
				rep.add(Changed, "/etc/passwd", "user %s: GECOS %q comes from %s instead of the tree's %q", u.Name, d.gecos, d.source, u.GECOS)
			}
			continue
		}
		ulines = append(ulines, fmt.Sprintf("u %s %d:%d %s %s %s", u.Name, u.UID, u.GID, quoteSysusers(u.GECOS), quoteSysusers(u.Home), quoteSysusers(u.Shell)))
	}

	// Memberships.
	var mlines []string
	for _, g := range groups {
		for _, m := range g.Members {
			if m == "" || cfg.members[[2]string{m, g.Name}] {
				continue
			}
			if !validSysusersName(m) {
				rep.add(NotRecreated, "/etc/group", "member %s of group %s: the name is not valid for systemd-sysusers", m, g.Name)
				continue
			}
			mlines = append(mlines, fmt.Sprintf("m %s %s", m, g.Name))
		}
	}
	sort.Strings(mlines)

	// Passwords: sysusers gives every account it creates the locked
	// password "!*", unless a credential passwd.hashed-password.NAME says
	// otherwise.
	for _, s := range shadows {
		switch {
		case s.Password == "":
			rep.add(Changed, "/etc/shadow", "user %s: an empty password (login without a password) is not carried over; the account is locked", s.Name)
		case !Locked(s.Password):
			plan.passwords[s.Name] = s.Password
		}
		if s.Aging[0] != "" && (s.Aging[1] != "" && s.Aging[1] != "0" || s.Aging[2] != "" && s.Aging[2] != "99999" || s.Aging[4] != "" || s.Aging[5] != "") {
			rep.add(Changed, "/etc/shadow", "user %s: password aging fields are not carried over (systemd-sysusers leaves them empty)", s.Name)
		}
	}
	for _, g := range gshadows {
		if len(g.Admins) > 0 || g.Password != "" && !Locked(g.Password) {
			rep.add(Changed, "/etc/gshadow", "group %s: group administrators and group passwords are not carried over", g.Name)
		}
	}
	plan.lines = append(append(glines, ulines...), mlines...)
	plan.users, plan.groups = len(ulines), len(glines)
	return plan, nil
}

func sameHome(declared, tree string) bool {
	if declared == "" {
		declared = defaultHome
	}
	return path.Clean(declared) == path.Clean(tree)
}

func sameShell(d declaredUser, u User, hasBash bool) bool {
	s := d.shell
	if s == "" {
		switch {
		case u.UID == 0 && hasBash:
			s = defaultRootBash
		case u.UID == 0:
			s = "/bin/sh"
		default:
			s = nologinShell
		}
	}
	return path.Clean(s) == path.Clean(u.Shell)
}

// declaredGID returns the primary GID a declared user gets, or -1 when it
// cannot be known at build time.
func declaredGID(d declaredUser, groups map[string]Group, name string) int64 {
	switch {
	case d.gidSet:
		return int64(d.gid)
	case d.groupName != "":
		name = d.groupName
	}
	if g, ok := groups[name]; ok {
		return int64(g.GID)
	}
	return -1
}

// validHash reports whether a password hash can be passed through a unit
// file credential and written to /etc/shadow unchanged.
func validHash(h string) error {
	if h == "" {
		return fmt.Errorf("empty password hash")
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; c <= ' ' || c >= 0x7f || c == ':' || c == '\\' || c == '%' {
			return fmt.Errorf("password hash contains %q, which no crypt(3) hash does", c)
		}
	}
	return nil
}
