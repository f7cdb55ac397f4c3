package acpi

// Real QEMU output for machines as dstack-vmm launches them, where that differs from upstream
// dstack-mr's own command line (../testdata/acpi-vmm, provenance in ../testdata/README.md): a
// hugepages VM without GPUs gets NUMA node 0 and a pxb-pcie expander on bus 5 with nothing
// behind it. The dumps are of all three fw_cfg blobs; nothing behind the expander means the
// firmware programs nothing the rebuilt tables could read, so Build must equal them.

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

const vmmDumpDir = "../testdata/acpi-vmm"

// blobDump is what a QEMU dump recorded: the SHA-384 of each fw_cfg blob, or why QEMU refused.
type blobDump struct {
	QEMUVersion  string `json:"qemu_version"`
	TablesSHA384 string `json:"tables_sha384"`
	RSDPSHA384   string `json:"rsdp_sha384"`
	LoaderSHA384 string `json:"loader_sha384"`
	Error        string `json:"error"`
}

// compare reports each of got's blobs that differs from the dump, the tables by first
// differing table and offset (the dump's blob read from dir).
func (d blobDump) compare(t *testing.T, got *Blobs, dir string, blobs blobCache) {
	t.Helper()
	for _, b := range []struct {
		name string
		data []byte
		want string
	}{{"tables", got.Tables, d.TablesSHA384}, {"rsdp", got.RSDP, d.RSDPSHA384}, {"loader", got.Loader, d.LoaderSHA384}} {
		if sum := sha512.Sum384(b.data); hex.EncodeToString(sum[:]) == b.want {
			continue
		}
		if b.name != "tables" {
			t.Errorf("%s differs from QEMU %s", b.name, d.QEMUVersion)
			continue
		}
		want := blobs.getFrom(t, dir, b.want)
		t.Errorf("tables differ from QEMU %s: %s", d.QEMUVersion, describeTablesDiff(got.Tables, want, got.List))
	}
}

type vmmDump struct {
	blobDump
	Config oracleConfig `json:"config"`
}

func TestVMMHugepagesExpanderDumps(t *testing.T) {
	dumps, err := testvectors.ReadJSONLGzip[vmmDump](filepath.Join(vmmDumpDir, "index.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	blobs := blobCache{}
	matched := 0
	for _, d := range dumps {
		if d.Error != "" {
			continue
		}
		o := oracleCase{Config: d.Config, CompatEnv: d.Config.QEMUVersion}
		t.Run(d.QEMUVersion+"/"+o.name(), func(t *testing.T) {
			if !d.Config.Hugepages || d.Config.NumGPUs != 0 {
				t.Fatalf("dump is not a hugepages machine without GPUs: %+v", d.Config)
			}
			cfg := o.machine(t)
			cfg.hugepagesWithoutExpander = false // what dstack-vmm launches: the default
			got, err := Build(cfg)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			d.compare(t, got, vmmDumpDir, blobs)
			if !t.Failed() {
				matched++
			}
		})
	}
	if matched == 0 {
		t.Fatal("no dump matched")
	}
	t.Logf("%d dstack-vmm hugepages machines match QEMU byte for byte (tables, RSDP, loader)", matched)
}

// numaDump is a multi-node machine as dstack-vmm launches it (../testdata/acpi-numa).
type numaDump struct {
	blobDump
	Config struct {
		oracleConfig
		NUMANodes   []NUMANode `json:"numa_nodes"`
		GPUsPerNode []int      `json:"gpus_per_node"`
	} `json:"config"`
}

const numaDumpDir = "../testdata/acpi-numa"

// TestVMMNUMADumps: every multi-node layout QEMU dumped is built byte for byte (all three
// blobs) as acpi_setup writes it: vCPUs and RAM split per node (SRAT, CPU _PXM), one expander per
// node at slot 0x10+i (DSDT, newest first), PCI0's bus range cut below the lowest expander bus.
// Build itself gives the same blobs without GPUs and refuses machines with GPUs behind the
// expanders, whose tables the firmware rebuilds.
func TestVMMNUMADumps(t *testing.T) {
	dumps, err := testvectors.ReadJSONLGzip[numaDump](filepath.Join(numaDumpDir, "index.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	blobs := blobCache{}
	matched, built := 0, 0
	for _, d := range dumps {
		if d.Error != "" {
			continue
		}
		o := oracleCase{Config: d.Config.oracleConfig, CompatEnv: d.Config.QEMUVersion}
		t.Run(fmt.Sprintf("%d-cpu%d-%dMiB-nodes%v-gpus%v-hotplugoff%v", d.Config.ID, d.Config.CPU, d.Config.MemoryMB,
			d.Config.NUMANodes, d.Config.GPUsPerNode, d.Config.HotplugOff), func(t *testing.T) {
			cfg := o.machine(t)
			cfg.hugepagesWithoutExpander = false
			cfg.NUMANodes = d.Config.NUMANodes
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got, err := buildDump(cfg)
			if err != nil {
				t.Fatalf("buildDump: %v", err)
			}
			d.compare(t, got, numaDumpDir, blobs)
			if t.Failed() {
				return
			}
			matched++
			fw, err := Build(cfg)
			if cfg.NumGPUs > 0 {
				if !errors.Is(err, ErrNotSupported) {
					t.Fatalf("Build with %d GPUs behind the expanders: %v, want ErrNotSupported", cfg.NumGPUs, err)
				}
				return
			}
			if err != nil || !bytes.Equal(fw.Tables, got.Tables) || !bytes.Equal(fw.Loader, got.Loader) || !bytes.Equal(fw.RSDP, got.RSDP) {
				t.Fatalf("Build differs from the dump (%v)", err)
			}
			built++
		})
	}
	if matched == 0 {
		t.Fatal("no dump matched")
	}
	t.Logf("%d multi-node machines match QEMU byte for byte at acpi_setup; Build gives the same for the %d without GPUs", matched, built)
}
