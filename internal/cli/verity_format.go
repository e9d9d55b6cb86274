package cli

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imago-os/imago/format/verity"
)

func init() {
	veritySubcommands = append(veritySubcommands, newVerityFormatCmd, newVerityVerifyCmd)
}

// verityFlags are the veritysetup options format and verify share.
type verityFlags struct {
	algorithm     string
	hashType      uint32
	dataBlockSize uint32
	hashBlockSize uint32
	dataBlocks    uint64
	hashOffset    uint64
	salt          string
	uuid          string
	noSuperblock  bool
	rootHashFile  string
	json          bool
}

func (f *verityFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.algorithm, "hash", verity.DefaultAlgorithm, "hash algorithm: sha256, sha1, sha224, sha384 or sha512")
	fl.Uint32Var(&f.hashType, "format", verity.DefaultHashType, "hash type: 1 normal, 0 original Chrome OS")
	fl.Uint32Var(&f.dataBlockSize, "data-block-size", verity.DefaultBlockSize, "data block size in bytes (power of two, 512 to 524288)")
	fl.Uint32Var(&f.hashBlockSize, "hash-block-size", verity.DefaultBlockSize, "hash block size in bytes (power of two, 512 to 524288)")
	fl.Uint64Var(&f.dataBlocks, "data-blocks", 0, "number of data blocks (default: the whole data device)")
	fl.Uint64Var(&f.hashOffset, "hash-offset", 0, "byte offset of the superblock or tree on the hash device (multiple of 512)")
	fl.StringVar(&f.salt, "salt", "", "salt in hex, or - for none (format default: 32 random bytes)")
	fl.StringVar(&f.uuid, "uuid", "", "superblock UUID (format default: random)")
	fl.BoolVar(&f.noSuperblock, "no-superblock", false, "do not write or read a verity superblock")
	fl.StringVar(&f.rootHashFile, "root-hash-file", "", "file to write (format) or read (verify) the root hash in hex")
	fl.BoolVar(&f.json, "json", false, "print the result as JSON")
}

// params builds Params from the flags; salt and UUID are left to the caller.
func (f *verityFlags) params() verity.Params {
	return verity.Params{
		HashType:      f.hashType,
		Algorithm:     strings.ToLower(f.algorithm),
		DataBlockSize: f.dataBlockSize,
		HashBlockSize: f.hashBlockSize,
		DataBlocks:    f.dataBlocks,
		HashOffset:    f.hashOffset,
		NoSuperblock:  f.noSuperblock,
	}
}

// parseSalt reads --salt: hex, or "-" (or empty) for no salt.
func parseSalt(s string) ([]byte, error) {
	if s == "-" || s == "" {
		return nil, nil
	}
	salt, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("invalid salt %q: want hex digits or -", s)
	}
	return salt, nil
}

// deviceSize returns the size of a file or block device.
func deviceSize(f *os.File) (uint64, error) {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("%s: size: %w", f.Name(), err)
	}
	return uint64(end), nil
}

// dataBlocksFor fills in DataBlocks from the data device's size when it is
// 0, and checks the device holds that many blocks.
func dataBlocksFor(data *os.File, p *verity.Params) error {
	if p.DataBlockSize == 0 {
		return p.Validate()
	}
	size, err := deviceSize(data)
	if err != nil {
		return err
	}
	have := size / uint64(p.DataBlockSize)
	if p.DataBlocks == 0 {
		if have == 0 {
			return fmt.Errorf("%s: %d bytes is less than one %d-byte data block", data.Name(), size, p.DataBlockSize)
		}
		p.DataBlocks = have
	} else if p.DataBlocks > have {
		return fmt.Errorf("%s: %d data blocks requested, but the device holds only %d", data.Name(), p.DataBlocks, have)
	}
	return nil
}

// stderrTerminal returns stderr when it is a terminal, else nil.
func (e *env) stderrTerminal() *os.File {
	f, ok := e.stderr.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return f
}

// progressPrinter shows progress on stderr when it is a terminal.
func (e *env) progressPrinter(verb string) func(done, total uint64) {
	f := e.stderrTerminal()
	if f == nil {
		return nil
	}
	var last time.Time
	return func(done, total uint64) {
		if done == total {
			fmt.Fprint(f, "\r\033[K")
			return
		}
		if time.Since(last) < 200*time.Millisecond {
			return
		}
		last = time.Now()
		fmt.Fprintf(f, "\r%s: %d%% (%d/%d MiB)", verb, done*100/total, done>>20, total>>20)
	}
}

// superblockBlockExtent is how far libcryptsetup grows a hash file when it
// writes the superblock: it rewrites the whole block around it, of the
// file system's block size (4096 here) or the hash block size if smaller.
func superblockBlockExtent(p verity.Params) int64 {
	bs := min(uint64(4096), uint64(p.HashBlockSize))
	return int64((p.HashOffset + verity.SuperblockSize + bs - 1) / bs * bs)
}

type verityFormatResult struct {
	RootHash       string  `json:"rootHash"`
	Salt           string  `json:"salt"`
	UUID           *string `json:"uuid"`
	DataBlockSize  uint32  `json:"dataBlockSize"`
	HashBlockSize  uint32  `json:"hashBlockSize"`
	DataBlocks     uint64  `json:"dataBlocks"`
	HashBlocks     uint64  `json:"hashBlocks"`
	HashType       uint32  `json:"hashType"`
	HashAlgorithm  string  `json:"hashAlgorithm"`
	HashOffset     uint64  `json:"hashOffset"`
	HashDeviceSize int64   `json:"hashDeviceSize"`
	Superblock     bool    `json:"superblock"`
}

func newVerityFormatCmd(e *env) *cobra.Command {
	var f verityFlags
	cmd := &cobra.Command{
		Use:   "format DATA HASH",
		Short: "Build the dm-verity hash tree of DATA into HASH (like veritysetup format)",
		Long: `Build the dm-verity hash tree of DATA into HASH and print the root hash,
byte for byte as veritysetup format does. HASH is created if missing and
grown as needed; DATA and HASH may be the same file with --hash-offset past
the data.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := f.params()
			var err error
			if cmd.Flags().Changed("salt") {
				if p.Salt, err = parseSalt(f.salt); err != nil {
					return err
				}
			} else if p.Salt, err = verity.RandomSalt(rand.Reader, verity.DefaultSaltSize); err != nil {
				return err
			}
			if !p.NoSuperblock {
				if f.uuid != "" {
					if p.UUID, err = verity.ParseUUID(f.uuid); err != nil {
						return err
					}
				} else if p.UUID, err = verity.RandomUUID(rand.Reader); err != nil {
					return err
				}
			}
			return e.verityFormat(args[0], args[1], p, f)
		},
	}
	f.register(cmd)
	return cmd
}

func (e *env) verityFormat(dataPath, hashPath string, p verity.Params, f verityFlags) error {
	data, err := os.Open(dataPath)
	if err != nil {
		return err
	}
	defer data.Close()
	if err := dataBlocksFor(data, &p); err != nil {
		return err
	}
	layout, err := p.Layout()
	if err != nil {
		return err
	}
	hash, err := os.OpenFile(hashPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer hash.Close()
	dataInfo, err1 := data.Stat()
	hashInfo, err2 := hash.Stat()
	if err1 == nil && err2 == nil && os.SameFile(dataInfo, hashInfo) && p.DataBlocks*uint64(p.DataBlockSize) > p.HashOffset {
		return fmt.Errorf("%s: data area overlaps with hash area (data ends at %d, hash offset %d)", hashPath, p.DataBlocks*uint64(p.DataBlockSize), p.HashOffset)
	}
	if pageSize := os.Getpagesize(); int(p.DataBlockSize) > pageSize {
		fmt.Fprintf(e.stderr, "imago: warning: the kernel cannot activate a device whose data block size exceeds the page size (%d)\n", pageSize)
	}

	root, err := verity.FormatWithOptions(data, hash, p, verity.Options{Progress: e.progressPrinter("hashing")})
	if err != nil {
		return err
	}
	if !p.NoSuperblock && err2 == nil && hashInfo.Mode().IsRegular() {
		// Leave the file at the size veritysetup leaves it.
		if size, err := deviceSize(hash); err != nil {
			return err
		} else if extent := superblockBlockExtent(p); int64(size) < extent {
			if err := hash.Truncate(extent); err != nil {
				return err
			}
		}
	}
	if err := hash.Sync(); err != nil {
		return err
	}
	if err := hash.Close(); err != nil {
		return err
	}
	rootHex := hex.EncodeToString(root)
	if f.rootHashFile != "" {
		if err := os.WriteFile(f.rootHashFile, []byte(rootHex), 0o600); err != nil {
			return err
		}
	}

	res := verityFormatResult{
		RootHash:       rootHex,
		Salt:           hex.EncodeToString(p.Salt),
		DataBlockSize:  p.DataBlockSize,
		HashBlockSize:  p.HashBlockSize,
		DataBlocks:     p.DataBlocks,
		HashBlocks:     layout.HashBlocks,
		HashType:       p.HashType,
		HashAlgorithm:  p.Algorithm,
		HashOffset:     p.HashOffset,
		HashDeviceSize: int64((layout.FirstHashBlock + layout.HashBlocks) * uint64(p.HashBlockSize)),
		Superblock:     !p.NoSuperblock,
	}
	if !p.NoSuperblock {
		u := verity.FormatUUID(p.UUID)
		res.UUID = &u
	}
	if f.json {
		return e.printJSON(res)
	}
	// The same table veritysetup prints.
	w := e.stdout
	uuid, salt := "", "-"
	if res.UUID != nil {
		uuid = *res.UUID
	}
	if len(p.Salt) > 0 {
		salt = res.Salt
	}
	fmt.Fprintf(w, "VERITY header information for %s\n", hashPath)
	fmt.Fprintf(w, "UUID:            \t%s\n", uuid)
	fmt.Fprintf(w, "Hash type:       \t%d\n", p.HashType)
	fmt.Fprintf(w, "Data blocks:     \t%d\n", p.DataBlocks)
	fmt.Fprintf(w, "Data block size: \t%d\n", p.DataBlockSize)
	fmt.Fprintf(w, "Hash blocks:     \t%d\n", layout.HashBlocks)
	fmt.Fprintf(w, "Hash block size: \t%d\n", p.HashBlockSize)
	fmt.Fprintf(w, "Hash algorithm:  \t%s\n", p.Algorithm)
	fmt.Fprintf(w, "Salt:            \t%s\n", salt)
	fmt.Fprintf(w, "Root hash:      \t%s\n", rootHex)
	if p.HashOffset == 0 {
		fmt.Fprintf(w, "Hash device size: \t%d [bytes]\n", res.HashDeviceSize)
	}
	return nil
}

type verityVerifyResult struct {
	Verified   bool   `json:"verified"`
	RootHash   string `json:"rootHash"`
	DataBlocks uint64 `json:"dataBlocks"`
	HashBlocks uint64 `json:"hashBlocks"`
}

func newVerityVerifyCmd(e *env) *cobra.Command {
	var f verityFlags
	cmd := &cobra.Command{
		Use:   "verify DATA HASH [ROOTHASH]",
		Short: "Check every block of DATA and HASH against the root hash (like veritysetup verify)",
		Long: `Check every block of DATA and HASH against ROOTHASH (or --root-hash-file).
With a superblock, the parameters come from it and only --hash-offset is
used to find it, as with veritysetup; with --no-superblock they come from
the flags, and --salt must be given (- for none). Exits 0 only when every
block verifies; otherwise the one error line names the first bad block.`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var rootHex string
			switch {
			case len(args) == 3:
				rootHex = args[2]
			case f.rootHashFile != "":
				b, err := os.ReadFile(f.rootHashFile)
				if err != nil {
					return err
				}
				rootHex = strings.TrimSpace(string(b))
			default:
				return errors.New("verify needs ROOTHASH or --root-hash-file")
			}
			if f.noSuperblock && !cmd.Flags().Changed("salt") {
				return errors.New("--no-superblock needs --salt (- for none)")
			}
			return e.verityVerify(args[0], args[1], rootHex, f)
		},
	}
	f.register(cmd)
	return cmd
}

func (e *env) verityVerify(dataPath, hashPath, rootHex string, f verityFlags) error {
	data, err := os.Open(dataPath)
	if err != nil {
		return err
	}
	defer data.Close()
	hash, err := os.Open(hashPath)
	if err != nil {
		return err
	}
	defer hash.Close()
	var p verity.Params
	if f.noSuperblock {
		p = f.params()
		if p.Salt, err = parseSalt(f.salt); err != nil {
			return err
		}
	} else {
		if f.hashOffset > 1<<62 {
			return fmt.Errorf("hash offset %d is too large", f.hashOffset)
		}
		if p, err = verity.ReadSuperblock(hash, int64(f.hashOffset)); err != nil {
			return fmt.Errorf("%s: %w", hashPath, err)
		}
	}
	if err := dataBlocksFor(data, &p); err != nil {
		return err
	}
	layout, err := p.Layout()
	if err != nil {
		return err
	}
	root, err := hex.DecodeString(rootHex)
	if err != nil || len(root) != layout.DigestSize {
		return fmt.Errorf("invalid root hash %q: want %d hex digits for %s", rootHex, 2*layout.DigestSize, p.Algorithm)
	}
	err = verity.VerifyWithOptions(data, hash, p, root, verity.Options{Progress: e.progressPrinter("verifying")})
	if err != nil {
		return &ExitError{Code: 1, Message: err.Error()}
	}
	if f.json {
		return e.printJSON(verityVerifyResult{Verified: true, RootHash: hex.EncodeToString(root), DataBlocks: p.DataBlocks, HashBlocks: layout.HashBlocks})
	}
	fmt.Fprintf(e.stdout, "Verified %d data blocks and %d hash blocks against root hash %s.\n", p.DataBlocks, layout.HashBlocks, hex.EncodeToString(root))
	return nil
}
