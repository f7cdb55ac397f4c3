package snp

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// reportMeasurement is the MEASUREMENT field of an SNP ATTESTATION_REPORT (offset 0x90).
func reportMeasurement(t *testing.T, report []byte) string {
	t.Helper()
	if len(report) != 1184 {
		t.Fatalf("report is %d bytes, want 1184", len(report))
	}
	return hex.EncodeToString(report[0x90 : 0x90+DigestSize])
}

func measurementOf(t *testing.T, in *LegacyLaunchInputs) (*Measurement, Launch) {
	t.Helper()
	m, l, err := in.Document()
	if err != nil {
		t.Fatal(err)
	}
	return m, l
}

// The real capture: the launch inputs dstack-vmm recorded give the MEASUREMENT the EPYC Milan
// host's PSP signed, and a changed input does not.
func TestRealCaptureLaunchDigest(t *testing.T) {
	want := reportMeasurement(t, testvectors.ReadShared(t, "sev-snp/extracted/sev_snp_report.bin"))
	var in LegacyLaunchInputs
	dec := json.NewDecoder(bytes.NewReader(testvectors.ReadShared(t, "sev-snp/extracted/sev_snp_measurement_input.json")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		t.Fatal(err)
	}
	m, l := measurementOf(t, &in)
	got, err := m.LaunchDigest(l)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got[:]) != want {
		t.Fatalf("launch digest %x, report MEASUREMENT %s", got, want)
	}
	for name, mutate := range map[string]func(*Measurement, *Launch){
		"vcpus":          func(_ *Measurement, l *Launch) { l.VCPUs = 4 },
		"vcpu type":      func(_ *Measurement, l *Launch) { l.VCPUType = "EPYC-Milan" },
		"guest features": func(_ *Measurement, l *Launch) { l.GuestFeatures = 3 },
		"cmdline":        func(m *Measurement, _ *Launch) { m.Cmdline += " x" },
		"table offset":   func(m *Measurement, _ *Launch) { m.HashesTableGPA += 0x10 },
		"reset eip":      func(m *Measurement, _ *Launch) { m.ResetEIP += 0x10 },
		"section order": func(m *Measurement, _ *Launch) {
			m.OVMFSections[0], m.OVMFSections[1] = m.OVMFSections[1], m.OVMFSections[0]
		},
	} {
		m2, l2 := measurementOf(t, &in)
		mutate(m2, &l2)
		if d, err := m2.LaunchDigest(l2); err == nil && hex.EncodeToString(d[:]) == want {
			t.Errorf("%s changed but the digest did not", name)
		}
	}
}

// measurement.snp.cbor as dstack wrote it for the capture: it re-encodes to its exact bytes
// (so its sha256sum.txt line, hence os_image_hash, is reproducible) and, with the launch shape
// of the vm_config, gives the report's MEASUREMENT.
func TestRealDocument(t *testing.T) {
	raw := testvectors.ReadShared(t, "sev-snp/extracted/measurement.snp.cbor")
	want := reportMeasurement(t, testvectors.ReadShared(t, "sev-snp/extracted/sev_snp_report.bin"))
	var cfg struct {
		SNP string `json:"sev_snp_measurement"`
	}
	if err := json.Unmarshal(testvectors.ReadShared(t, "sev-snp/extracted/vm_config.normalized.json"), &cfg); err != nil {
		t.Fatal(err)
	}
	var shape struct {
		Measurement   []byte `json:"measurement"`
		VCPUs         int    `json:"vcpus"`
		VCPUType      string `json:"vcpu_type"`
		GuestFeatures uint64 `json:"guest_features"`
	}
	if err := json.Unmarshal([]byte(cfg.SNP), &shape); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shape.Measurement, raw) {
		t.Fatal("vm_config's measurement is not the extracted measurement.snp.cbor")
	}
	m, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, raw) {
		t.Errorf("re-encoding differs:\n got %x\nwant %x", enc, raw)
	}
	got, err := m.LaunchDigest(Launch{VCPUs: shape.VCPUs, VCPUType: shape.VCPUType, GuestFeatures: shape.GuestFeatures})
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got[:]) != want {
		t.Errorf("launch digest %x, report MEASUREMENT %s", got, want)
	}
}

// Upstream dstack-mr's synthetic vectors (sev.rs tests), each also reproduced with virtee's
// sev-snp-measure (see ../shared/sev-snp/PROVENANCE.md).
func TestUpstreamVectors(t *testing.T) {
	t.Run("one page", func(t *testing.T) {
		var g gctx
		d := sha512.Sum384([]byte("page"))
		g.update(pageTypeNormal, 0x1000, &d)
		if got := hex.EncodeToString(g.ld[:]); got != "3ebc1a70acc0bae5ae2788fae29a0371f983b19a68faf9843064f36040f58571ce5bb6bcdc9c361087073f8cffd92635" {
			t.Errorf("got %s", got)
		}
	})
	t.Run("synthetic firmware", func(t *testing.T) {
		fw := upstreamSyntheticFirmware()
		entries, err := footerEntries(fw)
		if err != nil {
			t.Fatal(err)
		}
		got := map[[16]byte]uint32{}
		for _, e := range entries {
			got[e.guid] = binary.LittleEndian.Uint32(e.data)
		}
		if got[guidHashesTable] != 0x4000 || got[guidSEVESReset] != 0xfffffff0 || got[guidSEVMetadata] != uint32(len(fw)-512) {
			t.Errorf("footer entries %x", got)
		}
		// Upstream leaves the metadata's length field zero; EDK2 fills it in, and so does this
		// copy for the parser, which checks it.
		withLen := bytes.Clone(fw)
		binary.LittleEndian.PutUint32(withLen[512+4:], 16+4*12)
		secs, err := parseMetadata(withLen, got[guidSEVMetadata])
		if err != nil {
			t.Fatal(err)
		}
		want := []Section{{0x1000, 0x1000, 1}, {0x2000, 0x1000, 2}, {0x3000, 0x1000, 3}, {0x4000, 0x1000, 0x10}}
		if len(secs) != len(want) {
			t.Fatalf("sections %v", secs)
		}
		for i := range want {
			if secs[i] != want[i] {
				t.Errorf("section %d: %+v, want %+v", i, secs[i], want[i])
			}
		}
		var g gctx
		g.normalPages(1<<32-uint64(len(fw)), fw)
		if got := hex.EncodeToString(g.ld[:]); got != "7c0f80f0a8d0ab1ee23fe763b255b8b210bb71113febcda60d76c00e84512f0cc141ffaa61be7bd22164736e85ec52d3" {
			t.Errorf("firmware digest %s", got)
		}
	})
	t.Run("valid_input", func(t *testing.T) {
		m := &Measurement{Version: Version, Cmdline: "console=ttyS0 dstack.rootfs_hash=" + strings.Repeat("33", 32),
			OVMFHash: bytes.Repeat([]byte{0x44}, 48), KernelHash: bytes.Repeat([]byte{0x55}, 32), InitrdHash: bytes.Repeat([]byte{0x66}, 32),
			HashesTableGPA: 0x801000, ResetEIP: 0xfffffff0,
			OVMFSections: []Section{{0x100000, 0x2000, 1}, {0x800000, 0x1000, 0x10}, {0x810000, 0x1000, 2}, {0x820000, 0x1000, 3}}}
		got, err := m.LaunchDigest(Launch{VCPUs: 2, VCPUType: "epyc-v4", GuestFeatures: 1})
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got[:]) != "88b48404819692fd2a5068f1a07bf1973bbcaa1314adc670705f9388762a759faf889f8e2c71fe1ec892554415257960" {
			t.Errorf("got %x", got)
		}
	})
}

// upstreamSyntheticFirmware is upstream's 4 KiB test image: SEV metadata at 512 with four
// sections, and the footer table's three entries. (QEMU wants whole 64 KiB blocks, so only its
// parts are parsed here, not the whole image.)
func upstreamSyntheticFirmware() []byte {
	fw := make([]byte, 4096)
	const meta = 512
	copy(fw[meta:], "ASEV")
	binary.LittleEndian.PutUint32(fw[meta+8:], 1)
	binary.LittleEndian.PutUint32(fw[meta+12:], 4)
	for i, s := range [][3]uint32{{0x1000, 0x1000, 1}, {0x2000, 0x1000, 2}, {0x3000, 0x1000, 3}, {0x4000, 0x1000, 0x10}} {
		for j, v := range s {
			binary.LittleEndian.PutUint32(fw[meta+16+i*12+j*4:], v)
		}
	}
	return withFooter(fw, map[[16]byte]uint32{guidHashesTable: 0x4000, guidSEVESReset: 0xfffffff0, guidSEVMetadata: uint32(len(fw) - meta)},
		[][16]byte{guidHashesTable, guidSEVESReset, guidSEVMetadata})
}

// withFooter writes a footer table holding one u32 entry per GUID, in order, below the reset
// vector's 32 bytes.
func withFooter(fw []byte, vals map[[16]byte]uint32, order [][16]byte) []byte {
	var table []byte
	for _, g := range order {
		e := binary.LittleEndian.AppendUint32(nil, vals[g])
		e = binary.LittleEndian.AppendUint16(e, uint16(len(e)+footerEntryHeader))
		table = append(append(table, e...), g[:]...)
	}
	end := len(fw) - footerTailOffset - footerEntryHeader
	copy(fw[end-len(table):], table)
	binary.LittleEndian.PutUint16(fw[end:], uint16(len(table)+footerEntryHeader))
	copy(fw[end+2:], guidFooterTable[:])
	return fw
}

func TestCPUSignatures(t *testing.T) {
	for name, want := range map[string]uint32{"EPYC-v4": 0x800f12, "EPYC-Rome": 0x830f10, "EPYC-Milan": 0xa00f11, "EPYC-Genoa": 0xa10f10} {
		got, err := VCPUSignature(name)
		if err != nil || got != want {
			t.Errorf("%s: %#x, %v; want %#x", name, got, err, want)
		}
	}
	if _, err := VCPUSignature("host"); err == nil || !strings.Contains(err.Error(), "epyc-v4") {
		t.Errorf("unknown type: %v", err)
	}
}

func TestEffectiveVCPUs(t *testing.T) {
	for _, c := range []struct {
		req       int
		hugepages bool
		nodes     int
		want      int
	}{{0, false, 0, 1}, {3, false, 4, 3}, {3, true, 0, 3}, {3, true, 2, 4}, {8, true, 3, 9}, {5, true, 1, 5}} {
		if got := EffectiveVCPUs(c.req, c.hugepages, c.nodes); got != c.want {
			t.Errorf("EffectiveVCPUs(%d, %v, %d) = %d, want %d", c.req, c.hugepages, c.nodes, got, c.want)
		}
	}
}

func readShared(t *testing.T, rel string) []byte { return testvectors.ReadShared(t, rel) }

func sharedDir() (string, bool) { return testvectors.SharedDir() }

func readFile(dir, rel string) ([]byte, error) { return os.ReadFile(dir + "/" + rel) }
