package quote

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// IntelSGXRootCASHA256 pins Intel's SGX Root CA ("CN=Intel SGX Root CA, O=Intel Corporation",
// valid 2018-05-21 .. 2049-12-31) by the SHA-256 of its DER encoding. Every PCK chain and every
// collateral issuer chain must end in exactly this certificate: the root a quote carries is
// trusted only when its bytes hash to this value.
const IntelSGXRootCASHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"

// IntelQEVendorID is the QE vendor ID of Intel's quoting enclave.
var IntelQEVendorID = []byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// TD attribute bits (TDX module ABI): DEBUG is bit 0, SEPT_VE_DISABLE bit 28.
const (
	tdAttrDebug         = 1 << 0
	tdAttrSEPTVEDisable = 1 << 28
)

// Check is one verification step, reported by name whatever its outcome.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// NotChecked is something this verification did not establish, and why.
type NotChecked struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// PCKInfo describes the PCK leaf certificate.
type PCKInfo struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// Verification is the outcome of checking a quote's authenticity (and, with collateral, its
// TCB status). JSON keys are part of the CLI contract.
type Verification struct {
	// Authentic: the quote signature, the QE report signature, the QE report data binding and
	// the PCK chain to the pinned Intel root all hold.
	Authentic bool `json:"authentic"`
	// TCBStatus is the merged TCB status, nil when not evaluated (no collateral).
	TCBStatus   *string  `json:"tcb_status"`
	AdvisoryIDs []string `json:"advisory_ids"`
	FMSPC       string   `json:"fmspc"`
	PCEID       string   `json:"pce_id"`
	PCESVN      int      `json:"pce_svn"`
	CPUSVN      string   `json:"cpu_svn"`
	TEETCBSVN   string   `json:"tee_tcb_svn"`
	QESVN       int      `json:"qe_svn"`
	PPID        string   `json:"ppid"`
	PCK         *PCKInfo `json:"pck_certificate,omitempty"`
	// TDAttributes flags: debug TDs fail; a TD without SEPT_VE_DISABLE is flagged in Warnings.
	Warnings         []string     `json:"warnings"`
	VerificationTime time.Time    `json:"verification_time"`
	Checks           []Check      `json:"checks"`
	NotChecked       []NotChecked `json:"not_checked"`
}

func (v *Verification) check(name string, ok bool, format string, args ...any) bool {
	v.Checks = append(v.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	return ok
}

// Failed lists the checks that did not pass.
func (v *Verification) Failed() []Check {
	var out []Check
	for _, c := range v.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Time the certificates (and collateral) must be valid at; zero means now.
	Time time.Time
}

// Verify checks that q was produced by a genuine Intel TDX platform: the attestation key's
// signature over the header and body, the PCK leaf's signature over the QE report, the QE
// report data binding the attestation key, and the PCK chain up to the pinned Intel SGX Root CA
// at opts.Time. It also checks the TD attributes. Every check is reported by name; Authentic
// holds when the TEE type, QE vendor and the four signature and chain checks pass. An error means the signature data cannot
// even be read (the quote is then not authentic either).
func Verify(q *Quote, opts VerifyOptions) (*Verification, error) {
	at := opts.Time
	if at.IsZero() {
		at = time.Now()
	}
	v := &Verification{VerificationTime: at.UTC(), Checks: []Check{}, NotChecked: []NotChecked{}, AdvisoryIDs: []string{}, Warnings: []string{}}
	v.TEETCBSVN = hex.EncodeToString(q.Report.TEETCBSVN)

	v.check("tee-type", q.Header.TEEType == TEETypeTDX, "TEE type 0x%x (TDX is 0x81)", q.Header.TEEType)
	v.check("qe-vendor", bytes.Equal(q.Header.QEVendorID, IntelQEVendorID), "QE vendor ID %x (Intel's is %x)", []byte(q.Header.QEVendorID), IntelQEVendorID)
	sd, err := q.ParseSignatureData()
	if err != nil {
		return v, err
	}
	v.QESVN = int(qeU16(sd.QEReport, reportISVSVNOff))

	attKey, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, sd.AttestationKey...))
	if err != nil {
		v.check("quote-signature", false, "attestation key is not a P-256 point: %v", err)
	} else {
		d := sha256.Sum256(q.Signed)
		v.check("quote-signature", verifyRS(attKey, d[:], sd.Signature), "attestation key's ECDSA-P256 signature over the quote header and TD report")
	}

	want := sha256.Sum256(append(append([]byte{}, sd.AttestationKey...), sd.QEAuthData...))
	rd := sd.QEReport[reportDataOff : reportDataOff+64]
	v.check("qe-report-data", bytes.Equal(rd[:32], want[:]) && allZero(rd[32:]),
		"QE report data %x, want SHA-256(attestation key ‖ QE auth data) %x followed by 32 zero bytes", rd, want[:])

	chain, cached, err := pckChains.parse(sd.PCKChainPEM)
	if err != nil {
		v.check("pck-chain", false, "PCK certificate chain: %v", err)
		v.check("qe-report-signature", false, "no PCK leaf certificate to check it with")
	} else {
		leaf := chain[0]
		v.PCK = &PCKInfo{Subject: leaf.Subject.String(), Issuer: leaf.Issuer.String(), Serial: hex.EncodeToString(leaf.SerialNumber.Bytes()),
			NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC()}
		if err := cached.verify(chain, at); err != nil {
			v.check("pck-chain", false, "%v", err)
		} else {
			v.check("pck-chain", true, "%s → %s → pinned Intel SGX Root CA, valid at %s", leaf.Subject.CommonName, chain[0].Issuer.CommonName, at.UTC().Format(time.RFC3339))
		}
		if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
			v.check("qe-report-signature", false, "PCK leaf key is %T, not ECDSA", leaf.PublicKey)
		} else {
			d := sha256.Sum256(sd.QEReport)
			v.check("qe-report-signature", verifyRS(pub, d[:], sd.QEReportSig), "PCK leaf key's ECDSA-P256 signature over the QE report")
		}
		if ext, err := parseSGXExtensions(leaf); err != nil {
			v.check("pck-extensions", false, "%v", err)
		} else {
			v.FMSPC, v.PCEID, v.PPID, v.PCESVN = hex.EncodeToString(ext.fmspc), hex.EncodeToString(ext.pceID), hex.EncodeToString(ext.ppid), ext.pceSVN
			// The TCB level the PCK certificate was issued for, which TCB evaluation compares.
			v.CPUSVN = hex.EncodeToString(ext.cpuSVN)
		}
	}

	attr := uint64(0)
	for i, b := range q.Report.TDAttributes {
		attr |= uint64(b) << (8 * i)
	}
	v.check("td-attributes", attr&tdAttrDebug == 0, "TD attributes %x: debug %v", []byte(q.Report.TDAttributes), attr&tdAttrDebug != 0)
	if attr&tdAttrSEPTVEDisable == 0 {
		v.Warnings = append(v.Warnings, "td-attributes: SEPT_VE_DISABLE is not set: the TD may receive #VE on EPT violations, which a malicious host can use to inject exceptions")
	}

	v.Authentic = true
	for _, c := range v.Checks {
		switch c.Name {
		case "quote-signature", "qe-report-data", "pck-chain", "qe-report-signature", "tee-type", "qe-vendor":
			v.Authentic = v.Authentic && c.OK
		}
	}
	v.NotChecked = append(v.NotChecked,
		NotChecked{"tcb-status", "no collateral given: TCB status not evaluated (platform, TDX module and QE TCB levels, advisories)"},
		NotChecked{"revocation", "no collateral given: the PCK certificate's revocation (PCK CRL, root CA CRL) was not checked"})
	return v, nil
}

func verifyRS(pub *ecdsa.PublicKey, digest, rs []byte) bool {
	if len(rs) != 64 {
		return false
	}
	r, s := new(big.Int).SetBytes(rs[:32]), new(big.Int).SetBytes(rs[32:])
	return ecdsa.Verify(pub, digest, r, s)
}

// parsePEMChain decodes the certificates of a PEM chain, leaf first. Trailing NULs (quote
// generation pads the chain) are allowed; anything else that is not a certificate is not.
func parsePEMChain(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := bytes.TrimRight(data, "\x00")
	for len(bytes.TrimSpace(rest)) > 0 {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, errors.New("not PEM after certificate " + fmt.Sprint(len(out)))
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q, want CERTIFICATE", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out), err)
		}
		out = append(out, c)
		if len(out) > 8 {
			return nil, errors.New("more than 8 certificates")
		}
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("%d certificate(s): want leaf, intermediate(s) and root", len(out))
	}
	return out, nil
}

// verifyChainToPinnedRoot checks that chain (leaf first) ends in the pinned Intel SGX Root CA
// and that every certificate is signed by the next and valid at t.
func verifyChainToPinnedRoot(chain []*x509.Certificate, t time.Time) error {
	root := chain[len(chain)-1]
	sum := sha256.Sum256(root.Raw)
	if hex.EncodeToString(sum[:]) != IntelSGXRootCASHA256 {
		return fmt.Errorf("the chain's root %q (SHA-256 %x) is not the pinned Intel SGX Root CA", root.Subject.CommonName, sum[:])
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range chain[1 : len(chain)-1] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: t, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return fmt.Errorf("PCK chain does not verify to the pinned Intel SGX Root CA at %s: %w", t.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// Intel's SGX extension of PCK certificates (OID 1.2.840.113741.1.13.1) and the members read.
var (
	oidSGXExtensions = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1}
	oidPPID          = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 1}
	oidTCB           = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2}
	oidPCESVN        = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2, 17}
	oidCPUSVN        = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 2, 18}
	oidPCEID         = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 3}
	oidFMSPC         = asn1.ObjectIdentifier{1, 2, 840, 113741, 1, 13, 1, 4}
)

type sgxExtensions struct {
	ppid, pceID, fmspc, cpuSVN []byte
	pceSVN                     int
	// compSVN are the 16 SGX TCB component SVNs (…1.2.1 … 1.2.16).
	compSVN [16]int
}

type oidValue struct {
	OID   asn1.ObjectIdentifier
	Value asn1.RawValue
}

func parseSGXExtensions(cert *x509.Certificate) (*sgxExtensions, error) {
	var raw []byte
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidSGXExtensions) {
			raw = e.Value
		}
	}
	if raw == nil {
		return nil, errors.New("PCK certificate has no SGX extension (1.2.840.113741.1.13.1)")
	}
	var items []oidValue
	if rest, err := asn1.Unmarshal(raw, &items); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("PCK certificate SGX extension: not a sequence of (OID, value): %v", err)
	}
	x := &sgxExtensions{}
	octets := func(v asn1.RawValue, name string, n int) ([]byte, error) {
		if v.Tag != asn1.TagOctetString || (n > 0 && len(v.Bytes) != n) {
			return nil, fmt.Errorf("PCK certificate SGX extension %s: want a %d-byte OCTET STRING", name, n)
		}
		return v.Bytes, nil
	}
	var err error
	for _, it := range items {
		switch {
		case it.OID.Equal(oidPPID):
			x.ppid, err = octets(it.Value, "PPID", 16)
		case it.OID.Equal(oidPCEID):
			x.pceID, err = octets(it.Value, "PCE-ID", 2)
		case it.OID.Equal(oidFMSPC):
			x.fmspc, err = octets(it.Value, "FMSPC", 6)
		case it.OID.Equal(oidTCB):
			err = x.parseTCB(it.Value.FullBytes)
		}
		if err != nil {
			return nil, err
		}
	}
	if x.fmspc == nil || x.pceID == nil || x.cpuSVN == nil {
		return nil, errors.New("PCK certificate SGX extension lacks FMSPC, PCE-ID or TCB")
	}
	return x, nil
}

func (x *sgxExtensions) parseTCB(full []byte) error {
	var items []oidValue
	if rest, err := asn1.Unmarshal(full, &items); err != nil || len(rest) != 0 {
		return fmt.Errorf("PCK certificate SGX TCB: not a sequence of (OID, value): %v", err)
	}
	for _, it := range items {
		switch {
		case it.OID.Equal(oidCPUSVN):
			if it.Value.Tag != asn1.TagOctetString || len(it.Value.Bytes) != 16 {
				return errors.New("PCK certificate SGX TCB CPUSVN: want a 16-byte OCTET STRING")
			}
			x.cpuSVN = it.Value.Bytes
		case it.OID.Equal(oidPCESVN):
			var n int
			if _, err := asn1.Unmarshal(it.Value.FullBytes, &n); err != nil {
				return fmt.Errorf("PCK certificate SGX TCB PCESVN: %v", err)
			}
			x.pceSVN = n
		case len(it.OID) == len(oidTCB)+1 && it.OID[:len(oidTCB)].Equal(oidTCB) && it.OID[len(oidTCB)] >= 1 && it.OID[len(oidTCB)] <= 16:
			var n int
			if _, err := asn1.Unmarshal(it.Value.FullBytes, &n); err != nil {
				return fmt.Errorf("PCK certificate SGX TCB component %d: %v", it.OID[len(oidTCB)], err)
			}
			x.compSVN[it.OID[len(oidTCB)]-1] = n
		}
	}
	return nil
}
