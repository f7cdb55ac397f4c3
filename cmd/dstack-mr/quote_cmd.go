package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/quote"
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
			Description: "QUOTE is a binary or hex quote file, or a GetQuote JSON response ({\"quote\": hex, ...}).\n\n" +
				"Checks, each reported by name: the attestation key's signature over the header and TD report;\n" +
				"the PCK leaf's signature over the QE report; the QE report data binding the attestation key\n" +
				"(SHA-256(key ‖ QE auth data)); the PCK chain up to the Intel SGX Root CA pinned in this program\n" +
				"(never the root the quote carries), valid at --time; the TD attributes (debug fails; a TD\n" +
				"without SEPT_VE_DISABLE is warned about). Offline, no network.\n\n" +
				"Not checked yet: the TCB status and revocation, which need Intel's collateral (--collateral is\n" +
				"not supported yet); the report lists them as not checked.\n\n" +
				"Exit status: 0 authentic, 3 read but not authentic (including signature data that does not\n" +
				"parse), 1 unreadable input or usage error.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "time", Usage: "RFC 3339 time the certificates must be valid at (default: now)"},
				&cli.StringFlag{Name: "collateral", Usage: "dcap-qvl QuoteCollateralV3 JSON for the TCB status (not supported yet)"},
				&cli.StringFlag{Name: "tcb-policy", Usage: "which TCB statuses are acceptable (not supported yet: needs --collateral)"},
				&cli.BoolFlag{Name: "json", Usage: "print the verification as JSON"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return fmt.Errorf("quote verify takes one QUOTE file (got %d arguments)", c.NArg())
				}
				for _, f := range []string{"collateral", "tcb-policy"} {
					if c.IsSet(f) {
						return fmt.Errorf("--%s: TCB evaluation from Intel's collateral is not supported yet; without it the quote's authenticity is checked and the TCB status is reported as not evaluated", f)
					}
				}
				at, err := parseTimeFlag(c, "time")
				if err != nil {
					return err
				}
				path := c.Args().First()
				q, err := readQuoteFile(path)
				if err != nil {
					return err
				}
				log.Debugf("quote %s: version %d, body type %d, %d bytes of signature data", path, q.Header.Version, q.BodyType, q.SignatureDataLen)
				v, verr := quote.Verify(q, quote.VerifyOptions{Time: at})
				res := quoteVerifyResult{Verification: v, ToolVersion: toolVersion()}
				if verr != nil {
					res.Error = verr.Error()
				}
				if c.Bool("json") {
					if err := printJSON(c.App.Writer, res); err != nil {
						return err
					}
				} else {
					printQuoteVerification(c.App.Writer, path, v, verr)
				}
				for _, w := range v.Warnings {
					log.Warn(w)
				}
				if verr != nil || !v.Authentic {
					return &exitError{code: exitNotAuthentic, err: fmt.Errorf("%s: quote NOT authentic", path)}
				}
				return nil
			},
		}},
	}
}

type quoteVerifyResult struct {
	*quote.Verification
	// Error is set when the signature data cannot be read (the quote is then not authentic).
	Error       string `json:"error,omitempty"`
	ToolVersion string `json:"tool_version"`
}

// readQuoteFile reads a quote from a binary or hex file, or from a GetQuote JSON response.
func readQuoteFile(path string) (*quote.Quote, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxQuoteFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxQuoteFileBytes {
		return nil, fmt.Errorf("%s: over %d bytes, not a quote", path, maxQuoteFileBytes)
	}
	if t := strings.TrimSpace(string(data)); strings.HasPrefix(t, "{") {
		var g struct {
			Quote *string `json:"quote"`
		}
		if err := json.Unmarshal(data, &g); err != nil {
			return nil, fmt.Errorf("%s: JSON without a readable \"quote\": %w", path, err)
		}
		if g.Quote == nil {
			return nil, fmt.Errorf("%s: JSON has no \"quote\" field", path)
		}
		data = []byte(*g.Quote)
	}
	q, err := quote.ParseAuto(data)
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

func printQuoteVerification(w io.Writer, path string, v *quote.Verification, verr error) {
	verdict := "AUTHENTIC"
	if verr != nil || !v.Authentic {
		verdict = "NOT AUTHENTIC"
	}
	fmt.Fprintf(w, "%s: %s (checked offline at %s)\n", path, verdict, v.VerificationTime.Format(time.RFC3339))
	if verr != nil {
		fmt.Fprintf(w, "  signature data: %v\n", verr)
	}
	if v.FMSPC != "" {
		fmt.Fprintf(w, "  FMSPC %s, PCE ID %s, PCE SVN %d, QE SVN %d, CPU SVN %s, TEE_TCB_SVN %s\n", v.FMSPC, v.PCEID, v.PCESVN, v.QESVN, v.CPUSVN, v.TEETCBSVN)
	}
	if v.PCK != nil {
		fmt.Fprintf(w, "  PCK certificate serial %s, valid %s .. %s\n", v.PCK.Serial, v.PCK.NotBefore.Format(time.DateOnly), v.PCK.NotAfter.Format(time.DateOnly))
	}
	for _, ch := range v.Checks {
		mark := "ok  "
		if !ch.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  [%s] %s: %s\n", mark, ch.Name, ch.Detail)
	}
	for _, n := range v.NotChecked {
		fmt.Fprintf(w, "  [ -- ] %s: %s\n", n.Name, n.Reason)
	}
}
