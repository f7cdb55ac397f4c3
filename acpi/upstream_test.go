package acpi

// Real upstream QEMU output for the 10.x and 11.0 profiles: etc/acpi/tables as QEMU 10.2.2
// and 11.0.3, built from the distributions' release sources with a third party's dump-only
// patch, produced them for the TDX-launchable shapes of the 9.2.1 oracle
// (../testdata/acpi-upstream, provenance in ../testdata/README.md).

import (
	"bufio"
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
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
	raw, err := testvectors.ReadGzip(filepath.Join(upstreamDir, "index.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	var out []upstreamDump
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var d upstreamDump
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("index line %d: %v", len(out)+1, err)
		}
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
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
			got, err := Build(cfg)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			sum := sha512.Sum384(got.Tables)
			if hex.EncodeToString(sum[:]) == d.TablesSHA384 {
				perVersion[d.QEMUVersion]++
				return
			}
			want := upstreamBlob(t, blobs, d.TablesSHA384)
			t.Errorf("tables differ from QEMU %s: %s", d.QEMUVersion, describeTablesDiff(got.Tables, want, got.List))
		})
	}
	if len(perVersion) == 0 {
		t.Fatal("no dump matched")
	}
	t.Logf("matched byte for byte: %v", perVersion)
}

func upstreamBlob(t *testing.T, bc blobCache, sum string) []byte {
	t.Helper()
	if b, ok := bc[sum]; ok {
		return b
	}
	b, err := testvectors.ReadGzip(filepath.Join(upstreamDir, "blobs", sum+".bin.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if got := sha512.Sum384(b); hex.EncodeToString(got[:]) != sum {
		t.Fatalf("blob %s does not hash to its name", sum)
	}
	bc[sum] = b
	return b
}
