package repart

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// nameMax is NAME_MAX, which bounds a resolved SplitName=.
const nameMax = 255

// split writes each partition whose definition has a SplitName= to a file
// next to the image, "<image without .raw>.<name>[.raw]" (systemd's
// --split=yes). The files must not exist yet.
func (e *engine) split() error {
	o := e.opts
	if o.Device == "" {
		return fmt.Errorf("repart: --split needs the path of an image")
	}
	type job struct {
		p    *partition
		name string
	}
	var jobs []job
	for _, p := range e.c.parts {
		if p.dropped || p.def == nil || p.def.SplitName == "" {
			continue
		}
		s := &Specifiers{Root: o.Root, noTmp: true, Values: map[byte]string{
			't': typeNameOrUUID(p.typeUUID),
			'T': hex.EncodeToString(p.typeUUID[:]),
			'U': hex.EncodeToString(p.newUUID[:]),
			'n': strconv.FormatUint(p.partno, 10),
		}}
		name, err := s.Expand(p.def.SplitName, nameMax)
		if err != nil {
			return fmt.Errorf("repart: %s: SplitName=%s: %w", p.def.Path, p.def.SplitName, err)
		}
		for _, j := range jobs {
			if j.name == name {
				return fmt.Errorf("repart: %s and %s have the same resolved split name %q, refusing", j.p.def.Path, p.def.Path, name)
			}
		}
		jobs = append(jobs, job{p, name})
	}
	base := filepath.Base(o.Device)
	ext := ""
	if strings.HasSuffix(base, ".raw") {
		base, ext = strings.TrimSuffix(base, ".raw"), ".raw"
	}
	dir := filepath.Dir(o.Device)
	for _, j := range jobs {
		path := filepath.Join(dir, base+"."+j.name+ext)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if err != nil {
			return fmt.Errorf("repart: %w", err)
		}
		_, err = io.Copy(f, io.NewSectionReader(e.disk, int64(j.p.offset), int64(j.p.newSize)))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("repart: writing %s: %w", path, err)
		}
		o.logf("Wrote %s.", path)
	}
	return nil
}

func typeNameOrUUID(u [16]byte) string {
	if n := typeName(u); n != "" {
		return n
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
