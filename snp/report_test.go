package snp

import (
	"bytes"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/dstack-mr/dstack-mr/internal/testvectors"
)

// goSevGuestVerdict is go-sev-guest's own answer (chain from the embedded ARK through the given
// ASK, report signature, then its validation of CHIP_ID against the VCEK's hwID and of the TCB),
// to hold VerifyReport's Authentic to.
func goSevGuestVerdict(t *testing.T, report, vcekPEM, askPEM []byte, now time.Time) bool {
	der := func(b []byte) []byte {
		if blk, _ := pem.Decode(b); blk != nil {
			return blk.Bytes
		}
		return b
	}
	rp, err := abi.ReportToProto(report)
	if err != nil {
		return false
	}
	def, err := trust.GetDefaultRootCerts("Milan")
	if err != nil {
		t.Fatal(err)
	}
	askCert, err := parseCert("ASK", askPEM)
	if err != nil {
		return false
	}
	root := trust.AMDRootCertsProduct("Milan")
	root.ProductCerts = &trust.ProductCerts{Ask: askCert, Ark: def.ProductCerts.Ark}
	att := &spb.Attestation{Report: rp, CertificateChain: &spb.CertificateChain{VcekCert: der(vcekPEM), AskCert: der(askPEM), ArkCert: def.ProductCerts.Ark.Raw}}
	opts := &verify.Options{DisableCertFetching: true, Now: now, TrustedRoots: map[string][]*trust.AMDRootCerts{"Milan": {root}}}
	if err := verify.SnpAttestation(att, opts); err != nil {
		return false
	}
	return validate.SnpAttestation(att, &validate.Options{GuestPolicy: abi.SnpPolicy{SMT: true}}) == nil
}

// captureTime is inside the real capture's VCEK validity (issued 2026-06-17).
var captureTime = time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)

func realReportInputs(t *testing.T) (report, vcek, ask []byte) {
	return testvectors.ReadShared(t, "sev-snp/extracted/sev_snp_report.bin"),
		testvectors.ReadShared(t, "sev-snp/sev_snp_vcek.pem"),
		testvectors.ReadShared(t, "sev-snp/sev_snp_ask.pem")
}

func failed(v *ReportVerification) []string {
	var out []string
	for _, c := range v.Checks {
		if !c.Passed {
			out = append(out, c.Name)
		}
	}
	return out
}

// The real Milan capture is authentic and acceptable, OutOfDate (reported snp SPL 23 below the
// current 24, as dstack reports it), its HOST_DATA is the mr_config document's and its
// MEASUREMENT the one its measurement.snp.cbor predicts.
func TestVerifyRealReport(t *testing.T) {
	report, vcek, ask := realReportInputs(t)
	v, err := VerifyReport(report, ReportOptions{VCEK: vcek, ASK: ask, Now: captureTime})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Authentic || !v.Acceptable {
		t.Fatalf("authentic %v, acceptable %v, failed %v: %+v", v.Authentic, v.Acceptable, failed(v), v.Checks)
	}
	if !goSevGuestVerdict(t, report, vcek, ask, captureTime) {
		t.Error("go-sev-guest disagrees: not authentic")
	}
	if v.ProductLine != "Milan" || v.TCBStatus != "OutOfDate" || v.Policy != "0x30000" || v.Version != 3 {
		t.Errorf("product %s, TCB %s, policy %s, version %d", v.ProductLine, v.TCBStatus, v.Policy, v.Version)
	}
	hd := MRConfigHostData(testvectors.ReadShared(t, "sev-snp/extracted/mr_config.json"))
	if !bytes.Equal(hd[:], v.HostData) {
		t.Errorf("HOST_DATA %s, mr_config gives %x", v.HostData, hd)
	}
	m, err := Decode(testvectors.ReadShared(t, "sev-snp/extracted/measurement.snp.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := m.LaunchDigest(DefaultLaunch(2))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d[:], v.Measurement) {
		t.Errorf("MEASUREMENT %s, document gives %x", v.Measurement, d)
	}
}

// One flipped byte of the signed report, a tampered ASK, the ASK given as the VCEK, or a
// validity time outside the certificates': each fails by name.
func TestVerifyReportRefuses(t *testing.T) {
	report, vcek, ask := realReportInputs(t)
	blk, _ := pem.Decode(ask)
	badASK := bytes.Clone(blk.Bytes)
	badASK[len(badASK)-10] ^= 1 // inside the signature
	for _, c := range []struct {
		name   string
		edit   func(r []byte) []byte
		vcek   []byte
		ask    []byte
		now    time.Time
		failed string
	}{
		{name: "report_data 0x50", edit: flipAt(0x50), failed: "report-signature"},
		{name: "measurement 0x90", edit: flipAt(0x90), failed: "report-signature"},
		{name: "host_data 0xC0", edit: flipAt(0xC0), failed: "report-signature"},
		{name: "signature 0x2A0", edit: flipAt(0x2A0), failed: "report-signature"},
		{name: "chip_id 0x1A0", edit: flipAt(0x1A0), failed: "vcek-chip"},
		{name: "policy forbids SMT on an SMT host", edit: flipAt(0x0A), failed: "platform-info"}, // POLICY bit 16
		{name: "tampered ASK", ask: badASK, failed: "ask-signed-by-ark"},
		{name: "ASK as VCEK", vcek: ask, failed: "vcek-signed-by-ask"},
		{name: "expired", now: time.Date(2046, 1, 1, 0, 0, 0, 0, time.UTC), failed: "ask-signed-by-ark"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := bytes.Clone(report)
			if c.edit != nil {
				r = c.edit(r)
			}
			o := ReportOptions{VCEK: vcek, ASK: ask, Now: captureTime}
			if c.vcek != nil {
				o.VCEK = c.vcek
			}
			if c.ask != nil {
				o.ASK = c.ask
			}
			if !c.now.IsZero() {
				o.Now = c.now
			}
			v, err := VerifyReport(r, o)
			if err != nil {
				t.Fatal(err)
			}
			if goSevGuestVerdict(t, r, o.VCEK, o.ASK, o.Now) {
				t.Error("go-sev-guest accepts what VerifyReport refuses")
			}
			if v.Authentic || v.Acceptable || !strings.Contains(strings.Join(failed(v), ","), c.failed) {
				t.Errorf("authentic %v, failed %v; want %s to fail", v.Authentic, failed(v), c.failed)
			}
		})
	}
	if _, err := VerifyReport(report, ReportOptions{VCEK: []byte("junk"), ASK: ask}); err == nil || !strings.Contains(err.Error(), "VCEK certificate") {
		t.Errorf("junk VCEK: %v", err)
	}
	if _, err := VerifyReport(report[:100], ReportOptions{VCEK: vcek, ASK: ask}); err == nil {
		t.Error("short report accepted")
	}
}

func flipAt(off int) func([]byte) []byte {
	return func(r []byte) []byte { r[off] ^= 1; return r }
}

func TestMRConfigHostDataMatchesProvenance(t *testing.T) {
	hd := MRConfigHostData(testvectors.ReadShared(t, "sev-snp/extracted/mr_config.json"))
	report := testvectors.ReadShared(t, "sev-snp/extracted/sev_snp_report.bin")
	if hex.EncodeToString(hd[:]) != hex.EncodeToString(report[0xC0:0xE0]) {
		t.Errorf("HOST_DATA %x, report %x", hd, report[0xC0:0xE0])
	}
}

func FuzzVerifyReport(f *testing.F) {
	dir, ok := testvectors.SharedDir()
	if !ok {
		f.Skip("shared reference data absent: the fuzz target needs the real report's VCEK and ASK")
	}
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			f.Skipf("%s: %v", rel, err)
		}
		return b
	}
	report, vcek, ask := read("sev-snp/extracted/sev_snp_report.bin"), read("sev-snp/sev_snp_vcek.pem"), read("sev-snp/sev_snp_ask.pem")
	f.Add(report)
	f.Fuzz(func(t *testing.T, r []byte) {
		v, err := VerifyReport(r, ReportOptions{VCEK: vcek, ASK: ask, Now: captureTime})
		if err != nil {
			return
		}
		// The signature covers the first 0x2A0 bytes; what follows is the signature itself.
		if v.Authentic && !bytes.Equal(r[:0x2A0], report[:0x2A0]) {
			t.Fatalf("a report with changed signed bytes is authentic")
		}
	})
}

// A report naming a CPU family with no AMD root: the chain below the missing root is reported
// as unchecked, never dereferenced (a fuzz-found panic).
func TestVerifyReportUnknownProductLine(t *testing.T) {
	report, vcek, ask := realReportInputs(t)
	r := append([]byte{}, report...)
	r[0x188] = 0x7f // CPUID_FAM_ID: no product line
	v, err := VerifyReport(r, ReportOptions{VCEK: vcek, ASK: ask, Now: captureTime})
	if err != nil {
		t.Fatal(err)
	}
	if v.Authentic {
		t.Fatal("authentic without a root")
	}
	for _, c := range v.Checks {
		if (c.Name == "ask-signed-by-ark" || c.Name == "vcek-signed-by-ask") && (c.Passed || !strings.Contains(c.Detail, "not checked")) {
			t.Errorf("%s: %+v", c.Name, c)
		}
	}
}
