package uefi

import "strings"

// BootManagerMenuQuick builds the same load option as BootManagerMenu while decompressing
// as little of the firmware as it can. OVMF's boot manager menu application and BdsDxe sit
// about 1.7 MiB into the ~16 MiB the DXE volume's LZMA section expands to, and LZMA
// decoding is most of the cost of a cold measurement. The image is parsed with every LZMA
// section decoded only up to a limit that doubles until the answer is settled:
//
//   - once nothing needs cutting short, BootManagerMenu itself answers;
//   - from a prefix, it is accepted only when BdsDxe names the menu file by the PCD default
//     GUID and the file sits in BdsDxe's own volume: BmRegisterBootManagerMenu then finds it
//     there first, whatever follows in the stream.
//
// What a prefix cannot see is a second file calling itself BdsDxe further on, or damage to
// the stream after the files used (firmware that would not boot).
func BootManagerMenuQuick(image []byte) (*LoadOption, error) {
	for limit := int64(2 << 20); limit <= 2*MaxDecompressedSection; limit *= 2 {
		p := &parser{fw: &Firmware{}, decodeLimit: limit}
		if err := p.parseImage(image); err != nil {
			if !p.truncated {
				return nil, err
			}
			// Possibly an artefact of the cut: decode more, and let the strict parse
			// report real damage once nothing is cut.
			continue
		}
		if !p.truncated {
			// Everything was decoded: the strict parse gives the answer.
			return BootManagerMenu(image)
		}
		if lo, ok := settledFromPrefix(p.fw); ok {
			return lo, nil
		}
	}
	return BootManagerMenu(image)
}

func settledFromPrefix(fw *Firmware) (*LoadOption, bool) {
	bds := fw.fileByUIName("BdsDxe")
	if bds == nil {
		return nil, false
	}
	lo, err := fw.BootManagerMenu()
	if err != nil || !strings.HasPrefix(lo.FoundBy, "PcdBootManagerMenuFile default") {
		return nil, false
	}
	for _, f := range bds.Volume.Files {
		if f.Name == lo.FileGUID && firstSection(f.Sections, SectionPE32) != nil {
			return lo, true
		}
	}
	return nil, false
}

// BootManagerLoadOptionQuick is BootManagerLoadOption through BootManagerMenuQuick.
func BootManagerLoadOptionQuick(image []byte) ([]byte, error) {
	lo, err := BootManagerMenuQuick(image)
	if err != nil {
		return nil, err
	}
	return lo.Data, nil
}
