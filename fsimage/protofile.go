package fsimage

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// writeProtofileTemp writes the mkfs.xfs protofile for tree into a
// temporary file and returns its path.
func writeProtofileTemp(tree, tempDir string) (string, error) {
	f, err := os.CreateTemp(tempDir, "imago-fsimage-*.proto")
	if err != nil {
		return "", fmt.Errorf("fsimage: %w", err)
	}
	w := bufio.NewWriter(f)
	err = writeProtofile(w, tree)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("fsimage: xfs protofile: %w", err)
	}
	return f.Name(), nil
}

// writeProtofile describes tree in the protofile language of mkfs.xfs -p
// (xfsprogs, mkfs/proto.c), as systemd's make_protofile does: a header
// (no boot image, no block/inode hints, root directory 0755 root:root),
// then one line per entry in name order — "name" "type,setuid,setgid,mode"
// "uid" "gid" and the source path (regular files, relative to tree, where
// mkfs.xfs runs), the link target (symlinks) or "major minor" (devices) —
// with each directory's entries followed by "$". Sockets are skipped.
//
// The language separates tokens by whitespace and has no escapes in
// xfsprogs 6.1, so a name or link target with whitespace, and a name "$",
// are refused.
func writeProtofile(w io.Writer, tree string) error {
	if _, err := io.WriteString(w, "/\n0 0\nd--755 0 0\n"); err != nil {
		return err
	}
	if err := protofileDir(w, tree, ""); err != nil {
		return err
	}
	_, err := io.WriteString(w, "$\n")
	return err
}

func protofileDir(w io.Writer, tree, rel string) error {
	entries, err := os.ReadDir(filepath.Join(tree, rel))
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(rel, name)
		if strings.ContainsAny(name, " \t\n\v\f\r") || name == "$" {
			return fmt.Errorf("%s: mkfs.xfs cannot take this file name", path)
		}
		st, err := stat(filepath.Join(tree, path), false)
		if err != nil {
			return err
		}
		var typ byte
		var extra string
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			typ = 'd'
		case syscall.S_IFREG:
			typ = '-'
			extra = "./" + path
		case syscall.S_IFLNK:
			typ = 'l'
			extra, err = os.Readlink(filepath.Join(tree, path))
			if err != nil {
				return err
			}
			if strings.ContainsAny(extra, " \t\n\v\f\r") || extra == "" {
				return fmt.Errorf("%s: mkfs.xfs cannot take the symlink target %q", path, extra)
			}
		case syscall.S_IFIFO:
			typ = 'p'
		case syscall.S_IFBLK, syscall.S_IFCHR:
			typ = 'c'
			if st.Mode&syscall.S_IFMT == syscall.S_IFBLK {
				typ = 'b'
			}
			extra = fmt.Sprintf("%d %d", devMajor(st.Rdev), devMinor(st.Rdev))
		default:
			continue
		}
		suid, sgid := byte('-'), byte('-')
		if st.Mode&syscall.S_ISUID != 0 {
			suid = 'u'
		}
		if st.Mode&syscall.S_ISGID != 0 {
			sgid = 'g'
		}
		line := fmt.Sprintf("%s %c%c%c%03o %d %d", name, typ, suid, sgid, st.Mode&0o777, st.Uid, st.Gid)
		if extra != "" {
			line += " " + extra
		}
		if _, err := io.WriteString(w, line+"\n"); err != nil {
			return err
		}
		if typ == 'd' {
			if err := protofileDir(w, tree, path); err != nil {
				return err
			}
			if _, err := io.WriteString(w, "$\n"); err != nil {
				return err
			}
		}
	}
	return nil
}

// devMajor and devMinor split a Linux dev_t (glibc's encoding).
func devMajor(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff) }
func devMinor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^uint64(0xff) }
