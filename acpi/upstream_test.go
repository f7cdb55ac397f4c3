package acpi

// Real upstream QEMU output for the 10.x and 11.0 profiles: etc/acpi/tables as QEMU 10.2.2
// and 11.0.3, built from the distributions' release sources with a third party's dump-only
// patch, produced them for the TDX-launchable shapes of the 9.2.1 oracle
// (../testdata/acpi-upstream, provenance in ../testdata/README.md).

import (
	"crypto/sha512"
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

const upstreamDir = "../testdata/acpi-upstream"

type upstreamDump struct {
	QEMUVersion  string       `json:"qemu_version"`
	Config       oracleConfig `json:"config"`
	TablesSHA384 string       `json:"tables_sha384"`
}

func loadUpstreamDumps(t *testing.T) []upstreamDump {
	t.Helper()
	dumps, err := testvectors.ReadJSONLGzip[upstreamDump](filepath.Join(upstreamDir, "index.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	return dumps
}

// TestUpstreamQEMUDumps builds every dumped shape with the dump's QEMU version and compares the
// whole tables blob byte for byte, naming the first differing table and offset on failure.
func TestUpstreamQEMUDumps(t *testing.T) {
	dumps := loadUpstreamDumps(t)
	perVersion := map[string]int{}
	blobs := blobCache{}
	for _, d := range dumps {
		o := oracleCase{Config: d.Config, CompatEnv: d.Config.QEMUVersion}
		t.Run(d.QEMUVersion+"/"+o.name(), func(t *testing.T) {
			cfg := o.machine(t)
			v, err := ParseVersion(d.QEMUVersion)
			if err != nil {
				t.Fatal(err)
			}
			cfg.QEMUVersion = v
			got, err := buildDump(cfg)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			sum := sha512.Sum384(got.Tables)
			if hex.EncodeToString(sum[:]) == d.TablesSHA384 {
				perVersion[d.QEMUVersion]++
				return
			}
			want := blobs.getFrom(t, upstreamDir, d.TablesSHA384)
			t.Errorf("tables differ from QEMU %s: %s", d.QEMUVersion, describeTablesDiff(got.Tables, want, got.List))
		})
	}
	if len(perVersion) == 0 {
		t.Fatal("no dump matched")
	}
	t.Logf("matched byte for byte: %v", perVersion)
}
