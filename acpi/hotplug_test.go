package acpi

// Root ports on pcie.0 with ACPI PCI hotplug on: the tables the firmware reads carry the
// hotplug AML the machine reset adds (BSEL per root-port bus, its slot's Scope and DVNT, the
// PCNT tree, a non-empty _E01). Two pieces of data nobody here produced pin that model down:
// upstream dstack's second generation of qemu-acpi goldens, and the real 8×B200 CVM of
// dstack's PR #1203.

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// Upstream dstack's qemu-acpi crate published two generations of golden SHA-256s for its
// GPU/NVSwitch shapes (base machine of upstreamGoldenBase, hotplug on, 11.1). The first
// (TestUpstreamQEMUACPIGoldens) is acpi_setup's; the second is what the firmware reads.
func TestUpstreamHotplugGoldensAreFirstRead(t *testing.T) {
	for _, tc := range []struct {
		gpus, nvswitches int
		setup, firstRead string
	}{
		{1, 0, "f47ab428541cb334c6de6e59e7fcf44a5db7b314e9dd4c643978968917eb25b2", "f22f486b0e33ed0aad80e6cb26726652d671d3c58f521827825a26f069e499a3"},
		{8, 0, "ae3fefc72eb747cbff363e4f5ac7f3366f257849dc5f2719a9368303abaef4cc", "037b07a2b0d6dc1d3b8370bb8d84564b74cd4f9a09163252c4a8b08d9ad0be70"},
		{1, 1, "8a48a13bc6041d73f7decce488054a8d25800cc82e11fa9bd1687e010ac9c9b0", "6f1e598f7b9acbc24c33c573c81112b4e9df7d576d18e82d94b0253c4a69da71"},
		{1, 4, "2052ea73c74e1462947e600c95742e48cae0f7a84bc0ec79ab12f7a7818aec7a", "e23873ce836a73783d043173f9757da1b36151a3a2987c8ab978e33570120eb9"},
	} {
		cfg := upstreamGoldenBase()
		cfg.NumGPUs, cfg.NumNVSwitches = tc.gpus, tc.nvswitches
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		for _, st := range []struct {
			stage tablesStage
			want  string
		}{{atSetup, tc.setup}, {atFirstRead, tc.firstRead}} {
			b, err := buildAt(cfg, st.stage)
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(b.Tables); hex.EncodeToString(sum[:]) != st.want {
				t.Errorf("%d GPU(s) + %d NVSwitch(es), stage %d: tables SHA-256 %x, upstream's golden %s", tc.gpus, tc.nvswitches, st.stage, sum, st.want)
			}
		}
	}
}

// dstack's PR #1203 quotes its verifier rejecting a real 8×B200 CVM on QEMU 10.2.1 with
// hotplug on: it predicted (from acpi_setup-time tables) the acpi-loader digest adae98e2…, the
// CVM measured 01f02cba…. The loader depends only on the tables' sizes and order. Searching
// 8-GPU machines (1–512 vCPUs, 0–8 NVSwitches, 0–3 NICs, 0–4 volumes, root disk either way,
// pci_hole64 unset/set/0, hugepages or not), the setup-time digest adae98e2… is reached only
// with 256 vCPUs, no hugepages, no NVSwitch and eight endpoints before the root ports (DSDT
// 30482 bytes) — dstack-vmm's default devices, 1 NIC and the root disk, among them. For every
// such shape the tables the firmware reads give exactly the digest the CVM measured.
func TestB200LoaderDigest(t *testing.T) {
	const (
		predicted = "adae98e24401f6c8d6f3f2c24a78023ebc3c82ed951a92dde7958e5eae1fe1b4352ad1075aec822b687469075027b82c"
		measured  = "01f02cba34d8f7213872ce341a587c636016a6268d0b9c2d2198058a8a709fe38cde80f67c808067444cb8fa11cdd27c"
	)
	off := false
	for _, dev := range []struct{ nics, vols int }{{1, 0}, {0, 1}, {2, 0}} {
		cfg := MachineConfig{CPUs: 256, MemoryBytes: 1 << 40, QEMUVersion: Version{10, 2, 1}, PIC: &off,
			NumNICs: dev.nics, NumVerityVolumes: dev.vols, NumGPUs: 8, RootVerity: dev.nics+dev.vols == 1,
			HostShareMode: HostShare9p, PCIHole64Size: 1 << 40, PCIHole64SizeSet: true}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		for _, st := range []struct {
			stage tablesStage
			want  string
		}{{atSetup, predicted}, {atFirstRead, measured}} {
			b, err := buildAt(cfg, st.stage)
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha512.Sum384(b.Loader); hex.EncodeToString(sum[:]) != st.want {
				t.Errorf("%d NIC(s), %d volume(s), stage %d: loader SHA-384 %x, want %s", dev.nics, dev.vols, st.stage, sum, st.want)
			}
		}
	}
}

const firstReadDumpDir = "../testdata/acpi-firstread"

// firstReadDump is one machine QEMU ran until the firmware's first read of the ACPI blobs
// (../testdata/acpi-firstread): the blobs it rebuilt then (blobDump) and the ones acpi_setup
// had built in the same run (Setup).
type firstReadDump struct {
	blobDump
	Setup  blobDump `json:"setup"`
	Family string   `json:"family"`
	Config struct {
		oracleConfig
		NUMANodes []NUMANode `json:"numa_nodes"`
	} `json:"config"`
	// VMMExpander: the command line is dstack-vmm's, whose hugepages machines have a
	// pxb-pcie expander even without GPUs (upstream dstack-mr's has none).
	VMMExpander bool `json:"vmm_expander"`
}

// TestFirstReadDumps: for every machine dumped at the firmware's first read, acpi_setup's blobs
// of the same run are buildAtSetup's and the first-read blobs are Build's. Where the two dumps
// differ (root ports on pcie.0 with hotplug on), the difference is the hotplug AML; everywhere
// else they are equal, which is the assumption every acpi_setup dump of this package rests on.
func TestFirstReadDumps(t *testing.T) {
	dumps, err := testvectors.ReadJSONLGzip[firstReadDump](filepath.Join(firstReadDumpDir, "index.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	blobs := blobCache{}
	same, differ := 0, 0
	for _, d := range dumps {
		o := oracleCase{Config: d.Config.oracleConfig, CompatEnv: d.Config.QEMUVersion}
		t.Run(d.Family+"/"+o.name(), func(t *testing.T) {
			if d.Error != "" {
				t.Skipf("QEMU run failed: %s", d.Error)
			}
			cfg := o.machine(t)
			cfg.hugepagesWithoutExpander = cfg.hugepagesWithoutExpander && !d.VMMExpander
			cfg.NUMANodes = d.Config.NUMANodes
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			setup, err := buildAtSetup(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range []struct {
				name, got, want string
			}{{"tables", sum384(setup.Tables), d.Setup.TablesSHA384}, {"rsdp", sum384(setup.RSDP), d.Setup.RSDPSHA384}, {"loader", sum384(setup.Loader), d.Setup.LoaderSHA384}} {
				if b.got != b.want {
					t.Errorf("acpi_setup %s differs from the same run's dump", b.name)
				}
			}
			got, err := Build(cfg)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			d.compare(t, got, firstReadDumpDir, blobs)
			if t.Failed() {
				return
			}
			if d.Setup.TablesSHA384 == d.TablesSHA384 && d.Setup.LoaderSHA384 == d.LoaderSHA384 && d.Setup.RSDPSHA384 == d.RSDPSHA384 {
				same++
			} else {
				differ++
			}
		})
	}
	if same+differ == 0 {
		t.Fatal("no dump matched")
	}
	t.Logf("%d machines dumped at the firmware's first read match Build byte for byte (tables, RSDP, loader): "+
		"%d read what acpi_setup built, %d read rebuilt tables", same+differ, same, differ)
}

func sum384(b []byte) string {
	s := sha512.Sum384(b)
	return hex.EncodeToString(s[:])
}

// Build gives the first-read tables for hotplug-on root ports where a QEMU of the profile was
// dumped at that read, and refuses them, naming the profile and the way out, elsewhere.
func TestBuildHotplugRootPortsByProfile(t *testing.T) {
	for _, tc := range []struct {
		v     Version
		built bool
	}{{Version{10, 1, 0}, true}, {Version{10, 2, 1}, true}, {Version{10, 2, 2}, true},
		{Version{9, 2, 1}, false}, {Version{10, 0, 0}, false}, {Version{11, 0, 3}, false}, {Version{11, 1, 0}, false}} {
		cfg := upstreamGoldenBase()
		cfg.QEMUVersion, cfg.NumGPUs, cfg.NumNVSwitches = tc.v, 8, 4
		got, err := Build(cfg)
		if !tc.built {
			if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "--hotplug-off") || !strings.Contains(err.Error(), cfg.profile().name) {
				t.Errorf("QEMU %s: want a refusal naming the profile and --hotplug-off, got %v", tc.v, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("QEMU %s: %v", tc.v, err)
		}
		want, err := buildAt(cfg, atFirstRead)
		if err != nil || !bytes.Equal(got.Tables, want.Tables) {
			t.Errorf("QEMU %s: Build is not the first-read build (%v)", tc.v, err)
		}
	}
}
