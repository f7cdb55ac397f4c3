package service

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
	"github.com/dstack-mr/dstack-mr/verify"
)

// TestCollateralDir: the quote's TCB status is evaluated with the collateral of its FMSPC, as
// `verify --collateral` evaluates it (dstack's quote-report with dcap-qvl's collateral of the
// same FMSPC is UpToDate at 2026-03-05, per two independent verifiers); collateral of other
// FMSPCs leaves it "not evaluated"; expired collateral is an error naming it.
func TestCollateralDir(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"dcap-qvl_tdx_quote_outdated_collateral.json", "dcap-qvl_near_quote_collateral.json"} {
		writeFile(t, filepath.Join(dir, f), testvectors.ReadShared(t, "dcap/"+f))
	}
	cs, err := OpenCollateralDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cs.FMSPCs(), ","); got != "20A06F000000,90C06F000000" {
		t.Fatalf("FMSPCs %s", got)
	}
	body := testvectors.ReadShared(t, "real-attestations/dstack-verifier/dstack-verifier-quote-report.json")
	inTime := time.Date(2026, 3, 5, 10, 58, 51, 0, time.UTC)

	_, ts := newTestServer(t, Config{Collateral: cs, Now: func() time.Time { return inTime }})
	r := verifyAt(t, ts.Client(), ts.URL, body)
	if !r.Details.QuoteVerified || deref(r.Details.TCBStatus) != "UpToDate" {
		t.Fatalf("quote_verified %v tcb_status %s", r.Details.QuoteVerified, deref(r.Details.TCBStatus))
	}
	want, err := verify.Verify(verify.Options{Attestation: sameInputs(t, body), QuoteTime: inTime,
		Collateral: testvectors.ReadShared(t, "dcap/dcap-qvl_tdx_quote_outdated_collateral.json")})
	if err != nil {
		t.Fatal(err)
	}
	if r.IsValid != want.Verified || deref(want.QuoteVerification.TCBStatus) != "UpToDate" {
		t.Fatalf("is_valid %v, verify --collateral says %v (%s)", r.IsValid, want.Verified, deref(want.QuoteVerification.TCBStatus))
	}

	other, err := OpenCollateralDir(filepath.Join(testvectors.Shared(t, "dcap"), "..", "dcap-none-such"))
	if err == nil || other != nil {
		t.Fatal("a missing collateral directory opened")
	}
	dir2 := t.TempDir()
	writeFile(t, filepath.Join(dir2, "near.json"), testvectors.ReadShared(t, "dcap/dcap-qvl_near_quote_collateral.json"))
	cs2, err := OpenCollateralDir(dir2)
	if err != nil {
		t.Fatal(err)
	}
	_, ts = newTestServer(t, Config{Collateral: cs2, Now: func() time.Time { return inTime }})
	if r := verifyAt(t, ts.Client(), ts.URL, body); deref(r.Details.TCBStatus) != tcbNotEvaluated {
		t.Fatalf("another FMSPC's collateral: tcb_status %s", deref(r.Details.TCBStatus))
	}

	_, ts = newTestServer(t, Config{Collateral: cs}) // capture time: the collateral has expired
	r = verifyAt(t, ts.Client(), ts.URL, body)
	if r.IsValid || !strings.HasPrefix(deref(r.Reason), reasonInternal) || !strings.Contains(deref(r.Reason), "collateral") {
		t.Fatalf("expired collateral: valid=%v reason %s", r.IsValid, deref(r.Reason))
	}

	dup := t.TempDir()
	for _, n := range []string{"a.json", "b.json"} {
		writeFile(t, filepath.Join(dup, n), testvectors.ReadShared(t, "dcap/dcap-qvl_near_quote_collateral.json"))
	}
	if _, err := OpenCollateralDir(dup); err == nil || !strings.Contains(err.Error(), "both for FMSPC") {
		t.Fatalf("two files for one FMSPC: %v", err)
	}
	bad := t.TempDir()
	writeFile(t, filepath.Join(bad, "x.json"), []byte(`{"tcb_info": "{}"}`))
	if _, err := OpenCollateralDir(bad); err == nil || !strings.Contains(err.Error(), "x.json") {
		t.Fatalf("not collateral: %v", err)
	}
}
