package quote

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// TestCollateralVerdicts reproduces the verdicts two independent verifiers (Google's
// go-tdx-guest and dcap-qvl) give on dcap-qvl's collateral files (../shared/dcap/README.md).
func TestCollateralVerdicts(t *testing.T) {
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name, quote, collateral string
		at                      time.Time
		status                  string // "" when an error is wanted
		failedCheck             string
		err                     error
		tcbDate                 string
	}{
		{"tdx sample UpToDate", "dcap/dcap-qvl_tdx_quote.bin", "dcap/dcap-qvl_tdx_quote_collateral.json", ts("2025-07-04T10:16:03Z"), "UpToDate", "", nil, "2024-03-13"},
		{"near UpToDate", "dcap/dcap-qvl_near_quote.bin", "dcap/dcap-qvl_near_quote_collateral.json", ts("2025-09-17T07:41:59Z"), "UpToDate", "", nil, "2024-03-13"},
		{"v5 no matching TCB level", "dcap/dcap-qvl_tdx_quote_outdated.bin", "dcap/dcap-qvl_tdx_quote_outdated_collateral.json", ts("2026-03-05T10:58:51Z"), NoMatchingTCBLevel, "platform-tcb-level", nil, ""},
		{"dstack quote, same FMSPC collateral", testvectors.DstackVerifier("quote-report.json"), "dcap/dcap-qvl_tdx_quote_outdated_collateral.json", ts("2026-03-05T10:58:51Z"), "UpToDate", "", nil, "2024-11-13"},
		{"expired collateral", "dcap/dcap-qvl_tdx_quote.bin", "dcap/dcap-qvl_tdx_quote_collateral.json", ts("2026-11-30T00:00:00Z"), "", "", ErrCollateralExpired, ""},
		{"collateral of another FMSPC", "dcap/dcap-qvl_tdx_quote.bin", "dcap/dcap-qvl_tdx_quote_outdated_collateral.json", ts("2026-03-05T10:58:51Z"), "", "fmspc", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := DecodeHexOrBinary(quoteBytes(t, tc.quote))
			q, err := Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			v, err := Verify(q, VerifyOptions{Time: tc.at})
			if err != nil || !v.Authentic {
				t.Fatalf("not authentic at %s: %v %+v", tc.at, err, v.Failed())
			}
			c, err := ParseCollateral(testvectors.ReadShared(t, tc.collateral))
			if err != nil {
				t.Fatal(err)
			}
			err = VerifyCollateral(q, v, c)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), "nextUpdate") && !strings.Contains(err.Error(), "valid") {
					t.Fatalf("error %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var failed []string
			for _, c := range v.Failed() {
				failed = append(failed, c.Name)
			}
			if tc.failedCheck != "" {
				if !strings.Contains(strings.Join(failed, ","), tc.failedCheck) {
					t.Fatalf("failed checks %v, want %s", failed, tc.failedCheck)
				}
			} else if len(failed) != 0 {
				t.Fatalf("failed checks %+v", v.Failed())
			}
			if tc.status != "" && (v.TCBStatus == nil || *v.TCBStatus != tc.status) {
				t.Fatalf("TCB status %v, want %s (checks %+v)", v.TCBStatus, tc.status, v.Checks)
			}
			if tc.tcbDate != "" {
				found := false
				for _, c := range v.Checks {
					found = found || (c.Name == "platform-tcb-level" && strings.Contains(c.Detail, tc.tcbDate))
				}
				if !found {
					t.Errorf("platform TCB level is not the one of %s: %+v", tc.tcbDate, v.Checks)
				}
			}
			for _, n := range v.NotChecked {
				if n.Name == "tcb-status" || n.Name == "revocation" {
					t.Errorf("%s still listed as not checked", n.Name)
				}
			}
		})
	}
}

// quoteBytes reads a quote from the shared data: a binary file or a GetQuote JSON's "quote".
func quoteBytes(t *testing.T, rel string) []byte {
	t.Helper()
	b := testvectors.ReadShared(t, rel)
	if strings.HasSuffix(rel, ".json") {
		i := strings.Index(string(b), `"quote": "`)
		if i < 0 {
			i = strings.Index(string(b), `"quote":"`)
		}
		rest := string(b[i:])
		rest = rest[strings.Index(rest, `"`+"")+len(`"quote"`):]
		start := strings.Index(rest, `"`) + 1
		end := strings.Index(rest[start:], `"`)
		return []byte(rest[start : start+end])
	}
	return b
}

func TestMergeTCBStatus(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"UpToDate", "UpToDate", "UpToDate"},
		{"UpToDate", "SWHardeningNeeded", "SWHardeningNeeded"},
		{"SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"},
		{"OutOfDate", "ConfigurationNeeded", "OutOfDateConfigurationNeeded"},
		{"OutOfDate", "SWHardeningNeeded", "OutOfDate"},
		{"ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"},
		{"Revoked", "UpToDate", "Revoked"},
		{"", "OutOfDate", "OutOfDate"},
	} {
		if got := mergeTCBStatus(tc.a, tc.b); got != tc.want {
			t.Errorf("merge(%s, %s) = %s, want %s", tc.a, tc.b, got, tc.want)
		}
		if got := mergeTCBStatus(tc.b, tc.a); got != tc.want {
			t.Errorf("merge(%s, %s) = %s, want %s", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestTCBPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy, status string
		ok             bool
	}{
		{"default", "OutOfDate", true}, {"default", "Revoked", false}, {"default", NoMatchingTCBLevel, false},
		{"strict", "UpToDate", true}, {"strict", "SWHardeningNeeded", false},
		{"UpToDate,SWHardeningNeeded", "SWHardeningNeeded", true}, {"UpToDate,SWHardeningNeeded", "OutOfDate", false},
	} {
		p, err := ParseTCBPolicy(tc.policy)
		if err != nil {
			t.Fatal(err)
		}
		if p.Accepts(tc.status) != tc.ok {
			t.Errorf("%s accepts %s: %v", tc.policy, tc.status, !tc.ok)
		}
	}
	if _, err := ParseTCBPolicy("UpToDate,Fine"); err == nil || !strings.Contains(err.Error(), `"Fine"`) {
		t.Errorf("unknown status: %v", err)
	}
}

// FuzzCollateral: any collateral document, judged against a real quote, yields an error or
// named checks, never a panic, and never a TCB status without its checks passing.
func FuzzCollateral(f *testing.F) {
	f.Add([]byte(`{"tcb_info": "{}", "pck_crl": "00"}`))
	var quoteRaw []byte
	if dir, ok := testvectors.SharedDir(); ok {
		if b, err := os.ReadFile(filepath.Join(dir, "dcap", "dcap-qvl_tdx_quote_outdated_collateral.json")); err == nil {
			f.Add(b)
		}
		quoteRaw, _ = os.ReadFile(filepath.Join(dir, "dcap", "dcap-qvl_tdx_quote_outdated.bin"))
	}
	at := time.Date(2026, 3, 5, 10, 58, 51, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCollateral(data)
		if err != nil || quoteRaw == nil {
			return
		}
		q, err := Parse(quoteRaw)
		if err != nil {
			t.Fatal(err)
		}
		v, err := Verify(q, VerifyOptions{Time: at})
		if err != nil || !v.Authentic {
			t.Fatalf("the real quote is not authentic: %v", err)
		}
		if err := VerifyCollateral(q, v, c); err != nil {
			return
		}
		if v.TCBStatus != nil && *v.TCBStatus == "UpToDate" && len(v.Failed()) != 0 {
			t.Fatalf("UpToDate with failed checks %+v", v.Failed())
		}
	})
}
