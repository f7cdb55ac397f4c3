package verify

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/acpi"
	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/quote"
)

// fleetCase is one real attestation of ../shared/real-attestations.
type fleetCase struct {
	file string
	// shape replaces a missing vm_config with the shape its operators publish.
	shape *VMConfig
	// skip says why the attestation's shape cannot be trusted (the shared README's list).
	skip string
	// newFirmware: the edk2 >= stable202505 firmware generation, which verify must name.
	newFirmware bool
}

// fleetCases lists every quote + event log in the shared real attestations whose shape is known:
// the INDEX.tsv rows with a vm_config, the NEAR MPC nodes (no vm_config; published shape), and the
// three upstream verifier fixtures on QEMU 10.2.1 / 8.2.2.
func fleetCases(t *testing.T) []fleetCase {
	t.Helper()
	f, err := os.Open(testvectors.Shared(t, "real-attestations/INDEX.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// vm_config defaults (one NIC, 9p sharing, hotplug on) with the operators' published shape.
	near, err := ParseVMConfig([]byte(`{"cpu_count": 8, "memory_size": 68719476736, "qemu_version": "8.2.2"}`))
	if err != nil {
		t.Fatal(err)
	}
	unreliable := map[string]string{
		"phala-trust-center/debug-data.set1.kms.getquote.json": "vm_config shown next to the quote is not the CVM's (placeholder os_image_hash)",
		"phala-trust-center/debug-data.set2.kms.getquote.json": "vm_config says pic: true, the logged ACPI tables are PIC off",
	}
	var out []fleetCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		col := strings.Split(sc.Text(), "\t")
		if len(col) < 8 || col[0] == "file" {
			continue
		}
		c := fleetCase{file: col[0], skip: unreliable[col[0]], newFirmware: col[1] == "e53236d4"}
		switch {
		case strings.HasPrefix(col[0], "near-mpc/") && col[1] == "f06dfda6":
			c.shape = near
		case col[7] == "?":
			continue // shape unknown
		}
		out = append(out, c)
	}
	for _, n := range []string{"tdx-lite-qemu-10-2-attestation", "tdx-lite-normalized-attestation", "tdx-lite-normalized-qemu-10-2-attestation"} {
		out = append(out, fleetCase{file: "dstack-verifier-qemu-10-2/" + n + ".getquote.json"})
	}
	return out
}

// dstack060Lite is the lite measurement document of the dstack-0.6.0 image (upstream's lite
// verifier fixture): its firmware facts (CFV, TD HOB layout, Boot0000) are those of every
// pre-202505 dstack firmware.
func dstack060Lite(t *testing.T) *LiteMeasurement {
	t.Helper()
	_, g := loadFixture(t, liteFixture)
	vm, err := ParseVMConfig([]byte(g.VMConfig))
	if err != nil {
		t.Fatal(err)
	}
	lm, err := DecodeLite(vm.TDXMeasurement.Measurement)
	if err != nil {
		t.Fatal(err)
	}
	return lm
}

// TestRealFleetRTMR0 predicts RTMR0 of every real dstack CVM with a trustworthy shape from that
// shape alone (ACPI tables built here, firmware facts of the dstack-0.6.0 document) and compares
// it with the register the CVM's quote carries. The stable202505-firmware CVM must be refused as
// that firmware generation, by name.
func TestRealFleetRTMR0(t *testing.T) {
	lm := dstack060Lite(t)
	var matched, refused, skipped int
	for _, c := range fleetCases(t) {
		t.Run(c.file, func(t *testing.T) {
			if c.skip != "" {
				skipped++
				t.Skip(c.skip)
			}
			raw := testvectors.ReadShared(t, "real-attestations/"+c.file)
			var g struct {
				Quote    string `json:"quote"`
				VMConfig string `json:"vm_config"`
			}
			if err := json.Unmarshal(raw, &g); err != nil {
				t.Fatal(err)
			}
			q, err := quote.ParseAuto([]byte(g.Quote))
			if err != nil {
				t.Fatal(err)
			}
			if c.newFirmware {
				r, err := Verify(Options{Attestation: raw})
				if err != nil {
					t.Fatal(err)
				}
				// Its ACPI blobs are still QEMU's for its shape: the fw_cfg events that share the
				// ACPI events' type must not be taken for them.
				var named, acpiOK bool
				for _, ch := range r.Checks {
					if ch.Name == "firmware-generation" && !ch.OK && strings.Contains(ch.Detail, "stable202505") && strings.Contains(ch.Detail, "17 RTMR0 events") {
						named = true
					}
					acpiOK = acpiOK || (ch.Name == "acpi-digests" && ch.OK)
				}
				if !acpiOK {
					t.Errorf("the logged ACPI digests do not match the tables of its vm_config shape: %+v", r.Checks)
				}
				if !named || r.Verified {
					t.Fatalf("stable202505 firmware not refused by name: verified %v, checks %+v", r.Verified, r.Checks)
				}
				refused++
				return
			}
			vm := c.shape
			if vm == nil {
				if vm, err = ParseVMConfig([]byte(g.VMConfig)); err != nil {
					t.Fatal(err)
				}
			}
			m, err := vm.Machine()
			if err != nil {
				t.Fatal(err)
			}
			blobs, err := acpi.Build(m.MachineConfig)
			if err != nil {
				t.Fatalf("shape %d vCPU, %d bytes: %v", m.CPUs, m.MemoryBytes, err)
			}
			digests := map[string][]byte{
				eventlog.LabelACPILoader: sha384(blobs.Loader),
				eventlog.LabelACPIRSDP:   sha384(blobs.RSDP),
				eventlog.LabelACPITables: sha384(blobs.Tables),
			}
			e, err := LiteExpectedFor(lm, m, digests)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(e.RTMR[0], q.Report.RTMR[0]) {
				t.Fatalf("RTMR0 predicted %s, quote %s", hex.EncodeToString(e.RTMR[0]), hex.EncodeToString(q.Report.RTMR[0]))
			}
			matched++
		})
	}
	t.Logf("RTMR0 predicted exactly for %d real CVMs from their shape; %d refused as stable202505 firmware; %d skipped (unreliable shape pairing)", matched, refused, skipped)
	if matched == 0 && !t.Skipped() {
		t.Error("no real CVM checked")
	}
}
