package sysupdate

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/imago-os/imago/format/unitfile"
)

// suffixFeature names optional feature definitions (systemd 257).
const suffixFeature = ".feature"

// Feature is an optional feature: a *.feature file next to the transfer
// definitions. Transfers that list it in Features= are only installed
// while it is enabled.
type Feature struct {
	// Name is the file name without ".feature".
	Name string
	// File is the path the definition was read from.
	File          string
	Description   string
	Documentation []string
	AppStream     []string
	// Enabled is Enabled= after the drop-ins; features are off by default.
	Enabled bool
}

// LoadFeatures reads the *.feature files of the directories Load reads,
// each with its <name>.feature.d/*.conf drop-ins (later ones override),
// sorted by name. There may be none.
func LoadFeatures(opts Options) ([]*Feature, error) {
	fsys, dirs, err := definitionDirs(opts)
	if err != nil {
		return nil, err
	}
	return loadFeatures(fsys, dirs)
}

func loadFeatures(fsys fs.FS, dirs []string) ([]*Feature, error) {
	names, err := unitfile.ListConfFiles(fsys, dirs, suffixFeature)
	if err != nil {
		return nil, fmt.Errorf("sysupdate: %w", err)
	}
	var out []*Feature
	for _, name := range names {
		f, err := unitfile.LoadFileWithDropIns(fsys, name, dirs)
		if err != nil {
			return nil, fmt.Errorf("sysupdate: %w", err)
		}
		ft, err := parseFeature(f, name)
		if err != nil {
			return nil, fmt.Errorf("sysupdate: %w", err)
		}
		out = append(out, ft)
	}
	return out, nil
}

// ParseFeature parses one feature file's content; name is its path.
func ParseFeature(name string, data []byte) (*Feature, error) {
	f, err := unitfile.Parse(name, strings.NewReader(string(data)))
	if err != nil {
		return nil, fmt.Errorf("sysupdate: %w", err)
	}
	ft, err := parseFeature(f, name)
	if err != nil {
		return nil, fmt.Errorf("sysupdate: %w", err)
	}
	return ft, nil
}

func parseFeature(f *unitfile.File, name string) (*Feature, error) {
	ft := &Feature{Name: strings.TrimSuffix(path.Base(name), suffixFeature), File: name}
	if !validFeatureName(ft.Name) {
		return nil, fileError(name, "invalid feature name %q", ft.Name)
	}
	for _, w := range f.Warnings {
		return nil, w
	}
	for _, sec := range f.Sections {
		if sec.Name != "Feature" {
			if strings.HasPrefix(sec.Name, "X-") {
				continue
			}
			return nil, fmt.Errorf("%s:%d: unknown section [%s]", sec.File, sec.Line, sec.Name)
		}
		for _, e := range sec.Entries {
			switch e.Key {
			case "Description":
				ft.Description = e.Value
			case "Documentation", "AppStream":
				var urls []string
				if e.Value != "" {
					ws, err := words(e)
					if err != nil {
						return nil, err
					}
					for _, w := range ws {
						if !isHTTPURL(w) {
							return nil, e.Errorf("not an http:// or https:// URL: %q", w)
						}
						urls = append(urls, w)
					}
				}
				if e.Key == "Documentation" {
					ft.Documentation = appendOrReset(ft.Documentation, urls, e.Value)
				} else {
					ft.AppStream = appendOrReset(ft.AppStream, urls, e.Value)
				}
			case "Enabled":
				b, err := unitfile.ParseBool(e.Value)
				if err != nil {
					return nil, e.Errorf("invalid boolean %q", e.Value)
				}
				ft.Enabled = b
			default:
				return nil, e.Errorf("unknown key in section [Feature]")
			}
		}
	}
	return ft, nil
}

// TransfersOf returns the transfers that name feature in Features= or
// RequisiteFeatures= (what "features NAME" lists).
func TransfersOf(transfers []*Transfer, feature string) []*Transfer {
	var out []*Transfer
	for _, t := range transfers {
		for _, n := range append(append([]string(nil), t.Features...), t.RequisiteFeatures...) {
			if n == feature {
				out = append(out, t)
				break
			}
		}
	}
	return out
}
