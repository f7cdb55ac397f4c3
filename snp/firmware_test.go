package snp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

const debianAmdSev = "../testdata/vectors/ovmf-amdsev-debian-2026.08+ds-2.fd.gz"

func readDebianAmdSev(t testing.TB) []byte {
	t.Helper()
	b, err := testvectors.ReadGzip(debianAmdSev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Debian's AmdSev build (package ovmf-amdsev 2026.08+ds-2) parses into the layout dstack's own
// build has (same hashes table GPA and AP reset EIP as the real capture), and its digests are
// the ones virtee's sev-snp-measure computes for it (commit 8f2b337e, run on the same files:
// `--mode snp:ovmf-hash --ovmf F`; `--mode snp --vcpus 3 --vcpu-type EPYC-v4 --ovmf F --kernel K
// --append "console=ttyS0 a=b" --guest-features 0x1`; and with `--vcpus 1 --vcpu-type EPYC-Milan
// --initrd I`), K and I the sample image's kernel and initrd.
func TestDebianAmdSevFirmware(t *testing.T) {
	fw, err := ParseFirmware(readDebianAmdSev(t))
	if err != nil {
		t.Fatal(err)
	}
	if fw.GPA != 0xffc00000 || fw.HashesTableGPA != 0x810c00 || fw.ResetEIP != 0x80b004 {
		t.Errorf("GPA %#x, hashes table %#x, reset EIP %#x", fw.GPA, fw.HashesTableGPA, fw.ResetEIP)
	}
	want := []Section{{0x800000, 0x9000, 1}, {0x80a000, 0x3000, 1}, {0x80d000, 0x1000, 2}, {0x80e000, 0x1000, 3},
		{0x80f000, 0x1000, 4}, {0x811000, 0x1f000, 1}, {0x810000, 0x1000, 0x10}}
	if len(fw.Sections) != len(want) {
		t.Fatalf("sections %+v", fw.Sections)
	}
	for i := range want {
		if fw.Sections[i] != want[i] {
			t.Errorf("section %d: %+v, want %+v", i, fw.Sections[i], want[i])
		}
	}
	if got := hex.EncodeToString(fw.Digest[:]); got != "9d0dd8be18c86e3fe3bf0038ed75ebf5340bee69fd2632c8ff9409964575960ae1f7e84be387d2e3467bc3508d1e4806" {
		t.Errorf("ovmf_hash %s", got)
	}
	kernel, err := os.ReadFile("../testdata/sample-image/bzImage-6.1.0-56-amd64")
	if err != nil {
		t.Fatal(err)
	}
	initrd, err := os.ReadFile("../testdata/sample-image/initrd-small.cpio.gz")
	if err != nil {
		t.Fatal(err)
	}
	ks, is := sha256.Sum256(kernel), sha256.Sum256(initrd)
	for _, c := range []struct {
		initrd []byte
		launch Launch
		want   string
	}{
		{nil, Launch{3, "EPYC-v4", 1}, "ea00e44c8ac05c4dff5c63c9270c08ab0a4803c4cdbff0e46f6f696d656158b63d0a0faee147d9810ee56ebdbeedf321"},
		{is[:], Launch{1, "EPYC-Milan", 1}, "741cbb477dd607995c6695eff7b0892e1957ed91b0429855f61b3b84a57af308a6caf12987385d748142656daff1da9e"},
	} {
		m, err := FromFirmware(fw, "console=ttyS0 a=b", ks[:], c.initrd)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.LaunchDigest(c.launch)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got[:]) != c.want {
			t.Errorf("%+v: %x, want %s", c.launch, got, c.want)
		}
	}
}

// A TDX-only OVMF has a footer table but no SEV entries; a non-OVMF file has none.
func TestParseFirmwareRefuses(t *testing.T) {
	good := readDebianAmdSev(t)
	end := len(good) - footerTailOffset - footerEntryHeader
	tdx, err := os.ReadFile("../testdata/sample-image/ovmf-debian-2025.02-8+deb13u1.fd")
	if err != nil {
		t.Fatal(err)
	}
	metaOff := func(b []byte) int {
		entries, err := footerEntries(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.guid == guidSEVMetadata {
				return len(b) - int(binary.LittleEndian.Uint32(e.data))
			}
		}
		t.Fatal("no metadata entry")
		return 0
	}
	mo := metaOff(good)
	for _, c := range []struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}{
		{"TDX OVMF", func([]byte) []byte { return bytes.Clone(tdx) }, "needs an AmdSev build"},
		{"zeros", func(b []byte) []byte { return make([]byte, len(b)) }, "no OVMF footer table"},
		{"odd size", func(b []byte) []byte { return b[:len(b)-4096] }, "64 KiB"},
		{"table length", func(b []byte) []byte { binary.LittleEndian.PutUint16(b[end:], 0xffff); return b }, "out of bounds"},
		{"signature", func(b []byte) []byte { copy(b[mo:], "XSEV"); return b }, "signature"},
		{"version", func(b []byte) []byte { b[mo+8] = 2; return b }, "version 2"},
		{"count", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[mo+12:], 1000); return b }, "1000 sections"},
		{"type", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[mo+16+8:], 9); return b }, "type 0x9 is not supported"},
		{"big secrets", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[mo+16+2*12+4:], 0x2000); return b }, "more than one page"},
		{"unaligned", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[mo+16:], 0x800010); return b }, "whole 4 KiB pages"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseFirmware(c.mutate(bytes.Clone(good)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// The document of the Debian firmware round-trips, and a document with an unknown key, a
// missing key, a wrong length or a padded command line is refused by name.
func TestDocumentRefuses(t *testing.T) {
	fw, err := ParseFirmware(readDebianAmdSev(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := FromFirmware(fw, "console=ttyS0", make([]byte, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := Encode(back); !bytes.Equal(again, enc) {
		t.Error("round trip changed the encoding")
	}
	type extra struct {
		Measurement
		Extra int `cbor:"extra"`
	}
	withExtra, _ := encMode.Marshal(extra{*m, 1})
	noVersion, _ := encMode.Marshal(map[string]any{"cmdline": "x"})
	for _, c := range []struct {
		name string
		data []byte
		edit func(*Measurement)
		want string
	}{
		{name: "unknown key", data: withExtra, want: `unknown key "extra"`},
		{name: "missing key", data: noVersion, want: `missing key "version"`},
		{name: "not a map", data: []byte{0x01}, want: "want a map"},
		{name: "version", edit: func(m *Measurement) { m.Version = 4 }, want: "version 4"},
		{name: "ovmf_hash", edit: func(m *Measurement) { m.OVMFHash = m.OVMFHash[:32] }, want: "ovmf_hash is 32 bytes"},
		{name: "padded cmdline", edit: func(m *Measurement) { m.Cmdline += " " }, want: "trailing whitespace"},
		{name: "nul", edit: func(m *Measurement) { m.Cmdline += "\x00x" }, want: "NUL"},
		{name: "table crosses page", edit: func(m *Measurement) { m.HashesTableGPA = 0x810f80 }, want: "cross its page"},
		{name: "no hashes section", edit: func(m *Measurement) { m.OVMFSections = m.OVMFSections[:6] }, want: "no snp-kernel-hashes section"},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := c.data
			if c.edit != nil {
				bad := *m
				bad.OVMFSections = append([]Section(nil), m.OVMFSections...)
				c.edit(&bad)
				data, _ = encMode.Marshal(&bad)
			}
			_, err := Decode(data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func FuzzParseFirmware(f *testing.F) {
	good := readDebianAmdSev(f)
	// Seed the fuzzer with the image's last 64 KiB (footer, reset vector and SEV metadata): the
	// whole 4 MiB would make each run slow without reaching more of the parser.
	tail := bytes.Clone(good[len(good)-firmwareAlign:])
	f.Add(tail)
	f.Add(upstreamSyntheticFirmware())
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 2*firmwareAlign {
			return
		}
		fw, err := ParseFirmware(b)
		if err != nil {
			return
		}
		if _, err := FromFirmware(fw, "x", make([]byte, 32), nil); err != nil {
			t.Fatalf("parsed firmware gives no document: %v", err)
		}
	})
}

func FuzzDecode(f *testing.F) {
	fw, err := ParseFirmware(readDebianAmdSev(f))
	if err != nil {
		f.Fatal(err)
	}
	m, err := FromFirmware(fw, "console=ttyS0", make([]byte, 32), nil)
	if err != nil {
		f.Fatal(err)
	}
	enc, err := Encode(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	if dir, ok := testvectors.SharedDir(); ok {
		if b, err := os.ReadFile(dir + "/sev-snp/extracted/measurement.snp.cbor"); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded document does not encode: %v", err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded document does not decode: %v", err)
		}
		if enc2, _ := Encode(m2); !bytes.Equal(enc, enc2) {
			t.Fatal("encoding is not stable")
		}
		if _, err := m.LaunchDigest(DefaultLaunch(1)); err != nil {
			t.Fatalf("valid document has no launch digest: %v", err)
		}
	})
}
