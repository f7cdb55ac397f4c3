package service

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/schemacheck"
	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

func loadSchema(t *testing.T, name string) *schemacheck.Schema {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "schemas", name))
	if err != nil {
		t.Fatal(err)
	}
	s, err := schemacheck.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestResponsesMatchSchemas holds every /verify answer to a real attestation to
// schemas/serve-verify.schema.json, and its details.report to verify's own schema.
func TestResponsesMatchSchemas(t *testing.T) {
	serve, rep := loadSchema(t, "serve-verify.schema.json"), loadSchema(t, "verify.schema.json")
	_, base, c := liteServer(t, Config{ToolVersion: "test", SchemaVersion: 2})
	bodies := [][]byte{[]byte(`{"quote": "00"}`), []byte(`{"quote": "00", "event_log": "[]"}`)}
	for _, f := range attestationFiles(t) {
		bodies = append(bodies, testvectors.ReadShared(t, "real-attestations/"+f))
	}
	for _, body := range bodies {
		code, b, _ := post(t, c, base+"/verify", body)
		if code != 200 {
			t.Fatalf("HTTP %d: %s", code, truncate(string(b), 200))
		}
		for _, e := range serve.Validate(b) {
			t.Errorf("%s: %s", truncate(string(body), 60), e)
		}
		var r struct {
			Details struct {
				Report json.RawMessage `json:"report"`
			} `json:"details"`
		}
		mustJSON(t, b, &r)
		if len(r.Details.Report) > 0 {
			for _, e := range rep.Validate(r.Details.Report) {
				t.Errorf("%s: details.report: %s", truncate(string(body), 60), e)
			}
		}
	}
}
