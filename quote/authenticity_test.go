package quote

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// at is a time inside every real PCK chain's validity (leaves run to 2032-2033).
var at = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// realQuotes gathers every real TDX quote of the shared reference data: DCAP samples, binary
// quotes, and the "quote" of every GetQuote-shaped JSON file.
func realQuotes(t testing.TB) map[string][]byte {
	t.Helper()
	dir, ok := testvectors.SharedDir()
	if !ok {
		t.Skipf("shared reference data not found: skipping the real-quote checks")
	}
	out := map[string][]byte{}
	for _, pat := range []string{"dcap/*.bin", "real-attestations/*/*.bin", "real-attestations/*/*.json", "real-attestations/*/*/*.json"} {
		files, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(dir, f)
			if strings.HasSuffix(f, ".json") {
				var g struct {
					Quote json.RawMessage `json:"quote"`
				}
				if json.Unmarshal(b, &g) != nil || len(g.Quote) == 0 {
					continue
				}
				var s string
				if json.Unmarshal(g.Quote, &s) != nil || s == "" {
					continue
				}
				b = []byte(s)
			}
			raw := DecodeHexOrBinary(b)
			if _, err := Parse(raw); err != nil {
				continue // not a TDX quote (CCEL logs, attestation envelopes)
			}
			out[rel] = raw
		}
	}
	return out
}

func TestRealQuotesAreAuthentic(t *testing.T) {
	quotes := realQuotes(t)
	distinct := map[[32]byte]bool{}
	for name, raw := range quotes {
		t.Run(name, func(t *testing.T) {
			q, err := Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			v, err := Verify(q, VerifyOptions{Time: at})
			if err != nil {
				t.Fatal(err)
			}
			if !v.Authentic || len(v.Failed()) != 0 {
				t.Fatalf("not authentic: %+v", v.Failed())
			}
			if len(v.FMSPC) != 12 || v.PCK == nil || v.TCBStatus != nil {
				t.Errorf("fmspc %q, pck %+v, tcb status %v", v.FMSPC, v.PCK, v.TCBStatus)
			}
			distinct[sha256.Sum256(raw)] = true
		})
	}
	t.Logf("%d real quote files (%d distinct quotes) authentic offline at %s", len(quotes), len(distinct), at.Format(time.RFC3339))
	if len(distinct) < 20 {
		t.Errorf("only %d distinct real quotes found", len(distinct))
	}
}

// sigDataOffset is where the signature data starts in raw.
func sigDataOffset(q *Quote) int { return len(q.Signed) + 4 }

// TestTamperedQuotesAreNotAuthentic flips one byte in each part of a real quote (v4 and v5)
// and requires a verdict of not authentic (a parse error counts: it is reported as such).
func TestTamperedQuotesAreNotAuthentic(t *testing.T) {
	for _, file := range []string{"dcap/dcap-qvl_tdx_quote.bin", "dcap/dcap-qvl_tdx_quote_outdated.bin"} {
		raw := testvectors.ReadShared(t, file)
		q, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		sd, err := q.ParseSignatureData()
		if err != nil {
			t.Fatal(err)
		}
		base := sigDataOffset(q)
		qeOff := base + 64 + 64 + 6
		authOff := qeOff + SGXReportBodyLen + 64 + 2
		pemOff := authOff + len(sd.QEAuthData) + 6
		bodyOff := HeaderLen
		if q.Header.Version == 5 {
			bodyOff += v5DescriptorLen
		}
		for _, tc := range []struct {
			part string
			off  int
		}{
			{"header user data", 28},
			{"MRTD", bodyOff + 136},
			{"RTMR0", bodyOff + 328},
			{"RTMR3", bodyOff + 328 + 3*48 + 5},
			{"REPORTDATA", bodyOff + 520},
			{"quote signature", base + 10},
			{"attestation key", base + 64 + 10},
			{"QE report", qeOff + 100},
			{"QE report data", qeOff + reportDataOff + 1},
			{"QE report signature", qeOff + SGXReportBodyLen + 10},
			{"QE auth data", authOff + len(sd.QEAuthData)/2},
			{"PCK leaf certificate", pemOff + 200},
			{"PCK root certificate", pemOff + len(sd.PCKChainPEM) - 100},
		} {
			t.Run(file+"/"+tc.part, func(t *testing.T) {
				bad := bytes.Clone(raw)
				bad[tc.off] ^= 0x01
				q, err := Parse(bad)
				if err != nil {
					return // unreadable: not authentic
				}
				v, err := Verify(q, VerifyOptions{Time: at})
				if err == nil && v.Authentic {
					t.Fatalf("flipped byte %d (%s) still authentic", tc.off, tc.part)
				}
			})
		}
	}
}

func TestChainValidityTime(t *testing.T) {
	raw := testvectors.ReadShared(t, "dcap/dcap-qvl_tdx_quote.bin")
	q, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		when time.Time
		ok   bool
	}{
		{at, true},
		{time.Date(2060, 1, 1, 0, 0, 0, 0, time.UTC), false}, // every certificate expired
		{time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC), false}, // before the root existed
	} {
		v, err := Verify(q, VerifyOptions{Time: tc.when})
		if err != nil {
			t.Fatal(err)
		}
		if v.Authentic != tc.ok {
			t.Errorf("at %s: authentic %v, want %v (%+v)", tc.when, v.Authentic, tc.ok, v.Failed())
		}
	}
}

// rebuildWithChain replaces the PCK chain of a real quote, fixing every length on the way.
func rebuildWithChain(t *testing.T, raw []byte, chain []byte) []byte {
	t.Helper()
	q, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := q.ParseSignatureData()
	if err != nil {
		t.Fatal(err)
	}
	var cert bytes.Buffer
	cert.Write(sd.QEReport)
	cert.Write(sd.QEReportSig)
	binary.Write(&cert, binary.LittleEndian, uint16(len(sd.QEAuthData)))
	cert.Write(sd.QEAuthData)
	binary.Write(&cert, binary.LittleEndian, uint16(CertDataPCKChain))
	binary.Write(&cert, binary.LittleEndian, uint32(len(chain)))
	cert.Write(chain)
	var sig bytes.Buffer
	sig.Write(sd.Signature)
	sig.Write(sd.AttestationKey)
	binary.Write(&sig, binary.LittleEndian, uint16(CertDataQEReportCertif))
	binary.Write(&sig, binary.LittleEndian, uint32(cert.Len()))
	sig.Write(cert.Bytes())
	var out bytes.Buffer
	out.Write(q.Signed)
	binary.Write(&out, binary.LittleEndian, uint32(sig.Len()))
	out.Write(sig.Bytes())
	return out.Bytes()
}

// A chain that does not end in the pinned root is refused, whatever it says of itself.
func TestChainMustEndInPinnedRoot(t *testing.T) {
	raw := testvectors.ReadShared(t, "dcap/dcap-qvl_tdx_quote.bin")
	q, _ := Parse(raw)
	sd, _ := q.ParseSignatureData()
	pems := strings.SplitAfter(strings.TrimRight(string(sd.PCKChainPEM), "\x00"), "-----END CERTIFICATE-----")
	withoutRoot := strings.Join(pems[:2], "")
	rootOnly := pems[2]
	for _, tc := range []struct{ name, chain, want string }{
		{"intact", string(sd.PCKChainPEM), ""},
		{"root removed", withoutRoot, "is not the pinned Intel SGX Root CA"},
		{"intermediate removed", pems[0] + rootOnly, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := Parse(rebuildWithChain(t, raw, []byte(tc.chain)))
			if err != nil {
				t.Fatal(err)
			}
			v, err := Verify(q, VerifyOptions{Time: at})
			if err != nil {
				t.Fatal(err)
			}
			var detail string
			for _, c := range v.Checks {
				if c.Name == "pck-chain" {
					detail = c.Detail
				}
			}
			if (tc.want == "") != v.Authentic || !strings.Contains(detail, tc.want) {
				t.Errorf("authentic %v, pck-chain %q", v.Authentic, detail)
			}
		})
	}
}

// The pinned fingerprint is that of the Intel SGX Root CA certificate Intel publishes.
func TestPinnedRootMatchesIntelsCertificate(t *testing.T) {
	pemBytes := testvectors.ReadShared(t, "dcap/intel_sgx_root_ca.pem")
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		t.Fatal("intel_sgx_root_ca.pem is not PEM")
	}
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(root.Raw)
	if hex.EncodeToString(sum[:]) != IntelSGXRootCASHA256 || root.Subject.CommonName != "Intel SGX Root CA" {
		t.Errorf("pinned %s, Intel's root %x (%s)", IntelSGXRootCASHA256, sum, root.Subject)
	}
}

func FuzzVerify(f *testing.F) {
	if dir, ok := testvectors.SharedDir(); ok {
		if b, err := os.ReadFile(filepath.Join(dir, "dcap", "dcap-qvl_tdx_quote.bin")); err == nil {
			f.Add(b)
		}
	}
	f.Add(make([]byte, HeaderLen+TDReport10Len+4))
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := Parse(data)
		if err != nil {
			return
		}
		v, err := Verify(q, VerifyOptions{Time: at})
		if err == nil && v.Authentic && len(v.Failed()) != 0 {
			t.Fatal("authentic with failed checks")
		}
	})
}
