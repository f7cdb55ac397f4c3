package quote

import (
	"bytes"
	"testing"
	"time"

	tdxverify "github.com/google/go-tdx-guest/verify"
)

// TestDifferentialAgainstGoTDXGuest holds Verify's authenticity verdict against Google's
// independent implementation (go-tdx-guest, offline: no collateral, no revocation) on every real
// quote and on one-byte tamperings of each part: both must agree. go-tdx-guest is a test-only
// dependency; nothing of it is in the program.
func TestDifferentialAgainstGoTDXGuest(t *testing.T) {
	quotes := realQuotes(t)
	ts := &tdxverify.TimeSet{PckCertChain: at, TcbInfo: at, QeIdentity: at, PckCrl: at}
	agree, cases := 0, 0
	judge := func(name string, raw []byte) {
		cases++
		ours := false
		if q, err := Parse(raw); err == nil {
			if v, err := Verify(q, VerifyOptions{Time: at}); err == nil {
				ours = v.Authentic
			}
		}
		// go-tdx-guest reads the quote with its zero padding, as quote generation returns it.
		theirs := tdxverify.RawTdxQuote(raw, &tdxverify.Options{Now: ts}) == nil
		if ours != theirs {
			t.Errorf("%s: dstack-mr authentic=%v, go-tdx-guest authentic=%v", name, ours, theirs)
			return
		}
		agree++
	}
	for name, raw := range quotes {
		judge(name, raw)
		q, err := Parse(raw)
		if err != nil {
			continue
		}
		// Flip one byte in the TD report, the signature, the attestation key and the QE report.
		base := len(q.Signed) + 4
		for _, off := range []int{len(q.Signed) - 10, base + 5, base + 64 + 5, base + 134 + 50} {
			bad := bytes.Clone(raw)
			bad[off] ^= 0x40
			judge(name+"/tampered", bad)
		}
	}
	t.Logf("%d of %d verdicts agree with go-tdx-guest at %s", agree, cases, at.Format(time.RFC3339))
}
