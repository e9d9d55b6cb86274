package hermetic

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// User is one line of passwd(5).
type User struct {
	Name     string
	Password string // "x" when the hash is in shadow
	UID      uint32
	GID      uint32
	GECOS    string
	Home     string
	Shell    string
}

// Group is one line of group(5).
type Group struct {
	Name     string
	Password string
	GID      uint32
	Members  []string
}

// Shadow is one line of shadow(5). The aging fields are kept as text because
// an empty field means "not set" and systemd-sysusers and shadow-utils write
// different but equivalent values.
type Shadow struct {
	Name     string
	Password string // a crypt(3) hash, or "*", "!", "!*"... for a locked account
	// Aging holds the seven fields after the password: last change, min,
	// max, warn, inactive, expire, reserved.
	Aging [7]string
}

// GShadow is one line of gshadow(5).
type GShadow struct {
	Name     string
	Password string
	Admins   []string
	Members  []string
}

// splitLines returns the lines of a passwd-style file with their 1-based
// numbers, skipping empty lines and lines starting with '#' (which neither
// glibc nor systemd treat as entries).
func splitLines(data []byte) (lines []string, numbers []int) {
	for i, l := range bytes.Split(data, []byte("\n")) {
		// Carriage returns at the end belong to the line ending (CRLF files),
		// never to the last field: a field cannot end in one.
		l = bytes.TrimRight(l, "\r")
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		lines = append(lines, string(l))
		numbers = append(numbers, i+1)
	}
	return lines, numbers
}

// parseID reads a numeric user or group ID. (uid_t)-1 is not a valid ID.
func parseID(s string) (uint32, error) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("invalid ID %q", s)
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0xFFFFFFFF {
		return 0, fmt.Errorf("invalid ID %q", s)
	}
	return uint32(v), nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// checkName refuses what cannot be a name in these files.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("empty name")
	}
	if name[0] == '+' || name[0] == '-' {
		return fmt.Errorf("NIS compat entry %q not supported", name)
	}
	return nil
}

// ParsePasswd reads a passwd(5) file. Every entry line must have seven
// colon-separated fields and numeric IDs; errors name the line.
func ParsePasswd(data []byte) ([]User, error) {
	lines, nums := splitLines(data)
	users := make([]User, 0, len(lines))
	for i, l := range lines {
		f := strings.Split(l, ":")
		if len(f) != 7 {
			return nil, fmt.Errorf("passwd: line %d: %d fields, want 7", nums[i], len(f))
		}
		if err := checkName(f[0]); err != nil {
			return nil, fmt.Errorf("passwd: line %d: %w", nums[i], err)
		}
		uid, err := parseID(f[2])
		if err != nil {
			return nil, fmt.Errorf("passwd: line %d: user %s: %w", nums[i], f[0], err)
		}
		gid, err := parseID(f[3])
		if err != nil {
			return nil, fmt.Errorf("passwd: line %d: user %s: %w", nums[i], f[0], err)
		}
		users = append(users, User{Name: f[0], Password: f[1], UID: uid, GID: gid, GECOS: f[4], Home: f[5], Shell: f[6]})
	}
	return users, nil
}

// ParseGroup reads a group(5) file. Every entry line must have four
// colon-separated fields and a numeric GID; errors name the line.
func ParseGroup(data []byte) ([]Group, error) {
	lines, nums := splitLines(data)
	groups := make([]Group, 0, len(lines))
	for i, l := range lines {
		f := strings.Split(l, ":")
		if len(f) != 4 {
			return nil, fmt.Errorf("group: line %d: %d fields, want 4", nums[i], len(f))
		}
		if err := checkName(f[0]); err != nil {
			return nil, fmt.Errorf("group: line %d: %w", nums[i], err)
		}
		gid, err := parseID(f[2])
		if err != nil {
			return nil, fmt.Errorf("group: line %d: group %s: %w", nums[i], f[0], err)
		}
		groups = append(groups, Group{Name: f[0], Password: f[1], GID: gid, Members: splitList(f[3])})
	}
	return groups, nil
}

// ParseShadow reads a shadow(5) file. Every entry line must have nine
// colon-separated fields; errors name the line.
func ParseShadow(data []byte) ([]Shadow, error) {
	lines, nums := splitLines(data)
	entries := make([]Shadow, 0, len(lines))
	for i, l := range lines {
		f := strings.Split(l, ":")
		if len(f) != 9 {
			return nil, fmt.Errorf("shadow: line %d: %d fields, want 9", nums[i], len(f))
		}
		if err := checkName(f[0]); err != nil {
			return nil, fmt.Errorf("shadow: line %d: %w", nums[i], err)
		}
		s := Shadow{Name: f[0], Password: f[1]}
		copy(s.Aging[:], f[2:])
		entries = append(entries, s)
	}
	return entries, nil
}

// ParseGShadow reads a gshadow(5) file. Every entry line must have four
// colon-separated fields; errors name the line.
func ParseGShadow(data []byte) ([]GShadow, error) {
	lines, nums := splitLines(data)
	entries := make([]GShadow, 0, len(lines))
	for i, l := range lines {
		f := strings.Split(l, ":")
		if len(f) != 4 {
			return nil, fmt.Errorf("gshadow: line %d: %d fields, want 4", nums[i], len(f))
		}
		if err := checkName(f[0]); err != nil {
			return nil, fmt.Errorf("gshadow: line %d: %w", nums[i], err)
		}
		entries = append(entries, GShadow{Name: f[0], Password: f[1], Admins: splitList(f[2]), Members: splitList(f[3])})
	}
	return entries, nil
}

// FormatPasswd writes users as a passwd(5) file.
func FormatPasswd(users []User) []byte {
	var b bytes.Buffer
	for _, u := range users {
		fmt.Fprintf(&b, "%s:%s:%d:%d:%s:%s:%s\n", u.Name, u.Password, u.UID, u.GID, u.GECOS, u.Home, u.Shell)
	}
	return b.Bytes()
}

// FormatGroup writes groups as a group(5) file.
func FormatGroup(groups []Group) []byte {
	var b bytes.Buffer
	for _, g := range groups {
		fmt.Fprintf(&b, "%s:%s:%d:%s\n", g.Name, g.Password, g.GID, strings.Join(g.Members, ","))
	}
	return b.Bytes()
}

// FormatShadow writes entries as a shadow(5) file.
func FormatShadow(entries []Shadow) []byte {
	var b bytes.Buffer
	for _, s := range entries {
		fmt.Fprintf(&b, "%s:%s:%s\n", s.Name, s.Password, strings.Join(s.Aging[:], ":"))
	}
	return b.Bytes()
}

// FormatGShadow writes entries as a gshadow(5) file.
func FormatGShadow(entries []GShadow) []byte {
	var b bytes.Buffer
	for _, g := range entries {
		fmt.Fprintf(&b, "%s:%s:%s:%s\n", g.Name, g.Password, strings.Join(g.Admins, ","), strings.Join(g.Members, ","))
	}
	return b.Bytes()
}

// Locked reports whether a shadow password field allows no password login:
// empty hashes aside, crypt(3) hashes never start with '!' or '*'.
func Locked(password string) bool {
	return strings.HasPrefix(password, "!") || strings.HasPrefix(password, "*")
}
