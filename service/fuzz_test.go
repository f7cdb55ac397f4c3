package service

import (
	"encoding/json"
	"testing"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// FuzzParseVerifyRequest: any body is either refused as a bad request, answered with dstack's
// missing-input reason, or turned into a JSON object verify reads; never a panic.
func FuzzParseVerifyRequest(f *testing.F) {
	for _, s := range []string{`{}`, `{"quote":"00"}`, `{"quote":"0x00","event_log":"[]","vm_config":"{}"}`, `{"attestation":"00","quote":1}`,
		`{"quote":"00","event_log":[{"imr":0}],"vm_config":{"cpu_count":1},"debug":false}`, `[]`, `null`, `{"quote":"zz"}`} {
		f.Add([]byte(s))
	}
	if _, ok := testvectors.SharedDir(); ok {
		for _, p := range []string{liteGetQuote, liteAttestation, "real-attestations/dstack-fixture-history/tdx-lite-getquote.6d26e732.json"} {
			f.Add(testvectors.ReadShared(f, p))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		att, missing, err := parseVerifyRequest(body)
		switch {
		case err != nil:
			if _, ok := err.(*badRequest); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
		case missing != "":
			if att != nil {
				t.Fatal("both an attestation and a missing-input reason")
			}
		default:
			var m map[string]json.RawMessage
			if json.Unmarshal(att, &m) != nil || m == nil {
				t.Fatalf("not a JSON object: %q", att)
			}
		}
	})
}
