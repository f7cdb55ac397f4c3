package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/quote"
	"github.com/dstack-mr/dstack-mr/verify"
)

// exitNotAuthentic is quote verify's exit code for a quote that was read but is not authentic.
const exitNotAuthentic = 3

// maxQuoteFileBytes bounds a quote file (a hex quote in a GetQuote JSON is ~10 KiB; the event
// log beside it can be larger).
const maxQuoteFileBytes = 16 << 20

func quoteCommand(log *logrus.Logger) *cli.Command {
	return &cli.Command{
		Name:  "quote",
		Usage: "examine TDX quotes",
		Subcommands: []*cli.Command{{
			Name:      "verify",
			Usage:     "check a TDX quote's authenticity offline (signature, QE report, PCK chain to Intel's pinned root)",
			ArgsUsage: "QUOTE",
			Description: "QUOTE is any file carrying a quote, recognised by content: a binary or hex quote, a JSON array of\n" +
				"its byte values (near/mpc quote.json), a GetQuote response, dstack's {\"attestation\": hex} (MessagePack\n" +
				"or SCALE) or the encoded attestation itself, a NEAR MPC public_data.json, or a NEAR AI cloud report\n" +
				"(--cvm picks the CVM when it holds several).\n\n" +
				"Checks, each reported by name: the attestation key's signature over the header and TD report;\n" +
				"the PCK leaf's signature over the QE report; the QE report data binding the attestation key\n" +
				"(SHA-256(key ‖ QE auth data)); the PCK chain up to the Intel SGX Root CA pinned in this program\n" +
				"(never the root the quote carries), valid at --time; the TD attributes (debug fails; a TD\n" +
				"without SEPT_VE_DISABLE is warned about). Offline, no network.\n\n" +
				"With --collateral (dcap-qvl's QuoteCollateralV3 JSON, as dstack's verifier fetches it from\n" +
				"Intel's PCS): the collateral's issuer chains to the pinned root and its signatures over the\n" +
				"exact JSON, its validity at --time, both CRLs and the PCK certificate's revocation, FMSPC and\n" +
				"PCE ID, the TDX module identity, the platform TCB level and the QE identity; the statuses are\n" +
				"merged worst-of and the advisories united. Without it the TCB status is not evaluated\n" +
				"(reported as not checked). Expired collateral is an error naming the expiry.\n\n" +
				"Exit status: 0 authentic (and, with collateral, the TCB policy met), 3 read but not\n" +
				"authentic or not acceptable (including signature data that does not parse), 1 unreadable\n" +
				"input, expired collateral or usage error.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "time", Usage: "RFC 3339 time the certificates must be valid at (default: now)"},
				&cli.StringFlag{Name: "collateral", Usage: "dcap-qvl QuoteCollateralV3 JSON (or a NEAR MPC public_data.json, which carries it): evaluate the TCB status"},
				&cli.StringFlag{Name: "tcb-policy", Value: "default", Usage: "acceptable TCB statuses: default (all but Revoked and no matching level, as dcap-qvl and dstack's verifier), strict (UpToDate only), or a comma-separated list"},
				&cli.StringFlag{Name: "cvm", Usage: "the CVM whose quote to check, in a NEAR AI report holding several: gateway, model[N], model[N].compose-manager, a model name, or its number (from 1)"},
				&cli.BoolFlag{Name: "json", Usage: "print the verification as JSON"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return fmt.Errorf("quote verify takes one QUOTE file (got %d arguments)", c.NArg())
				}
				policy, err := parseTCBPolicyFlag(c.String("tcb-policy"))
				if err != nil {
					return err
				}
				var coll *quote.Collateral
				if p := c.String("collateral"); p != "" {
					b, err := readBounded(p, maxQuoteFileBytes)
					if err != nil {
						return fmt.Errorf("--collateral: %w", err)
					}
					if b, err = verify.CollateralOf(b); err != nil {
						return fmt.Errorf("--collateral %s: %w", p, err)
					}
					if coll, err = quote.ParseCollateral(b); err != nil {
						return fmt.Errorf("--collateral %s: %w", p, err)
					}
				}
				at, err := parseTimeFlag(c, "time")
				if err != nil {
					return err
				}
				path := c.Args().First()
				q, err := readQuoteFile(path, c.String("cvm"))
				if err != nil {
					return err
				}
				log.Debugf("quote %s: version %d, body type %d, %d bytes of signature data", path, q.Header.Version, q.BodyType, q.SignatureDataLen)
				v, verr := quote.Verify(q, quote.VerifyOptions{Time: at})
				if verr == nil && v.Authentic && coll != nil {
					if err := quote.VerifyCollateral(q, v, coll); err != nil {
						return fmt.Errorf("--collateral %s: %w", c.String("collateral"), err)
					}
				}
				res := quoteVerifyResult{Verification: v, ToolVersion: toolVersion(), TCBPolicy: policy.Name, SchemaVersion: jsonSchemaVersion}
				if verr != nil {
					res.Error = verr.Error()
				}
				ok := verr == nil && v.Authentic && len(v.Failed()) == 0 && (v.TCBStatus == nil || policy.Accepts(*v.TCBStatus))
				if coll != nil || !ok {
					res.Acceptable = &ok
				}
				if c.Bool("json") {
					if err := printJSON(c.App.Writer, res); err != nil {
						return err
					}
				} else {
					printQuoteVerification(c.App.Writer, path, q, v, verr)
				}
				for _, w := range v.Warnings {
					log.Warn(w)
				}
				if verr != nil || !v.Authentic {
					return &exitError{code: exitNotAuthentic, err: fmt.Errorf("%s: quote NOT authentic", path)}
				}
				if res.Acceptable != nil && !*res.Acceptable {
					status := "none"
					if v.TCBStatus != nil {
						status = *v.TCBStatus
					}
					return &exitError{code: exitNotAuthentic, err: fmt.Errorf("%s: quote authentic but NOT acceptable (TCB status %s, policy %s, failed checks %d)", path, status, policy.Name, len(v.Failed()))}
				}
				return nil
			},
		}},
	}
}

type quoteVerifyResult struct {
	SchemaVersion int `json:"schema_version"`
	*quote.Verification
	// Error is set when the signature data cannot be read (the quote is then not authentic).
	Error string `json:"error,omitempty"`
	// Acceptable: authentic, every check passed, and the TCB status meets the policy; null when
	// the quote is authentic but its TCB status was not evaluated (no collateral), so that no
	// script reads "acceptable" where only authenticity was checked.
	Acceptable  *bool  `json:"acceptable"`
	TCBPolicy   string `json:"tcb_policy"`
	ToolVersion string `json:"tool_version"`
}

// readQuoteFile reads a quote from any input that carries one (verify.ExtractQuote); cvm picks
// one CVM of a NEAR AI report.
func readQuoteFile(path, cvm string) (*quote.Quote, error) {
	data, err := readBounded(path, maxQuoteFileBytes)
	if err != nil {
		return nil, err
	}
	raw, _, err := verify.ExtractQuote(data, cvm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	q, err := quote.ParseAuto(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return q, nil
}

func parseTimeFlag(c *cli.Context, name string) (time.Time, error) {
	s := c.String(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-03-05T10:58:51Z", name, s)
	}
	return t, nil
}

func printQuoteVerification(w io.Writer, path string, q *quote.Quote, v *quote.Verification, verr error) {
	verdict := "AUTHENTIC"
	if verr != nil || !v.Authentic {
		verdict = "NOT AUTHENTIC"
	}
	fmt.Fprintf(w, "%s: %s (checked offline at %s)\n", path, verdict, v.VerificationTime.Format(time.RFC3339))
	if verr != nil {
		fmt.Fprintf(w, "  signature data: %v\n", verr)
	}
	// The registers an auditor copies from here, full length.
	rep := q.Report
	for _, f := range []struct {
		name string
		v    []byte
	}{{"MRTD", rep.MRTD}, {"RTMR0", rep.RTMR[0]}, {"RTMR1", rep.RTMR[1]}, {"RTMR2", rep.RTMR[2]}, {"RTMR3", rep.RTMR[3]},
		{"REPORTDATA", rep.ReportData}, {"MRCONFIGID", rep.MRConfigID}} {
		fmt.Fprintf(w, "  %-10s %x\n", f.name, f.v)
	}
	if v.FMSPC != "" {
		fmt.Fprintf(w, "  FMSPC %s, PCE ID %s, PCE SVN %d, QE SVN %d, CPU SVN %s, TEE_TCB_SVN %s\n", v.FMSPC, v.PCEID, v.PCESVN, v.QESVN, v.CPUSVN, v.TEETCBSVN)
	}
	if v.TCBStatus != nil {
		fmt.Fprintf(w, "  TCB status %s, advisories %v\n", *v.TCBStatus, v.AdvisoryIDs)
	} else {
		fmt.Fprintln(w, "  TCB status not evaluated (give --collateral): only authenticity was checked")
	}
	if v.PCK != nil {
		fmt.Fprintf(w, "  PCK certificate serial %s, valid %s .. %s\n", v.PCK.Serial, v.PCK.NotBefore.Format(time.DateOnly), v.PCK.NotAfter.Format(time.DateOnly))
	}
	printChecks(w, v.Checks)
	for _, n := range v.NotChecked {
		fmt.Fprintf(w, "  [ -- ] %s: %s\n", n.Name, n.Reason)
	}
}

// readBounded reads a whole file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: over %d bytes", path, limit)
	}
	return data, nil
}

// printChecks lists named checks, failures marked, one a line.
func printChecks(w io.Writer, checks []quote.Check) {
	for _, ch := range checks {
		mark := "ok  "
		if !ch.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  [%s] %s: %s\n", mark, ch.Name, ch.Detail)
	}
}
