package snp

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
)

// ReportSize is the size of an SNP ATTESTATION_REPORT (versions 2 and 3 and later).
const ReportSize = abi.ReportSize

// arkFingerprints pins AMD's root keys (ARK) per product line by the SHA-256 of their
// certificates, as go-sev-guest v0.15.0 embeds them (the Milan root also signs the ASK AMD's KDS
// served for the real capture in ../shared/sev-snp). A root is trusted only if it is exactly one
// of these, whatever a report's chain or a library update carries.
var arkFingerprints = map[string]string{
	"Milan": "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
	"Genoa": "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
	"Turin": "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
}

// ReportCheck is one named check of a report, as the verification reports it.
type ReportCheck struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// ReportOptions carries what verifying a report needs beyond the report.
type ReportOptions struct {
	// VCEK and ASK are the chip's endorsement key certificate and AMD's signing key certificate
	// (PEM or DER), from the attestation's cert chain or from AMD's KDS ahead of time: nothing is
	// fetched while verifying.
	VCEK, ASK []byte
	// Now is when certificates must be valid (zero: time.Now()).
	Now time.Time
}

// ReportVerification is what VerifyReport found.
type ReportVerification struct {
	// Authentic: the report is signed by a VCEK that AMD's pinned root certifies for this chip
	// and TCB.
	Authentic bool `json:"authentic"`
	// Acceptable: authentic, and the guest policy and VMPL are dstack's (no debug, no migration
	// agent, VMPL 0).
	Acceptable   bool          `json:"acceptable"`
	Checks       []ReportCheck `json:"checks"`
	Version      uint32        `json:"version"`
	ProductLine  string        `json:"product_line"`
	Policy       string        `json:"policy"`
	VMPL         uint32        `json:"vmpl"`
	Measurement  Hex           `json:"measurement"`
	HostData     Hex           `json:"host_data"`
	ReportData   Hex           `json:"report_data"`
	ChipID       Hex           `json:"chip_id"`
	ReportedTCB  string        `json:"reported_tcb"`
	CurrentTCB   string        `json:"current_tcb"`
	CommittedTCB string        `json:"committed_tcb"`
	LaunchTCB    string        `json:"launch_tcb"`
	// TCBStatus is UpToDate when the reported TCB equals the current, committed and launch TCB,
	// else OutOfDate (the platform runs firmware newer than the TCB it reports), as dstack says.
	TCBStatus string `json:"tcb_status"`
	// dstack KMS values: mr_system = SHA-256(MEASUREMENT), mr_aggregated = SHA-256(MEASUREMENT ‖
	// HOST_DATA), device_id = SHA-256(CHIP_ID).
	MRSystem     Hex `json:"mr_system"`
	MRAggregated Hex `json:"mr_aggregated"`
	DeviceID     Hex `json:"device_id"`
}

func (v *ReportVerification) check(name string, passed bool, format string, args ...any) bool {
	v.Checks = append(v.Checks, ReportCheck{Name: name, Passed: passed, Detail: fmt.Sprintf(format, args...)})
	return passed
}

// parseCert reads a PEM or DER certificate.
func parseCert(what string, b []byte) (*x509.Certificate, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("no %s certificate given", what)
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("%s certificate: %w", what, err)
	}
	return c, nil
}

// VerifyReport checks an SNP attestation report offline: the chain from AMD's pinned root key
// through the given ASK to the VCEK, the VCEK's signature over the report, that the VCEK is this
// chip's (hwID) at this TCB, and dstack's launch policy. A report or certificate that cannot be
// read is an error; a check that fails is reported, never an error.
func VerifyReport(report []byte, opts ReportOptions) (*ReportVerification, error) {
	if len(report) != ReportSize {
		return nil, fmt.Errorf("SNP report is %d bytes, want %d", len(report), ReportSize)
	}
	rp, err := abi.ReportToProto(report)
	if err != nil {
		return nil, fmt.Errorf("SNP report: %w", err)
	}
	vcek, err := parseCert("VCEK", opts.VCEK)
	if err != nil {
		return nil, err
	}
	ask, err := parseCert("ASK", opts.ASK)
	if err != nil {
		return nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	// TCB_VERSION as the report's eight bytes, low first (boot loader, TEE, ..., SNP, microcode).
	tcb := func(t uint64) string { return hex.EncodeToString(binary.LittleEndian.AppendUint64(nil, t)) }
	v := &ReportVerification{Version: rp.GetVersion(), Policy: fmt.Sprintf("%#x", rp.GetPolicy()), VMPL: rp.GetVmpl(),
		Measurement: rp.GetMeasurement(), HostData: rp.GetHostData(), ReportData: rp.GetReportData(), ChipID: rp.GetChipId(),
		ReportedTCB: tcb(rp.GetReportedTcb()), CurrentTCB: tcb(rp.GetCurrentTcb()), CommittedTCB: tcb(rp.GetCommittedTcb()), LaunchTCB: tcb(rp.GetLaunchTcb())}
	ms := sha256.Sum256(v.Measurement)
	agg := sha256.Sum256(append(append([]byte{}, v.Measurement...), v.HostData...))
	dev := sha256.Sum256(v.ChipID)
	v.MRSystem, v.MRAggregated, v.DeviceID = ms[:], agg[:], dev[:]
	v.TCBStatus = "OutOfDate"
	if rp.GetReportedTcb() == rp.GetCurrentTcb() && rp.GetCurrentTcb() == rp.GetCommittedTcb() && rp.GetCommittedTcb() == rp.GetLaunchTcb() {
		v.TCBStatus = "UpToDate"
	}

	versionOK := v.Version == 2 || v.Version == 3
	authentic := v.check("report-version", versionOK, "version %d%s", v.Version, map[bool]string{true: "", false: ": only versions 2 and 3 are supported yet"}[versionOK])
	signerText := "unreadable SIGNER_INFO"
	info, err := abi.ParseSignerInfo(rp.GetSignerInfo())
	if err == nil {
		signerText = "signed by " + info.SigningKey.String()
	}
	signer := err == nil && info.SigningKey == abi.VcekReportSigner
	authentic = v.check("signing-key", signer, "%s (dstack accepts VCEK only)", signerText) && authentic

	// The product line names the root: from the report's CPUID fields (version 3 on), else from
	// the VCEK's product name extension.
	exts, extErr := kds.VcekCertificateExtensions(vcek)
	if fms := rp.GetCpuid1EaxFms(); fms != 0 {
		v.ProductLine = kds.ProductLineFromFms(fms)
	} else if extErr == nil {
		if p, err := kds.ParseProductName(exts.ProductName, abi.VcekReportSigner); err == nil {
			v.ProductLine = kds.ProductLine(p)
		}
	}
	root, rootErr := trust.GetDefaultRootCerts(v.ProductLine)
	var ark *x509.Certificate
	if rootErr == nil && root.ProductCerts != nil {
		ark = root.ProductCerts.Ark
	}
	arkOK := ark != nil && arkFingerprints[v.ProductLine] != "" && fingerprint(ark) == arkFingerprints[v.ProductLine]
	authentic = v.check("ark-pinned", arkOK, "AMD root for %q: %s", v.ProductLine, map[bool]string{true: "pinned ARK " + arkFingerprints[v.ProductLine], false: "no pinned root for this product line"}[arkOK]) && authentic
	askOK := arkOK && checkIssued(ask, ark, now) == nil
	// A link is judged only when the one above it held: an ASK is not "unsigned" by a root
	// that was never found, it is unchecked.
	askErr := func() error {
		if !arkOK {
			return nil
		}
		return checkIssued(ask, ark, now)
	}
	authentic = v.check("ask-signed-by-ark", askOK, "%s", errText(askOK, askErr, "ASK "+ask.Subject.CommonName+" is signed by the ARK and valid")) && authentic
	vcekOK := askOK && checkIssued(vcek, ask, now) == nil
	vcekErr := func() error {
		if !askOK {
			return nil
		}
		return checkIssued(vcek, ask, now)
	}
	authentic = v.check("vcek-signed-by-ask", vcekOK, "%s", errText(vcekOK, vcekErr, "VCEK is signed by the ASK and valid")) && authentic
	sigErr := verify.SnpReportSignature(report, vcek)
	authentic = v.check("report-signature", sigErr == nil, "%s", errText(sigErr == nil, func() error { return sigErr }, "ECDSA P-384/SHA-384 signature by the VCEK")) && authentic
	switch {
	case extErr != nil:
		authentic = v.check("vcek-chip", false, "VCEK extensions: %v", extErr) && authentic
	default:
		chipOK := hex.EncodeToString(exts.HWID) == hex.EncodeToString(rp.GetChipId())
		authentic = v.check("vcek-chip", chipOK, "VCEK hwID %s, report CHIP_ID %s", shortHex(exts.HWID), shortHex(rp.GetChipId())) && authentic
		tcbOK := uint64(exts.TCBVersion) == rp.GetReportedTcb()
		authentic = v.check("vcek-tcb", tcbOK, "VCEK TCB %s, report REPORTED_TCB %s", tcb(uint64(exts.TCBVersion)), v.ReportedTCB) && authentic
	}
	v.Authentic = authentic

	pol, polErr := abi.ParseSnpPolicy(rp.GetPolicy())
	policyOK := polErr == nil && !pol.Debug && !pol.MigrateMA
	acceptable := v.check("guest-policy", policyOK, "policy %#x: debug %v, migration agent %v, SMT %v (dstack launches 0x30000)", rp.GetPolicy(), pol.Debug, pol.MigrateMA, pol.SMT)
	acceptable = v.check("vmpl", rp.GetVmpl() == 0, "VMPL %d", rp.GetVmpl()) && acceptable
	// The PSP launches nothing whose policy the platform contradicts; a report that shows such a
	// pair is not one the firmware produced for a working launch.
	pi, piErr := abi.ParseSnpPlatformInfo(rp.GetPlatformInfo())
	piOK := piErr == nil && polErr == nil && (pol.SMT || !pi.SMTEnabled) && (!pol.CipherTextHidingDRAM || pi.CiphertextHidingDRAMEnabled)
	acceptable = v.check("platform-info", piOK, "platform info %#x: SMT enabled %v (policy allows SMT %v), ciphertext hiding %v (policy requires %v)",
		rp.GetPlatformInfo(), pi.SMTEnabled, pol.SMT, pi.CiphertextHidingDRAMEnabled, pol.CipherTextHidingDRAM) && acceptable
	v.Acceptable = authentic && acceptable
	return v, nil
}

func fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

// checkIssued checks child's signature by parent (RSA-PSS SHA-384 for AMD's chain) and that
// both are valid at now.
func checkIssued(child, parent *x509.Certificate, now time.Time) error {
	if child == nil || parent == nil {
		return errors.New("certificate missing")
	}
	if err := parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature); err != nil {
		return fmt.Errorf("%s is not signed by %s: %w", child.Subject.CommonName, parent.Subject.CommonName, err)
	}
	for _, c := range []*x509.Certificate{child, parent} {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return fmt.Errorf("%s is valid from %s to %s, not at %s", c.Subject.CommonName, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), now.Format(time.RFC3339))
		}
	}
	return nil
}

func errText(ok bool, err func() error, okText string) string {
	if ok {
		return okText
	}
	if e := err(); e != nil {
		return e.Error()
	}
	return "not checked: an earlier link of the chain failed"
}

func shortHex(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) > 24 {
		return s[:16] + "…" + s[len(s)-8:]
	}
	return s
}

// MRConfigHostData is the HOST_DATA dstack-vmm launches an SNP guest with for an mr_config
// document: SHA-256("dstack-mr-config-v3:" ‖ 0x00 ‖ the document's exact bytes).
func MRConfigHostData(doc []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("dstack-mr-config-v3:"))
	h.Write([]byte{0})
	h.Write(doc)
	return [32]byte(h.Sum(nil))
}
