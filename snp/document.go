package snp

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"github.com/fxamacker/cbor/v2"
)

// FileName is the document's name inside an image and in sha256sum.txt.
const FileName = "measurement.snp.cbor"

// Version is the only measurement.snp.cbor schema version (dstack-types SevOsImageMeasurement).
const Version = 3

// Bounds on a document: real ones are ~700 bytes with a ~300-byte command line.
const (
	maxDocBytes   = 1 << 20
	maxCmdlineLen = 64 << 10
)

// Hex is bytes that print as hex in JSON and encode as a CBOR byte string.
type Hex []byte

func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

func (h Hex) String() string { return hex.EncodeToString(h) }

// Measurement is measurement.snp.cbor: the image-static inputs of the SEV-SNP launch digest,
// without the VM shape (vCPU count and type, guest features). Field order is the encoding's
// key order.
type Measurement struct {
	Version uint32 `cbor:"version" json:"version"`
	// Cmdline is the kernel command line as QEMU is given it (metadata.json's, which dstack trims).
	Cmdline string `cbor:"cmdline" json:"cmdline"`
	// OVMFHash is the launch digest after the firmware's pages (Firmware.Digest).
	OVMFHash Hex `cbor:"ovmf_hash" json:"ovmf_hash"`
	// KernelHash and InitrdHash are the SHA-256 of the files as shipped.
	KernelHash     Hex       `cbor:"kernel_hash" json:"kernel_hash"`
	InitrdHash     Hex       `cbor:"initrd_hash" json:"initrd_hash"`
	HashesTableGPA uint64    `cbor:"hashes_table_gpa" json:"hashes_table_gpa"`
	ResetEIP       uint32    `cbor:"reset_eip" json:"reset_eip"`
	OVMFSections   []Section `cbor:"ovmf_sections" json:"ovmf_sections"`
}

// encMode writes the document as upstream's dstack-types does (ciborium over serde): maps with
// the keys in declaration order, definite lengths, shortest integer and length forms.
var encMode = func() cbor.EncMode {
	m, err := cbor.EncOptions{Sort: cbor.SortNone, IndefLength: cbor.IndefLengthForbidden}.EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

var decMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  4,
		MaxArrayElements: maxSections,
		MaxMapPairs:      16,
		// A key this package does not read could change what the document means.
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// Encode validates m and returns its canonical encoding.
func Encode(m *Measurement) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := encMode.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileName, err)
	}
	return b, nil
}

// Decode reads and validates measurement.snp.cbor. Unknown keys are refused by name.
func Decode(data []byte) (*Measurement, error) {
	if len(data) > maxDocBytes {
		return nil, fmt.Errorf("%s: %d bytes, over the %d-byte limit", FileName, len(data), maxDocBytes)
	}
	if err := checkKeys(data); err != nil {
		return nil, err
	}
	var m Measurement
	if err := decMode.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", FileName, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

var docKeys = map[string]bool{"version": true, "cmdline": true, "ovmf_hash": true, "kernel_hash": true, "initrd_hash": true,
	"hashes_table_gpa": true, "reset_eip": true, "ovmf_sections": true}
var sectionKeys = map[string]bool{"gpa": true, "size": true, "type": true}

// checkKeys names the first unknown key, at the top or in a section, and every missing one.
func checkKeys(data []byte) error {
	var top map[string]cbor.RawMessage
	if err := decMode.Unmarshal(data, &top); err != nil {
		return fmt.Errorf("%s: want a map with text keys: %w", FileName, err)
	}
	for k := range top {
		if !docKeys[k] {
			return fmt.Errorf("%s: unknown key %q", FileName, k)
		}
	}
	for _, k := range []string{"version", "cmdline", "ovmf_hash", "kernel_hash", "initrd_hash", "hashes_table_gpa", "reset_eip", "ovmf_sections"} {
		if _, ok := top[k]; !ok {
			return fmt.Errorf("%s: missing key %q", FileName, k)
		}
	}
	var sections []map[string]cbor.RawMessage
	if err := decMode.Unmarshal(top["ovmf_sections"], &sections); err != nil {
		return fmt.Errorf("%s: ovmf_sections: want an array of maps: %w", FileName, err)
	}
	for i, s := range sections {
		for k := range s {
			if !sectionKeys[k] {
				return fmt.Errorf("%s: unknown key %q in ovmf_sections[%d]", FileName, k, i)
			}
		}
		for _, k := range []string{"gpa", "size", "type"} {
			if _, ok := s[k]; !ok {
				return fmt.Errorf("%s: ovmf_sections[%d] has no %q", FileName, i, k)
			}
		}
	}
	return nil
}

// Validate checks the version, every length and what the launch model needs of the command
// line, the hashes table and the sections.
func (m *Measurement) Validate() error {
	if m.Version != Version {
		return fmt.Errorf("%s: version %d, want %d", FileName, m.Version, Version)
	}
	if err := checkCmdline(m.Cmdline); err != nil {
		return fmt.Errorf("%s: cmdline: %w", FileName, err)
	}
	for _, f := range []struct {
		name string
		v    []byte
		n    int
	}{{"ovmf_hash", m.OVMFHash, DigestSize}, {"kernel_hash", m.KernelHash, 32}, {"initrd_hash", m.InitrdHash, 32}} {
		if len(f.v) != f.n {
			return fmt.Errorf("%s: %s is %d bytes, want %d", FileName, f.name, len(f.v), f.n)
		}
	}
	if m.ResetEIP == 0 {
		return fmt.Errorf("%s: reset_eip is zero", FileName)
	}
	if err := checkLayout(m.OVMFSections, m.HashesTableGPA); err != nil {
		return fmt.Errorf("%s: ovmf_sections/hashes_table_gpa: %w", FileName, err)
	}
	return nil
}

// checkCmdline refuses what dstack's document cannot carry faithfully: surrounding whitespace
// (dstack trims the command line for the document but dstack-vmm hands QEMU the untrimmed one,
// so the two would measure differently) and NUL (QEMU hashes up to the first).
func checkCmdline(s string) error {
	switch {
	case len(s) > maxCmdlineLen:
		return fmt.Errorf("%d bytes, at most %d", len(s), maxCmdlineLen)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("contains a NUL byte")
	case strings.TrimFunc(s, unicode.IsSpace) != s:
		return fmt.Errorf("has leading or trailing whitespace: dstack measures it trimmed but dstack-vmm passes it to QEMU as is, so the launch measurement would not match; remove it from metadata.json")
	}
	return nil
}
