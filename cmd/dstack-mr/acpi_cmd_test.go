package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// oracleShape is the part of a testdata/acpi-oracle index line the CLI test needs.
type oracleShape struct {
	Config     testvectors.ACPIMachine `json:"config"`
	SHA384     map[string]string       `json:"sha384"`
	TablesList [][3]any                `json:"tables_list"`
	Error      string                  `json:"error"`
	numaBuses  []string                // --numa-nodes, for the multi-node dumps
}

func (o oracleShape) args() []string {
	c := o.Config
	a := []string{"acpi",
		"--cpu", strconv.Itoa(c.CPU),
		"--memory", fmt.Sprintf("%dM", c.MemoryMB),
		"--qemu-version", c.QEMUVersion,
		"--num-nics", strconv.Itoa(c.NumNICs),
		"--num-verity-volumes", strconv.Itoa(c.NumVerityVolumes),
		"--num-gpus", strconv.Itoa(c.NumGPUs),
		"--num-nvswitches", strconv.Itoa(c.NumNVSwitches),
		"--hotplug-off=" + strconv.FormatBool(c.HotplugOff),
		"--smm=" + strconv.FormatBool(c.SMM),
		"--root-verity=" + strconv.FormatBool(c.RootVerity),
		"--hugepages=" + strconv.FormatBool(c.Hugepages),
		"--host-share-mode", c.HostShareMode,
	}
	if c.PIC != nil {
		a = append(a, "--pic="+strconv.FormatBool(*c.PIC))
	}
	if c.PCIHole64Size != nil {
		a = append(a, "--pci-hole64-size", strconv.FormatUint(*c.PCIHole64Size, 10))
	}
	if len(o.numaBuses) > 0 {
		a = append(a, "--numa-nodes", strings.Join(o.numaBuses, ","))
	}
	return a
}

// want is what the firmware really receives: QEMU's own loader and RSDP where the index keeps
// them apart from the synthesized ones.
func (o oracleShape) want(blob string) string {
	if s, ok := o.SHA384["qemu_"+blob]; ok {
		return s
	}
	return o.SHA384[blob]
}

// cliOracleShapes picks a spread of the real-QEMU shapes the CLI can express: every 40th one
// plus every hugepages (SRAT) shape QEMU built. Shapes whose tables QEMU rebuilds before the
// firmware reads them are left out: the CLI refuses them (TestACPICommandGPUBoundaries). So are
// hugepages shapes without GPUs: the oracle ran upstream dstack-mr's command line, which has no
// expander there, and --hugepages builds what dstack-vmm launches (cliVMMShapes).
func cliOracleShapes(t *testing.T) []oracleShape {
	t.Helper()
	all, err := testvectors.ReadJSONLGzip[oracleShape]("../../testdata/acpi-oracle/index.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	var out []oracleShape
	for _, o := range all {
		if o.Error != "" || (o.Config.HugepagesBackend != "" && o.Config.HugepagesBackend != "plain") || o.Config.TablesRebuilt() ||
			(o.Config.Hugepages && o.Config.NumGPUs == 0) {
			continue
		}
		if o.Config.ID%40 == 0 || o.Config.Hugepages {
			out = append(out, o)
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d oracle shapes picked", len(out))
	}
	return out
}

// dumpShapes reads the QEMU dumps of machines as dstack-vmm launches them (testdata/acpi-vmm,
// testdata/acpi-numa) and keeps those the CLI can express, at least min of them.
func dumpShapes(t *testing.T, index string, keep func(oracleShape) bool, min int) []oracleShape {
	t.Helper()
	type dump struct {
		Config struct {
			testvectors.ACPIMachine
			NUMANodes []struct {
				PXBBus int `json:"pxb_bus"`
			} `json:"numa_nodes"`
		} `json:"config"`
		TablesSHA384 string `json:"tables_sha384"`
		RSDPSHA384   string `json:"rsdp_sha384"`
		LoaderSHA384 string `json:"loader_sha384"`
		Error        string `json:"error"`
	}
	all, err := testvectors.ReadJSONLGzip[dump](index)
	if err != nil {
		t.Fatal(err)
	}
	var out []oracleShape
	for _, d := range all {
		if d.Error != "" {
			continue
		}
		o := oracleShape{Config: d.Config.ACPIMachine,
			SHA384: map[string]string{"tables": d.TablesSHA384, "rsdp": d.RSDPSHA384, "loader": d.LoaderSHA384}}
		for _, n := range d.Config.NUMANodes {
			o.numaBuses = append(o.numaBuses, strconv.Itoa(n.PXBBus))
		}
		if keep(o) {
			out = append(out, o)
		}
	}
	if len(out) < min {
		t.Fatalf("only %d shapes picked from %s", len(out), index)
	}
	return out
}

// cliVMMShapes are the QEMU dumps of hugepages machines as dstack-vmm launches them (an
// expander on bus 5 with no GPU behind it) that the CLI can express: whole GiB of memory.
func cliVMMShapes(t *testing.T) []oracleShape {
	return dumpShapes(t, "../../testdata/acpi-vmm/index.jsonl.gz", func(o oracleShape) bool { return o.Config.MemoryMB%1024 == 0 }, 20)
}

// cliNUMAShapes are the QEMU dumps of multi-node machines without GPUs (with GPUs the CLI
// refuses them, TestACPICommandGPUBoundaries).
func cliNUMAShapes(t *testing.T) []oracleShape {
	return dumpShapes(t, "../../testdata/acpi-numa/index.jsonl.gz", func(o oracleShape) bool { return o.Config.NumGPUs == 0 }, 5)
}

// TestACPICommandAgainstOracle: `dstack-mr acpi --json --out DIR`, driven by the same flags a
// user types, prints and writes the blobs a real QEMU produced for that shape.
func TestACPICommandAgainstOracle(t *testing.T) {
	shapes := append(cliOracleShapes(t), cliVMMShapes(t)...)
	for _, o := range append(shapes, cliNUMAShapes(t)...) {
		t.Run(fmt.Sprintf("%d-cpu%d-%s-%s", o.Config.ID, o.Config.CPU, o.Config.QEMUVersion, o.Config.Name), func(t *testing.T) {
			dir := t.TempDir()
			code, stdout, stderr := runCLI(append(o.args(), "--json", "--out", dir)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var res acpiResult
			if err := json.Unmarshal([]byte(stdout), &res); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
			}
			for _, b := range []struct{ name, got, file string }{
				{"tables", res.TablesSHA384, "tables.bin"},
				{"rsdp", res.RSDPSHA384, "rsdp.bin"},
				{"loader", res.LoaderSHA384, "loader.bin"},
			} {
				if b.got != o.want(b.name) {
					t.Errorf("%s_sha384 %s, real QEMU %s", b.name, b.got, o.want(b.name))
				}
				data, err := os.ReadFile(filepath.Join(dir, b.file))
				if err != nil {
					t.Fatal(err)
				}
				if sha384Hex(data) != b.got {
					t.Errorf("%s does not hash to the printed %s_sha384", b.file, b.name)
				}
			}
			if o.TablesList == nil { // the dstack-vmm dumps keep hashes only
				return
			}
			if len(res.Tables) != len(o.TablesList) {
				t.Fatalf("%d tables listed, real QEMU has %d", len(res.Tables), len(o.TablesList))
			}
			for i, e := range o.TablesList {
				got := res.Tables[i]
				if got.Signature != e[0] || float64(got.Offset) != e[1] || float64(got.Length) != e[2] {
					t.Errorf("table %d: %+v, real QEMU %v", i, got, e)
				}
			}
		})
	}
}

// A QEMU release newer than the newest ACPI profile is refused (non-zero exit, the reason and
// the override on stderr, nothing on stdout, nothing written) unless the newest profile is
// explicitly assumed, which the JSON then reports as a warning.
func TestACPICommandRefusesNewerQEMU(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runCLI("acpi", "--qemu-version", "11.2.0", "--json", "--out", dir)
	if code == 0 || stdout != "" {
		t.Fatalf("exit %d, stdout %q: want a failure with no output", code, stdout)
	}
	for _, want := range []string{"11.2.0", "newest ACPI profile (11.1)", "--assume-newest-acpi-profile"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q does not name %q", stderr, want)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("--out directory created on failure (%v)", err)
	}
	var newest, assumed acpiResult
	for _, run := range []struct {
		args []string
		res  *acpiResult
	}{
		{[]string{"acpi", "--qemu-version", "11.1.0", "--json"}, &newest},
		{[]string{"acpi", "--qemu-version", "11.2.0", "--assume-newest-acpi-profile", "--json"}, &assumed},
	} {
		code, stdout, stderr := runCLI(run.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", run.args, code, stderr)
		}
		if err := json.Unmarshal([]byte(stdout), run.res); err != nil {
			t.Fatal(err)
		}
	}
	if len(newest.Warnings) != 0 {
		t.Errorf("11.1.0 warns: %q", newest.Warnings)
	}
	if assumed.TablesSHA384 != newest.TablesSHA384 || len(assumed.Warnings) != 1 || !strings.HasPrefix(assumed.Warnings[0], "acpi-profile: QEMU 11.2.0") {
		t.Errorf("assumed 11.2.0: tables %s (11.1.0: %s), warnings %q", assumed.TablesSHA384, newest.TablesSHA384, assumed.Warnings)
	}
}

// GPUs and NVSwitches on the root bus with ACPI PCI hotplug on are refused, naming hotplug and
// the way out; with --hotplug-off they build, warning about the unset pci-hole64 size.
func TestACPICommandGPUBoundaries(t *testing.T) {
	code, stdout, stderr := runCLI("acpi", "--qemu-version", "11.1.0", "--num-gpus", "8", "--num-nvswitches", "4", "--json")
	if code == 0 || stdout != "" || !strings.Contains(stderr, "hotplug") || !strings.Contains(stderr, "--hotplug-off") {
		t.Fatalf("hotplug-on GPUs: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI("acpi", "--qemu-version", "11.1.0", "--num-gpus", "8", "--num-nvswitches", "4", "--hotplug-off", "--json")
	if code != 0 {
		t.Fatalf("hotplug-off GPUs: exit %d: %s", code, stderr)
	}
	var res acpiResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || !strings.HasPrefix(res.Warnings[0], "pci-hole64:") || !strings.Contains(stderr, "pci-hole64") {
		t.Errorf("warnings %q, stderr %q", res.Warnings, stderr)
	}
	code, stdout, _ = runCLI("acpi", "--qemu-version", "11.1.0", "--num-gpus", "8", "--num-nvswitches", "4", "--hotplug-off", "--pci-hole64-size", "1T", "--json")
	if code != 0 || !strings.Contains(stdout, `"warnings": []`) {
		t.Errorf("explicit pci-hole64-size: exit %d, stdout %s", code, stdout)
	}
	// GPUs behind NUMA nodes' expanders: the firmware rebuilds those tables.
	for _, nodes := range []string{"5", "5,6,8"} {
		code, stdout, stderr = runCLI("acpi", "--hugepages", "--numa-nodes", nodes, "--cpu", "12", "--memory", "6G", "--num-gpus", "1", "--hotplug-off", "--json")
		if code == 0 || stdout != "" || !strings.Contains(stderr, "expander") || !strings.Contains(stderr, "not supported") {
			t.Errorf("--numa-nodes %s with a GPU: exit %d, stdout %q, stderr %q", nodes, code, stdout, stderr)
		}
	}
	// --hugepages counts memory in whole GiB, as dstack-vmm does.
	code, stdout, stderr = runCLI("acpi", "--hugepages", "--memory", "2560M", "--json")
	if code == 0 || stdout != "" || !strings.Contains(stderr, "whole GiB") {
		t.Errorf("--hugepages --memory 2560M: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
