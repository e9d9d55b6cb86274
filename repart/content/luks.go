package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/imago-os/imago/fsimage"
	"github.com/imago-os/imago/internal/toolexec"
)

// The LUKS2 parameters of systemd-repart 252 (partition_encrypt): AES in
// XTS mode with a 256-bit volume key (two AES-128 keys), plain64 IVs.
const (
	luksCipher       = "aes-xts-plain64"
	luksVolumeKeyLen = 256 / 8
)

// fillEncrypted writes a LUKS2 container into r and the content encrypted
// inside it. systemd-repart formats the LUKS2 header on a loop device,
// opens it with device-mapper and runs mkfs (or copies the blocks) on the
// opened device. Here cryptsetup writes the header into a sparse scratch
// file of the partition's size, with a volume key generated here, and the
// content is encrypted in this process with the same volume key, so
// neither loop devices nor device-mapper are needed.
func fillEncrypted(ctx context.Context, disk *os.File, r Range, s *Spec) error {
	if r.Size <= LUKS2MetadataSize {
		return fmt.Errorf("content: an encrypted partition needs more than %d bytes for its LUKS2 header, have %d", LUKS2MetadataSize, r.Size)
	}
	scratch, err := os.MkdirTemp(s.TempDir, "imago-luks-*")
	if err != nil {
		return fmt.Errorf("content: %w", err)
	}
	defer os.RemoveAll(scratch)

	volumeKey := make([]byte, luksVolumeKeyLen)
	defer clear(volumeKey)
	rnd := s.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, volumeKey); err != nil {
		return fmt.Errorf("content: volume key: %w", err)
	}

	header := filepath.Join(scratch, "header.img")
	seg, err := luksFormat(ctx, header, r.Size, volumeKey, s, scratch)
	if err != nil {
		return err
	}
	x, err := newXTSPlain64(volumeKey, seg.sectorSize)
	if err != nil {
		return fmt.Errorf("content: %w", err)
	}

	// The plaintext: the blocks to copy, or a file system of the size the
	// opened device would have.
	var plain *os.File
	var plainLen int64
	switch {
	case s.CopyBlocks != "":
		src, err := openCopyBlocks(s.Root, s.CopyBlocks)
		if err != nil {
			return err
		}
		defer src.Close()
		if src.size > r.Size-seg.offset {
			return fmt.Errorf("content: CopyBlocks=%s: %d bytes do not fit in the encrypted partition's %d bytes", src.name, src.size, r.Size-seg.offset)
		}
		if src.size%int64(seg.sectorSize) != 0 {
			return fmt.Errorf("content: CopyBlocks=%s: the size, %d bytes, is not a multiple of the sector size %d", src.name, src.size, seg.sectorSize)
		}
		plain, plainLen = src.f, src.size
	case s.EffectiveFormat() != "":
		opts, err := s.fsOptions(s.EffectiveFormat())
		if err != nil {
			return err
		}
		path := filepath.Join(scratch, "plain.img")
		plainLen = r.Size - seg.offset
		if _, err := fsimage.MakeFile(ctx, path, plainLen, opts); err != nil {
			return fmt.Errorf("content: %w", err)
		}
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("content: %w", err)
		}
		defer f.Close()
		plain = f
	}

	if err := zeroRange(disk, r); err != nil {
		return fmt.Errorf("content: %w", err)
	}
	w := rangeWriter{disk, r}
	if plain != nil {
		// Every sector is written, holes of the plaintext too: a file
		// system may rely on reading zeros where mkfs wrote nothing.
		if err := encryptInto(ctx, w, seg.offset, plain, plainLen, x); err != nil {
			return fmt.Errorf("content: encrypting: %w", err)
		}
	}
	// The header goes last, so that an interrupted fill does not look
	// like a LUKS2 volume.
	hf, err := os.Open(header)
	if err != nil {
		return fmt.Errorf("content: %w", err)
	}
	defer hf.Close()
	if err := copySparse(ctx, w, 0, hf, seg.offset); err != nil {
		return fmt.Errorf("content: writing the LUKS2 header: %w", err)
	}
	return nil
}

// luksFormat has cryptsetup write a LUKS2 header, with systemd-repart
// 252's parameters and the given volume key, into a new sparse file of
// size bytes, and returns the data segment it describes. The volume key
// and the passphrase reach cryptsetup through memory files, never a
// file system.
func luksFormat(ctx context.Context, path string, size int64, volumeKey []byte, s *Spec, scratch string) (luksSegment, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return luksSegment{}, fmt.Errorf("content: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return luksSegment{}, fmt.Errorf("content: %w", err)
	}
	vk, err := newSecretFile(scratch, "volume-key", volumeKey)
	if err != nil {
		return luksSegment{}, fmt.Errorf("content: %w", err)
	}
	defer vk.Close()
	key, err := newSecretFile(scratch, "key", s.Key)
	if err != nil {
		return luksSegment{}, fmt.Errorf("content: %w", err)
	}
	defer key.Close()

	args := []string{"luksFormat", "--batch-mode", "--type", "luks2",
		"--cipher", luksCipher, "--key-size", strconv.Itoa(luksVolumeKeyLen * 8),
		"--sector-size", strconv.Itoa(s.sectorSize()),
		"--uuid", s.LUKSUUID.String(),
		"--volume-key-file", vk.path, "--key-file", key.path}
	if s.Label != "" {
		// libcryptsetup stores at most 47 bytes and refuses more, as it
		// does for systemd-repart.
		args = append(args, "--label", s.Label)
	}
	if p := s.PBKDF; p != nil {
		pa, err := p.args()
		if err != nil {
			return luksSegment{}, err
		}
		args = append(args, pa...)
	}
	args = append(args, path)
	if _, err := toolexec.Run(ctx, "cryptsetup", args, toolexec.UnsetEnv("SOURCE_DATE_EPOCH")); err != nil {
		if errors.Is(err, toolexec.ErrNotFound) {
			return luksSegment{}, fmt.Errorf("content: Encrypt= needs cryptsetup (Debian package cryptsetup-bin): %w", err)
		}
		return luksSegment{}, fmt.Errorf("content: LUKS2 format: %w", err)
	}
	hdr := make([]byte, luksMaxHeaderSize)
	n, err := f.ReadAt(hdr, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return luksSegment{}, fmt.Errorf("content: %w", err)
	}
	seg, err := parseLUKS2Header(hdr[:n])
	if err != nil {
		return luksSegment{}, fmt.Errorf("content: the header cryptsetup wrote: %w", err)
	}
	if seg.encryption != luksCipher || seg.sectorSize != s.sectorSize() || seg.keySize != luksVolumeKeyLen {
		return luksSegment{}, fmt.Errorf("content: cryptsetup wrote segment %s/%d-byte sectors/%d-byte key, want %s/%d/%d",
			seg.encryption, seg.sectorSize, seg.keySize, luksCipher, s.sectorSize(), luksVolumeKeyLen)
	}
	if seg.offset >= size {
		return luksSegment{}, fmt.Errorf("content: the LUKS2 header (%d bytes) leaves no room for data in %d bytes", seg.offset, size)
	}
	return seg, nil
}

func (p *PBKDF) args() ([]string, error) {
	switch p.Type {
	case "argon2id", "argon2i":
		if p.Iterations < 4 || p.MemoryKiB < 32 || p.Parallel < 1 {
			return nil, fmt.Errorf("content: PBKDF %s needs iterations ≥ 4, memory ≥ 32 KiB and parallel ≥ 1", p.Type)
		}
		return []string{"--pbkdf", p.Type, "--pbkdf-force-iterations", strconv.Itoa(p.Iterations),
			"--pbkdf-memory", strconv.Itoa(p.MemoryKiB), "--pbkdf-parallel", strconv.Itoa(p.Parallel)}, nil
	case "pbkdf2":
		if p.Iterations < 1000 {
			return nil, errors.New("content: PBKDF pbkdf2 needs at least 1000 iterations")
		}
		return []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", strconv.Itoa(p.Iterations)}, nil
	}
	return nil, fmt.Errorf("content: unknown PBKDF %q", p.Type)
}

// encryptInto encrypts the first n bytes of plain into w at dataOffset,
// sector by sector, holes included.
func encryptInto(ctx context.Context, w io.WriterAt, dataOffset int64, plain *os.File, n int64, x *xtsPlain64) error {
	buf := make([]byte, 4*chunkSize)
	for pos := int64(0); pos < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		m := min(n-pos, int64(len(buf)))
		if _, err := plain.ReadAt(buf[:m], pos); err != nil {
			return err
		}
		x.cryptParallel(buf[:m], pos, false)
		if _, err := w.WriteAt(buf[:m], dataOffset+pos); err != nil {
			return err
		}
		pos += m
	}
	clear(buf)
	return nil
}

// LUKS2 on-disk header (cryptsetup lib/luks2/luks2.h, struct
// luks2_hdr_disk): a 4096-byte binary header, then the JSON metadata up to
// hdr_size.
const (
	luksBinaryHeaderSize = 4096
	luksMinHeaderSize    = 16 << 10
	luksMaxHeaderSize    = 4 << 20
)

var luksMagic = []byte("LUKS\xba\xbe")

// luksSegment is what fillEncrypted needs to know of a LUKS2 header.
type luksSegment struct {
	offset     int64 // of the encrypted data, from the start of the device
	sectorSize int
	encryption string
	keySize    int // bytes, of every keyslot's volume key
}

// parseLUKS2Header reads the primary LUKS2 header at the start of b and
// returns its single data segment. It accepts only what cryptsetup
// luksFormat writes: one "crypt" segment of dynamic size with no IV
// tweak, and keyslots that all hold a volume key of one size.
func parseLUKS2Header(b []byte) (luksSegment, error) {
	if len(b) < luksBinaryHeaderSize || !bytes.Equal(b[:6], luksMagic) {
		return luksSegment{}, errors.New("no LUKS2 header")
	}
	if v := binary.BigEndian.Uint16(b[6:8]); v != 2 {
		return luksSegment{}, fmt.Errorf("LUKS version %d, want 2", v)
	}
	hdrSize := binary.BigEndian.Uint64(b[8:16])
	if hdrSize < luksMinHeaderSize || hdrSize > luksMaxHeaderSize || hdrSize > uint64(len(b)) {
		return luksSegment{}, fmt.Errorf("header size %d out of range", hdrSize)
	}
	area := b[luksBinaryHeaderSize:hdrSize]
	end := bytes.IndexByte(area, 0)
	if end < 0 {
		return luksSegment{}, errors.New("JSON metadata not NUL-terminated")
	}
	var meta struct {
		Keyslots map[string]struct {
			KeySize int `json:"key_size"`
		} `json:"keyslots"`
		Segments map[string]struct {
			Type       string `json:"type"`
			Offset     string `json:"offset"`
			Size       string `json:"size"`
			IVTweak    string `json:"iv_tweak"`
			Encryption string `json:"encryption"`
			SectorSize int    `json:"sector_size"`
		} `json:"segments"`
	}
	if err := json.Unmarshal(area[:end], &meta); err != nil {
		return luksSegment{}, fmt.Errorf("JSON metadata: %w", err)
	}
	sg, ok := meta.Segments["0"]
	if len(meta.Segments) != 1 || !ok {
		return luksSegment{}, fmt.Errorf("%d data segments, want one numbered 0", len(meta.Segments))
	}
	if sg.Type != "crypt" || sg.Size != "dynamic" || sg.IVTweak != "0" {
		return luksSegment{}, fmt.Errorf("segment 0 is type %q size %q iv_tweak %q, want crypt, dynamic, 0", sg.Type, sg.Size, sg.IVTweak)
	}
	switch sg.SectorSize {
	case 512, 1024, 2048, 4096:
	default:
		return luksSegment{}, fmt.Errorf("segment 0: bad sector size %d", sg.SectorSize)
	}
	off, err := strconv.ParseInt(sg.Offset, 10, 64)
	if err != nil || off < int64(2*hdrSize) || off%int64(sg.SectorSize) != 0 || off > 1<<40 {
		return luksSegment{}, fmt.Errorf("segment 0: bad offset %q", sg.Offset)
	}
	seg := luksSegment{offset: off, sectorSize: sg.SectorSize, encryption: sg.Encryption}
	for name, k := range meta.Keyslots {
		if k.KeySize <= 0 || (seg.keySize != 0 && k.KeySize != seg.keySize) {
			return luksSegment{}, fmt.Errorf("keyslot %s: key size %d", name, k.KeySize)
		}
		seg.keySize = k.KeySize
	}
	if seg.keySize == 0 {
		return luksSegment{}, errors.New("no keyslot")
	}
	return seg, nil
}
