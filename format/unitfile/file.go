package unitfile

// Entries returns every assignment in the order it was read.
func (f *File) Entries() []Entry {
	var out []Entry
	for _, s := range f.Sections {
		out = append(out, s.Entries...)
	}
	return out
}

// SectionNames returns each section name once, in order of first
// appearance.
func (f *File) SectionNames() []string {
	var names []string
	seen := map[string]bool{}
	for _, s := range f.Sections {
		if !seen[s.Name] {
			seen[s.Name] = true
			names = append(names, s.Name)
		}
	}
	return names
}

// HasSection reports whether at least one header named name was read.
func (f *File) HasSection(name string) bool {
	for _, s := range f.Sections {
		if s.Name == name {
			return true
		}
	}
	return false
}

// Lookup returns every assignment of key in all sections named section, in
// order, including empty ones: the raw material for a caller with its own
// rules.
func (f *File) Lookup(section, key string) []Entry {
	var out []Entry
	for _, s := range f.Sections {
		if s.Name != section {
			continue
		}
		for _, e := range s.Entries {
			if e.Key == key {
				out = append(out, e)
			}
		}
	}
	return out
}

// Get returns the last assignment of key, which is what systemd uses for a
// single-valued setting (a later drop-in overrides an earlier file). An empty
// Value means the setting was reset to its default.
func (f *File) Get(section, key string) (Entry, bool) {
	all := f.Lookup(section, key)
	if len(all) == 0 {
		return Entry{}, false
	}
	return all[len(all)-1], true
}

// List returns the assignments of a list-valued key that are in effect under
// systemd's list rule: each assignment adds to the list and an empty one
// clears everything before it. The result holds the non-empty assignments
// after the last empty one.
func (f *File) List(section, key string) []Entry {
	all := f.Lookup(section, key)
	start := 0
	for i, e := range all {
		if e.Value == "" {
			start = i + 1
		}
	}
	return all[start:]
}

// Values returns the values of List(section, key). Each value may still hold
// several words; split it with SplitWords as the setting requires.
func (f *File) Values(section, key string) []string {
	list := f.List(section, key)
	out := make([]string, len(list))
	for i, e := range list {
		out[i] = e.Value
	}
	return out
}

// Add appends an assignment, to the last section if it has this name and to
// a new section otherwise. It is meant for building a file in code.
func (f *File) Add(section, key, value string) {
	if n := len(f.Sections); n == 0 || f.Sections[n-1].Name != section {
		f.Sections = append(f.Sections, Section{Name: section})
	}
	s := &f.Sections[len(f.Sections)-1]
	s.Entries = append(s.Entries, Entry{Section: section, Key: key, Value: value})
}

// Merge returns a File holding the sections of all files in order, the way
// systemd applies drop-ins after the main file: later assignments override
// (Get) or extend (List) earlier ones. The inputs are not modified.
func Merge(files ...*File) *File {
	out := &File{}
	for _, f := range files {
		if f == nil {
			continue
		}
		for _, s := range f.Sections {
			s.Entries = append([]Entry(nil), s.Entries...)
			out.Sections = append(out.Sections, s)
		}
		out.Sources = append(out.Sources, f.Sources...)
		out.Warnings = append(out.Warnings, f.Warnings...)
	}
	return out
}
