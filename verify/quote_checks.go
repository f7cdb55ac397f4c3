package verify

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/dstack-mr/dstack-mr/quote"
)

func quoteInfo(q *quote.Quote) *QuoteInfo {
	return &QuoteInfo{
		Version: q.Header.Version, BodyType: q.BodyType, TEETCBSVN: Hex(q.Report.TEETCBSVN),
		TDAttributes: Hex(q.Report.TDAttributes), XFAM: Hex(q.Report.XFAM), MRConfigID: Hex(q.Report.MRConfigID),
		MROwner: Hex(q.Report.MROwner), MROwnerConfig: Hex(q.Report.MROwnerConfig), ReportData: Hex(q.Report.ReportData),
	}
}

// checkQuoteAuthentic runs quote.Verify: without an authentic quote nothing else in the
// report is the CVM's word.
func checkQuoteAuthentic(r *Report, q *quote.Quote, opts *Options) error {
	policy, err := quote.ParseTCBPolicy(opts.TCBPolicy)
	if err != nil {
		return err
	}
	var coll *quote.Collateral
	if opts.Collateral != nil {
		if coll, err = quote.ParseCollateral(opts.Collateral); err != nil {
			return err
		}
	}
	v, err := quote.Verify(q, quote.VerifyOptions{Time: opts.QuoteTime})
	r.QuoteVerification = v
	if err != nil {
		r.check("quote-authentic", false, "the quote's signature data cannot be read: %v", err)
		return nil
	}
	if !v.Authentic {
		r.check("quote-authentic", false, "%s", strings.Join(failedChecks(v), "; "))
		return nil
	}
	r.check("quote-authentic", true, "quote signature, QE report signature and data, PCK chain to the pinned Intel SGX Root CA (FMSPC %s, checked at %s)",
		v.FMSPC, v.VerificationTime.Format(time.RFC3339))
	for _, c := range v.Checks {
		if c.Name == "td-attributes" {
			r.check("td-attributes", c.OK, "%s", c.Detail)
		}
	}
	r.Warnings = append(r.Warnings, v.Warnings...)
	if coll == nil && opts.CollateralFor != nil {
		if b := opts.CollateralFor(v.FMSPC); b != nil {
			if coll, err = quote.ParseCollateral(b); err != nil {
				return fmt.Errorf("collateral for FMSPC %s: %w", v.FMSPC, err)
			}
		}
	}
	if coll != nil {
		if err := quote.VerifyCollateral(q, v, coll); err != nil {
			return fmt.Errorf("collateral: %w", err)
		}
		bad := failedChecks(v)
		status := "not evaluated"
		if v.TCBStatus != nil {
			status = *v.TCBStatus
		}
		ok := len(bad) == 0 && v.TCBStatus != nil && policy.Accepts(*v.TCBStatus)
		detail := fmt.Sprintf("TCB status %s under policy %s, advisories %v", status, policy.Name, v.AdvisoryIDs)
		if len(bad) > 0 {
			detail += "; " + strings.Join(bad, "; ")
		}
		r.check("tcb-status", ok, "%s", detail)
	}
	for _, n := range v.NotChecked {
		r.skip(n.Name, false, "%s", n.Reason)
	}
	return nil
}

func checkReportData(r *Report, q *quote.Quote, rd []byte) {
	if rd == nil {
		return
	}
	// GetQuote's report_data is the caller's data, zero padded to 64 bytes in the quote.
	want := make([]byte, 64)
	copy(want, rd)
	ok := len(rd) <= 64 && bytes.Equal(want, q.Report.ReportData)
	r.check("report-data", ok, "attestation report_data %x, quote REPORTDATA %x", rd, []byte(q.Report.ReportData))
}

// failedChecks names each failed check of a quote verification with its detail.
func failedChecks(v *quote.Verification) []string {
	var bad []string
	for _, c := range v.Failed() {
		bad = append(bad, c.Name+": "+c.Detail)
	}
	return bad
}
