package content

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"os"

	"github.com/imago-os/imago/format/gpt"
	"github.com/imago-os/imago/format/verity"
	"github.com/imago-os/imago/format/veritysig"
)

// VeritySaltSize is the salt length systemd-repart uses.
const VeritySaltSize = 32

// VerityOptions are the parameters of a Verity=hash partition.
type VerityOptions struct {
	// BlockSize is the data and hash block size. systemd-repart 252 uses
	// the disk's sector size: 512 for image files. 0 means 512.
	BlockSize int
	// Salt is the salt; nil means 32 random bytes (systemd 252). See
	// VeritySeeded for systemd 255's reproducible salt.
	Salt []byte
	// UUID is the superblock UUID; the zero value means a random one
	// (systemd 252).
	UUID gpt.GUID
	// Rand is the source of a random salt and UUID; default crypto/rand.
	Rand io.Reader
}

// VeritySeeded returns the salt and superblock UUID systemd-repart 255 and
// later derive from the --seed= value (spec §2.6), the same for every
// verity partition of a run. systemd 252 picks them at random, which makes
// its verity partitions differ on every build.
func VeritySeeded(seed [16]byte) (salt []byte, uuid gpt.GUID) {
	return verity.SaltFromSeed(seed), gpt.GUID(verity.UUIDFromSeed(seed))
}

func (o *VerityOptions) params(dataSize int64) (verity.Params, error) {
	bs := o.BlockSize
	if bs == 0 {
		bs = 512
	}
	if bs < 512 || bs > 4096 || bs&(bs-1) != 0 {
		return verity.Params{}, fmt.Errorf("content: bad verity block size %d", o.BlockSize)
	}
	if dataSize <= 0 || dataSize%int64(bs) != 0 {
		return verity.Params{}, fmt.Errorf("content: verity data of %d bytes is not a whole number of %d-byte blocks", dataSize, bs)
	}
	p := verity.DefaultParams(uint64(dataSize / int64(bs)))
	p.DataBlockSize, p.HashBlockSize = uint32(bs), uint32(bs)
	return p, nil
}

// VerityHashSize returns the least size of the hash partition for a data
// partition of dataSize bytes: superblock and hash tree.
func VerityHashSize(dataSize int64, blockSize int) (int64, error) {
	o := VerityOptions{BlockSize: blockSize}
	p, err := o.params(dataSize)
	if err != nil {
		return 0, err
	}
	p.Salt = make([]byte, VeritySaltSize)
	return verity.HashDeviceSize(p)
}

// FormatVerityHash writes the dm-verity hash partition hash for the data
// partition data (already filled) as systemd-repart does for Verity=hash:
// `veritysetup format` with sha256, format 1, a superblock at offset 0 and
// the whole data partition as data. The rest of the hash partition reads
// as zeros. It returns the root hash; VerityPartitionUUIDs turns it into
// the partitions' UUIDs. The hash partition is synced before it returns.
func FormatVerityHash(ctx context.Context, disk *os.File, data, hash Range, o VerityOptions) ([]byte, error) {
	for _, r := range []Range{data, hash} {
		if err := r.check(512); err != nil {
			return nil, err
		}
	}
	if data.Offset < hash.Offset+hash.Size && hash.Offset < data.Offset+data.Size {
		return nil, fmt.Errorf("content: verity data %v and hash %v overlap", data, hash)
	}
	p, err := o.params(data.Size)
	if err != nil {
		return nil, err
	}
	rnd := o.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	if o.Salt != nil {
		p.Salt = append([]byte(nil), o.Salt...)
	} else if p.Salt, err = verity.RandomSalt(rnd, VeritySaltSize); err != nil {
		return nil, fmt.Errorf("content: verity salt: %w", err)
	}
	if o.UUID.IsZero() {
		u, err := verity.RandomUUID(rnd)
		if err != nil {
			return nil, fmt.Errorf("content: verity UUID: %w", err)
		}
		p.UUID = u
	} else {
		p.UUID = [16]byte(o.UUID)
	}
	need, err := verity.HashDeviceSize(p)
	if err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	if need > hash.Size {
		return nil, fmt.Errorf("content: the verity hash partition of %d bytes is too small for %d bytes of data in %d-byte blocks: it needs %d", hash.Size, data.Size, p.DataBlockSize, need)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	if err := zeroRange(disk, hash); err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	root, err := verity.Format(io.NewSectionReader(disk, data.Offset, data.Size), rangeWriter{disk, hash}, p)
	if err != nil {
		return nil, fmt.Errorf("content: verity: %w", err)
	}
	if err := disk.Sync(); err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	return root, nil
}

// VerityPartitionUUIDs returns the UUIDs systemd-repart gives the data and
// hash partitions of a verity group whose definitions set no UUID=: the
// first and the last 16 bytes of the root hash.
func VerityPartitionUUIDs(rootHash []byte) (data, hash gpt.GUID, err error) {
	d, h, err := verity.PartitionUUIDs(rootHash)
	if err != nil {
		return data, hash, fmt.Errorf("content: %w", err)
	}
	return gpt.GUID(d), gpt.GUID(h), nil
}

// WriteVeritySignature writes the Verity=signature partition sig: the JSON
// object with the root hash, the certificate's fingerprint and a PKCS#7
// signature of the root hash made with key, NUL-padded to the whole
// partition (systemd 252 pads to a multiple of 4096 and leaves the rest as
// the discard left it: zeros on image files).
func WriteVeritySignature(disk *os.File, sig Range, rootHash []byte, cert *x509.Certificate, key crypto.Signer) error {
	if err := sig.check(512); err != nil {
		return err
	}
	if sig.Size > veritysig.MaxPartitionSize {
		return fmt.Errorf("content: a verity signature partition of %d bytes is larger than the %d systemd reads", sig.Size, veritysig.MaxPartitionSize)
	}
	s, err := veritysig.Sign(rootHash, cert, key)
	if err != nil {
		return fmt.Errorf("content: %w", err)
	}
	b, err := s.MarshalPartition(int(sig.Size))
	if err != nil {
		return fmt.Errorf("content: %w", err)
	}
	if _, err := (rangeWriter{disk, sig}).WriteAt(b, 0); err != nil {
		return fmt.Errorf("content: writing the verity signature: %w", err)
	}
	if err := disk.Sync(); err != nil {
		return fmt.Errorf("content: %w", err)
	}
	return nil
}
