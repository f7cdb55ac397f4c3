package acpi

// The oracle: etc/acpi/tables, etc/acpi/rsdp and etc/table-loader as a real (dstack) QEMU
// produced them for 1233 machine shapes (../testdata/acpi-oracle; provenance in testdata/README.md).

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

const oracleDir = "../testdata/acpi-oracle"

// oracleConfig is the shape of an index line (shared with the CLI tests).
type oracleConfig = testvectors.ACPIMachine

type oracleCase struct {
	Config     oracleConfig      `json:"config"`
	CompatEnv  string            `json:"compat_env"`
	SHA384     map[string]string `json:"sha384"`
	TablesList [][3]any          `json:"tables_list"`
	Error      string            `json:"error"`
}

func (o *oracleCase) name() string {
	c := o.Config
	return fmt.Sprintf("%d-%s-%s-cpu%d", c.ID, c.Name, c.QEMUVersion, c.CPU)
}

func (o *oracleCase) machine(t testing.TB) MachineConfig {
	c := o.Config
	v, err := ParseVersion(c.QEMUVersion)
	if err != nil {
		t.Fatal(err)
	}
	if o.CompatEnv != c.QEMUVersion {
		t.Fatalf("compat_env %s differs from qemu_version %s", o.CompatEnv, c.QEMUVersion)
	}
	m := MachineConfig{
		CPUs:             c.CPU,
		MemoryBytes:      c.MemoryMB * mib,
		QEMUVersion:      v,
		PIC:              c.PIC,
		SMM:              c.SMM,
		NumNICs:          c.NumNICs,
		NumVerityVolumes: c.NumVerityVolumes,
		NumGPUs:          c.NumGPUs,
		NumNVSwitches:    c.NumNVSwitches,
		HotplugOff:       c.HotplugOff,
		RootVerity:       c.RootVerity,
		HostShareMode:    HostShareMode(c.HostShareMode),
		Hugepages:        c.Hugepages,
		HugepagesBackend: HugepagesBackend(c.HugepagesBackend),
		// Every oracle command line is upstream dstack-mr's, which gives a hugepages VM an
		// expander only when GPUs are attached (see hugepagesWithoutExpander).
		hugepagesWithoutExpander: c.Hugepages && c.NumGPUs == 0,
	}
	if c.PCIHole64Size != nil {
		m.PCIHole64Size, m.PCIHole64SizeSet = *c.PCIHole64Size, true
	}
	return m
}

func (o *oracleCase) tableList() []TableEntry {
	var out []TableEntry
	for _, e := range o.TablesList {
		sig, _ := e[0].(string)
		off, _ := e[1].(float64)
		n, _ := e[2].(float64)
		out = append(out, TableEntry{Signature: sig, Offset: int(off), Length: int(n)})
	}
	return out
}

func loadOracle(t testing.TB) []oracleCase {
	t.Helper()
	cases, err := testvectors.ReadJSONLGzip[oracleCase](filepath.Join(oracleDir, "index.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 1233 {
		t.Fatalf("oracle index has %d cases, want 1233", len(cases))
	}
	return cases
}

// blobCache shares decompressed blobs between cases: many shapes have identical loaders.
type blobCache map[string][]byte

func (bc blobCache) get(t testing.TB, sum string) []byte {
	return bc.getFrom(t, oracleDir, sum)
}

// getFrom loads dir/blobs/<sum>.bin.gz and checks that it hashes to its name.
func (bc blobCache) getFrom(t testing.TB, dir, sum string) []byte {
	t.Helper()
	if b, ok := bc[sum]; ok {
		return b
	}
	b, err := testvectors.ReadGzip(filepath.Join(dir, "blobs", sum+".bin.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if got := sha512.Sum384(b); hex.EncodeToString(got[:]) != sum {
		t.Fatalf("blob %s does not hash to its name", sum)
	}
	bc[sum] = b
	return b
}

// want returns the oracle's tables, rsdp and loader; QEMU's own loader where the index keeps
// one apart (qemu_loader / qemu_rsdp: what the firmware really executes).
func (o *oracleCase) want(t testing.TB, bc blobCache) (tables, rsdp, loader []byte) {
	pick := func(own, synth string) []byte {
		if s, ok := o.SHA384[own]; ok {
			return bc.get(t, s)
		}
		return bc.get(t, o.SHA384[synth])
	}
	return bc.get(t, o.SHA384["tables"]), pick("qemu_rsdp", "rsdp"), pick("qemu_loader", "loader")
}

// oracleDSDT slices the DSDT QEMU built out of the oracle's tables blob.
func oracleDSDT(t testing.TB, tables []byte, list []TableEntry) []byte {
	for _, e := range list {
		if e.Signature == "DSDT" {
			if e.Offset < 0 || e.Length < 0 || e.Offset+e.Length > len(tables) {
				t.Fatalf("oracle DSDT %+v outside the tables blob", e)
			}
			return bytes.Clone(tables[e.Offset : e.Offset+e.Length])
		}
	}
	t.Fatal("oracle has no DSDT")
	return nil
}

// describeTablesDiff names the table and the offset inside it of the first differing byte.
func describeTablesDiff(got, want []byte, list []TableEntry) string {
	if len(got) != len(want) {
		return fmt.Sprintf("tables blob is %d bytes, want %d", len(got), len(want))
	}
	i := firstDiff(got, want)
	for _, e := range list {
		if i >= e.Offset && i < e.Offset+e.Length {
			return fmt.Sprintf("first difference in %s at table offset %d (blob offset %d): got %#02x want %#02x",
				e.Signature, i-e.Offset, i, got[i], want[i])
		}
	}
	return fmt.Sprintf("first difference at blob offset %d (padding): got %#02x want %#02x", i, got[i], want[i])
}

func describeLoaderDiff(got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("loader is %d bytes, want %d", len(got), len(want))
	}
	i := firstDiff(got, want)
	return fmt.Sprintf("first difference in loader command %d at byte %d", i/loaderEntrySize, i%loaderEntrySize)
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func compareBlobs(t *testing.T, got *Blobs, wantTables, wantRSDP, wantLoader []byte, wantList []TableEntry) {
	t.Helper()
	if fmt.Sprint(got.List) != fmt.Sprint(wantList) {
		t.Errorf("table list\n got %v\nwant %v", got.List, wantList)
	}
	if !bytes.Equal(got.Tables, wantTables) {
		t.Errorf("tables: %s", describeTablesDiff(got.Tables, wantTables, wantList))
	}
	if !bytes.Equal(got.RSDP, wantRSDP) {
		t.Errorf("rsdp: got %x want %x", got.RSDP, wantRSDP)
	}
	if !bytes.Equal(got.Loader, wantLoader) {
		t.Errorf("loader: %s", describeLoaderDiff(got.Loader, wantLoader))
	}
}

// refusalField names the MachineConfig field behind each QEMU refusal in the oracle.
func refusalField(qemuError string) string {
	switch {
	case strings.Contains(qemuError, "iommufd0"):
		return "num_nvswitches"
	}
	return "an unknown refusal: " + qemuError
}

// builtWithoutNUMA: the oracle QEMU refused host-node binding only because it was built
// without libnuma; the shape itself is valid and builds its plain-backend twin's tables.
func builtWithoutNUMA(qemuError string) bool {
	return strings.Contains(qemuError, "NUMA node binding are not supported by this QEMU")
}

// plainTwin is the oracle case with the same shape and the plain hugepages backend.
func plainTwin(t *testing.T, cases []oracleCase, o *oracleCase) *oracleCase {
	t.Helper()
	want := o.Config
	want.ID, want.HugepagesBackend = 0, string(HugepagesPlain)
	for i := range cases {
		c := cases[i].Config
		c.ID = 0
		if reflect.DeepEqual(c, want) && cases[i].Error == "" {
			return &cases[i]
		}
	}
	t.Fatalf("no plain-backend twin of %s", o.name())
	return nil
}

// TestOracleAssemble checks every oracle shape byte for byte, with the oracle's own DSDT
// injected: everything this package builds besides the DSDT, plus the rejection of shapes QEMU
// refused.
func TestOracleAssemble(t *testing.T) {
	cases := loadOracle(t)
	bc := blobCache{}
	var built, rejected, twins int
	for i := range cases {
		o := &cases[i]
		t.Run(o.name(), func(t *testing.T) {
			cfg := o.machine(t)
			if builtWithoutNUMA(o.Error) {
				twin := plainTwin(t, cases, o)
				got, err := buildDump(cfg)
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				tables, rsdp, loader := twin.want(t, bc)
				compareBlobs(t, got, tables, rsdp, loader, twin.tableList())
				twins++
				return
			}
			if o.Error != "" {
				err := cfg.Validate()
				if err == nil {
					t.Fatalf("QEMU refused this shape (%s) but Validate accepts it", o.Error)
				}
				if field := refusalField(o.Error); !strings.Contains(err.Error(), field) {
					t.Fatalf("QEMU refused this shape (%s); Validate rejects it for another reason: %v", o.Error, err)
				}
				if _, err := Build(cfg); err == nil {
					t.Fatalf("QEMU refused this shape (%s) but Build accepts it", o.Error)
				}
				rejected++
				return
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			tables, rsdp, loader := o.want(t, bc)
			list := o.tableList()
			got, err := assemble(&cfg, oracleDSDT(t, tables, list))
			if err != nil {
				t.Fatalf("assemble: %v", err)
			}
			compareBlobs(t, got, tables, rsdp, loader, list)
			if !t.Failed() {
				built++
			}
		})
	}
	t.Logf("%d shapes matched byte for byte, %d refused shapes rejected, %d host-node-bound shapes built as their plain twins", built, rejected, twins)
}

// TestOracleBuild runs the real Build (with this package's own DSDT builder) on every oracle
// shape. Shapes Build reports as not supported are skipped and counted.
func TestOracleBuild(t *testing.T) {
	cases := loadOracle(t)
	bc := blobCache{}
	var matched, notSupported int
	var firstSkip error
	for i := range cases {
		o := &cases[i]
		if o.Error != "" {
			continue // TestOracleAssemble covers rejection
		}
		t.Run(o.name(), func(t *testing.T) {
			got, err := buildDump(o.machine(t))
			if errors.Is(err, ErrNotSupported) {
				notSupported++
				if firstSkip == nil {
					firstSkip = err
				}
				return
			}
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			tables, rsdp, loader := o.want(t, bc)
			compareBlobs(t, got, tables, rsdp, loader, o.tableList())
			if !t.Failed() {
				matched++
			}
		})
	}
	t.Logf("Build: %d shapes matched byte for byte, %d not supported yet (first: %v)", matched, notSupported, firstSkip)
	if matched == 0 && notSupported > 0 {
		t.Skipf("Build does not support any oracle shape yet (%d skipped): %v", notSupported, firstSkip)
	}
}
