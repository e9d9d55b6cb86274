package pe

import "github.com/imago-os/imago/format/pe/petest"

// synthImage returns a PE32+ image with room for 13 more section headers:
// .text at RVA 0x1000 and .data at RVA 0x2000, 4 KiB apart in memory, 512
// bytes apart in the file.
func synthImage() []byte {
	return petest.Build(0x1000, 0x200, 0x400, []petest.Section{
		{Name: ".text", VA: 0x1000, VirtualSize: 0x10, Offset: 0x400, RawSize: 0x200, Data: []byte("\xc3 text section"), Characteristics: 0x60000020},
		{Name: ".data", VA: 0x2000, VirtualSize: 0x20, Offset: 0x600, RawSize: 0x200, Data: []byte("data section contents, 32 bytes"), Characteristics: 0xc0000040},
	}, nil)
}
