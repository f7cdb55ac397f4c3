package quote

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Collateral is dcap-qvl's QuoteCollateralV3, the JSON dstack's verifier fetches from Intel's
// PCS (or a PCCS): issuer chains as PEM (leaf first), CRLs as hex DER, and the TCB info and QE
// identity as the exact signed JSON text with hex r ‖ s signatures.
type Collateral struct {
	PCKCRLIssuerChain     string `json:"pck_crl_issuer_chain"`
	RootCACRL             string `json:"root_ca_crl"`
	PCKCRL                string `json:"pck_crl"`
	TCBInfoIssuerChain    string `json:"tcb_info_issuer_chain"`
	TCBInfo               string `json:"tcb_info"`
	TCBInfoSignature      string `json:"tcb_info_signature"`
	QEIdentityIssuerChain string `json:"qe_identity_issuer_chain"`
	QEIdentity            string `json:"qe_identity"`
	QEIdentitySignature   string `json:"qe_identity_signature"`
	// PCKCertificateChain is optional and not used: the quote carries its own.
	PCKCertificateChain string `json:"pck_certificate_chain,omitempty"`
}

// maxCollateralBytes bounds a collateral file (real ones are ~20 KiB, the PCK CRL dominating).
const maxCollateralBytes = 4 << 20

// ParseCollateral decodes a QuoteCollateralV3 JSON document; every field but the PCK chain is
// required.
func ParseCollateral(data []byte) (*Collateral, error) {
	if len(data) > maxCollateralBytes {
		return nil, fmt.Errorf("collateral: %d bytes, over the %d-byte limit", len(data), maxCollateralBytes)
	}
	var c Collateral
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("collateral: not QuoteCollateralV3 JSON: %w", err)
	}
	for name, v := range map[string]string{"pck_crl_issuer_chain": c.PCKCRLIssuerChain, "root_ca_crl": c.RootCACRL, "pck_crl": c.PCKCRL,
		"tcb_info_issuer_chain": c.TCBInfoIssuerChain, "tcb_info": c.TCBInfo, "tcb_info_signature": c.TCBInfoSignature,
		"qe_identity_issuer_chain": c.QEIdentityIssuerChain, "qe_identity": c.QEIdentity, "qe_identity_signature": c.QEIdentitySignature} {
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("collateral: %s is missing", name)
		}
	}
	return &c, nil
}

// signedDocument is the header Intel's TCB info and QE identity share.
type signedDocument struct {
	ID         string    `json:"id"`
	Version    int       `json:"version"`
	IssueDate  time.Time `json:"issueDate"`
	NextUpdate time.Time `json:"nextUpdate"`
}

// tcbVerdict is what a TCB level of either document says once a TCB reaches it.
type tcbVerdict struct {
	TCBDate     time.Time `json:"tcbDate"`
	TCBStatus   string    `json:"tcbStatus"`
	AdvisoryIDs []string  `json:"advisoryIDs"`
}

// tcbInfo is Intel's TDX TCB info (version 3).
type tcbInfo struct {
	signedDocument
	FMSPC               string           `json:"fmspc"`
	PCEID               string           `json:"pceId"`
	TCBEvaluationNumber int              `json:"tcbEvaluationDataNumber"`
	TDXModule           *tdxModule       `json:"tdxModule"`
	TDXModuleIdentities []tdxModuleIdent `json:"tdxModuleIdentities"`
	TCBLevels           []platformTCBLvl `json:"tcbLevels"`
}

type tdxModule struct {
	MRSigner       string `json:"mrsigner"`
	Attributes     string `json:"attributes"`
	AttributesMask string `json:"attributesMask"`
}

type tdxModuleIdent struct {
	ID string `json:"id"`
	tdxModule
	TCBLevels []isvTCBLevel `json:"tcbLevels"`
}

type isvTCBLevel struct {
	TCB struct {
		ISVSVN int `json:"isvsvn"`
	} `json:"tcb"`
	tcbVerdict
}

type svnComponent struct {
	SVN int `json:"svn"`
}

type platformTCBLvl struct {
	TCB struct {
		SGX    []svnComponent `json:"sgxtcbcomponents"`
		PCESVN int            `json:"pcesvn"`
		TDX    []svnComponent `json:"tdxtcbcomponents"`
	} `json:"tcb"`
	tcbVerdict
}

// qeIdentity is Intel's TD_QE enclave identity (version 2).
type qeIdentity struct {
	signedDocument
	MiscSelect     string        `json:"miscselect"`
	MiscSelectMask string        `json:"miscselectMask"`
	Attributes     string        `json:"attributes"`
	AttributesMask string        `json:"attributesMask"`
	MRSigner       string        `json:"mrsigner"`
	ISVProdID      int           `json:"isvprodid"`
	TCBLevels      []isvTCBLevel `json:"tcbLevels"`
}

// ErrCollateralExpired marks collateral that is not valid at the verification time.
var ErrCollateralExpired = errors.New("collateral not valid at the verification time")

// TCB statuses, from best to worst (Intel's TCB info v3).
var tcbStatusRank = map[string]int{
	"UpToDate":                          0,
	"SWHardeningNeeded":                 1,
	"ConfigurationNeeded":               2,
	"ConfigurationAndSWHardeningNeeded": 3,
	"OutOfDate":                         4,
	"OutOfDateConfigurationNeeded":      5,
	"Revoked":                           6,
}

// mergeTCBStatus combines two statuses the way Intel's QVL converges the TDX platform, module
// and QE statuses: the worse one, except that a configuration need and an out-of-date or
// SW-hardening need combine into the status naming both.
func mergeTCBStatus(a, b string) string {
	if a == "" {
		return b
	}
	if b == "" {
		return a
	}
	has := func(s string) bool { return a == s || b == s }
	switch {
	case has("Revoked"):
		return "Revoked"
	case has("OutOfDateConfigurationNeeded"),
		has("OutOfDate") && (has("ConfigurationNeeded") || has("ConfigurationAndSWHardeningNeeded")):
		return "OutOfDateConfigurationNeeded"
	case has("OutOfDate"):
		return "OutOfDate"
	case has("ConfigurationAndSWHardeningNeeded"), has("ConfigurationNeeded") && has("SWHardeningNeeded"):
		return "ConfigurationAndSWHardeningNeeded"
	}
	if tcbStatusRank[a] >= tcbStatusRank[b] {
		return a
	}
	return b
}

// VerifyCollateral evaluates the TCB status of an authentic quote with Intel's collateral: the
// collateral's own authenticity (issuer chains to the pinned root, signatures over the exact
// JSON, validity at v.VerificationTime, CRLs), the PCK leaf's and Platform CA's revocation, FMSPC
// and PCE ID, the TDX module identity, the platform TCB level and the QE identity. Statuses are
// merged and advisories united into v. An expired collateral is an error wrapping
// ErrCollateralExpired; everything else is a named check.
func VerifyCollateral(q *Quote, v *Verification, c *Collateral) error {
	at := v.VerificationTime
	sd, err := q.ParseSignatureData()
	if err != nil {
		return err
	}
	pck, err := parsePEMChain(sd.PCKChainPEM)
	if err != nil {
		return fmt.Errorf("PCK certificate chain: %w", err)
	}
	ext, err := parseSGXExtensions(pck[0])
	if err != nil {
		return err
	}
	v.NotChecked = dropNotChecked(v.NotChecked, "tcb-status", "revocation")

	// The collateral's own authenticity and validity.
	ti, tiErr := verifySignedJSON[tcbInfo](v, "tcb-info-signature", c.TCBInfoIssuerChain, c.TCBInfo, c.TCBInfoSignature, at)
	qe, qeErr := verifySignedJSON[qeIdentity](v, "qe-identity-signature", c.QEIdentityIssuerChain, c.QEIdentity, c.QEIdentitySignature, at)
	if tiErr != nil || qeErr != nil {
		return errors.Join(tiErr, qeErr)
	}
	if ti == nil || qe == nil {
		return nil // a named check failed: the collateral is not Intel's
	}
	if ti.ID != "TDX" || ti.Version != 3 {
		v.check("tcb-info", false, "TCB info id %q version %d: want TDX version 3", ti.ID, ti.Version)
		return nil
	}
	if qe.ID != "TD_QE" {
		v.check("qe-identity", false, "QE identity id %q: want TD_QE", qe.ID)
		return nil
	}
	for _, w := range []struct {
		name          string
		issue, expire time.Time
	}{{"TCB info", ti.IssueDate, ti.NextUpdate}, {"QE identity", qe.IssueDate, qe.NextUpdate}} {
		if at.Before(w.issue) || at.After(w.expire) {
			return fmt.Errorf("%w: %s issueDate %s, nextUpdate %s; verification time %s is outside (give --time inside that window to check an old capture)",
				ErrCollateralExpired, w.name, w.issue.Format(time.RFC3339), w.expire.Format(time.RFC3339), at.Format(time.RFC3339))
		}
	}
	if err := checkRevocation(v, c, pck, at); err != nil {
		return err
	}

	v.check("fmspc", strings.EqualFold(ti.FMSPC, hex.EncodeToString(ext.fmspc)), "PCK certificate FMSPC %x, TCB info %s", ext.fmspc, ti.FMSPC)
	v.check("pce-id", strings.EqualFold(ti.PCEID, hex.EncodeToString(ext.pceID)), "PCK certificate PCE ID %x, TCB info %s", ext.pceID, ti.PCEID)

	status, advisories := "", map[string]bool{}
	add := func(s string, ids []string) {
		status = mergeTCBStatus(status, s)
		for _, id := range ids {
			advisories[id] = true
		}
	}
	s, ids, ok := tdxModuleStatus(v, q, ti)
	if !ok {
		return nil
	}
	add(s, ids)
	platform, ok := platformTCBLevel(ti, ext, q.Report.TEETCBSVN)
	if !ok {
		v.check("platform-tcb-level", false, "no TDX TCB level of TCB info (evaluation data %d) matches the platform (SGX SVNs %v, PCE SVN %d, TEE_TCB_SVN %x)",
			ti.TCBEvaluationNumber, ext.compSVN, ext.pceSVN, []byte(q.Report.TEETCBSVN))
		s := NoMatchingTCBLevel
		v.TCBStatus = &s
		return nil
	}
	v.check("platform-tcb-level", true, "TDX TCB level of %s: %s", platform.TCBDate.Format(time.DateOnly), platform.TCBStatus)
	add(platform.TCBStatus, platform.AdvisoryIDs)

	if s, ids, ok := qeIdentityStatus(v, sd.QEReport, qe); ok {
		add(s, ids)
	} else {
		s := NoMatchingTCBLevel
		v.TCBStatus = &s
		return nil
	}
	v.TCBStatus = &status
	v.AdvisoryIDs = v.AdvisoryIDs[:0]
	for id := range advisories {
		v.AdvisoryIDs = append(v.AdvisoryIDs, id)
	}
	sort.Strings(v.AdvisoryIDs)
	return nil
}

func dropNotChecked(in []NotChecked, names ...string) []NotChecked {
	out := in[:0:0]
	for _, n := range in {
		drop := false
		for _, d := range names {
			drop = drop || n.Name == d
		}
		if !drop {
			out = append(out, n)
		}
	}
	return out
}

// verifySignedJSON checks an issuer chain to the pinned root at t and its leaf's signature (hex
// r ‖ s) over the exact JSON text, then decodes the text.
func verifySignedJSON[T any](v *Verification, name, chainPEM, text, sigHex string, t time.Time) (*T, error) {
	chain, err := parsePEMChain([]byte(chainPEM))
	if err != nil {
		v.check(name, false, "issuer chain: %v", err)
		return nil, nil
	}
	if err := verifyChainToPinnedRoot(chain, t); err != nil {
		v.check(name, false, "issuer chain: %v", err)
		return nil, nil
	}
	sig, err := hex.DecodeString(strings.TrimSpace(sigHex))
	pub, isECDSA := chain[0].PublicKey.(*ecdsa.PublicKey)
	d := sha256.Sum256([]byte(text))
	if err != nil || !isECDSA || !verifyRS(pub, d[:], sig) {
		v.check(name, false, "%s's signature over the JSON does not verify", chain[0].Subject.CommonName)
		return nil, nil
	}
	var out T
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		return nil, fmt.Errorf("%s: signed JSON does not decode: %w", name, err)
	}
	v.check(name, true, "signed by %s, chained to the pinned Intel SGX Root CA", chain[0].Subject.CommonName)
	return &out, nil
}

// checkRevocation verifies both CRLs (issuer, signature, validity at t) and that neither the
// PCK leaf nor its CA is revoked.
func checkRevocation(v *Verification, c *Collateral, pck []*x509.Certificate, t time.Time) error {
	crlIssuers, err := parsePEMChain([]byte(c.PCKCRLIssuerChain))
	if err != nil {
		v.check("pck-crl", false, "PCK CRL issuer chain: %v", err)
		return nil
	}
	if err := verifyChainToPinnedRoot(crlIssuers, t); err != nil {
		v.check("pck-crl", false, "PCK CRL issuer chain: %v", err)
		return nil
	}
	root := crlIssuers[len(crlIssuers)-1]
	for _, crl := range []struct {
		name, hexDER string
		issuer       *x509.Certificate
		subject      *x509.Certificate
	}{
		{"root-ca-crl", c.RootCACRL, root, pck[len(pck)-2]},
		{"pck-crl", c.PCKCRL, crlIssuers[0], pck[0]},
	} {
		der, err := hex.DecodeString(strings.TrimSpace(crl.hexDER))
		if err != nil {
			v.check(crl.name, false, "not hex DER: %v", err)
			continue
		}
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			v.check(crl.name, false, "not a CRL: %v", err)
			continue
		}
		if err := l.CheckSignatureFrom(crl.issuer); err != nil {
			v.check(crl.name, false, "not signed by %s: %v", crl.issuer.Subject.CommonName, err)
			continue
		}
		if !bytes.Equal(l.RawIssuer, crl.subject.RawIssuer) {
			v.check(crl.name, false, "issued by %s, but %s was issued by %s", l.Issuer.CommonName, crl.subject.Subject.CommonName, crl.subject.Issuer.CommonName)
			continue
		}
		if t.Before(l.ThisUpdate) || (!l.NextUpdate.IsZero() && t.After(l.NextUpdate)) {
			return fmt.Errorf("%w: %s thisUpdate %s, nextUpdate %s; verification time %s is outside (give --time inside that window to check an old capture)",
				ErrCollateralExpired, crl.name, l.ThisUpdate.Format(time.RFC3339), l.NextUpdate.Format(time.RFC3339), t.Format(time.RFC3339))
		}
		revoked := false
		for _, e := range l.RevokedCertificateEntries {
			revoked = revoked || e.SerialNumber.Cmp(crl.subject.SerialNumber) == 0
		}
		v.check(crl.name, !revoked, "%s (serial %x) revoked: %v (%d entries, %s)", crl.subject.Subject.CommonName, crl.subject.SerialNumber.Bytes(), revoked,
			len(l.RevokedCertificateEntries), l.Issuer.CommonName)
	}
	return nil
}

func maskedEqual(got []byte, wantHex, maskHex string) bool {
	want, err1 := hex.DecodeString(wantHex)
	mask, err2 := hex.DecodeString(maskHex)
	if err1 != nil || err2 != nil || len(want) != len(got) || len(mask) != len(got) {
		return false
	}
	for i := range got {
		if got[i]&mask[i] != want[i] {
			return false
		}
	}
	return true
}

// matches reports whether the TD's TDX module is this one: MRSIGNERSEAM exactly, SEAM
// attributes under the mask.
func (m *tdxModule) matches(r *TDReport) bool {
	return maskedEqual(r.MRSignerSEAM, m.MRSigner, strings.Repeat("FF", len(r.MRSignerSEAM))) &&
		maskedEqual(r.SEAMAttributes, m.Attributes, m.AttributesMask)
}

// firstISVLevel is the first (newest) level an ISV SVN reaches, or nil.
func firstISVLevel(levels []isvTCBLevel, svn int) *isvTCBLevel {
	for i := range levels {
		if svn >= levels[i].TCB.ISVSVN {
			return &levels[i]
		}
	}
	return nil
}

// tdxModuleStatus matches the TD's TDX module (MRSIGNERSEAM, SEAM attributes) against the TCB
// info and, for a module with a major version (TEE_TCB_SVN[1] > 0, TDX 1.5), finds its
// identity TDX_<major> and the level its SVN (TEE_TCB_SVN[0]) reaches. ok is false when the
// module failed its check; a TDX 1.0 module passes with no status of its own.
func tdxModuleStatus(v *Verification, q *Quote, ti *tcbInfo) (status string, advisories []string, ok bool) {
	svn := q.Report.TEETCBSVN
	if ti.TDXModule != nil && !ti.TDXModule.matches(&q.Report) {
		v.check("tdx-module", false, "MRSIGNERSEAM %x / SEAM attributes %x do not match the TCB info's TDX module", []byte(q.Report.MRSignerSEAM), []byte(q.Report.SEAMAttributes))
		return "", nil, false
	}
	if svn[1] == 0 {
		v.check("tdx-module", true, "TDX module 1.0 (no module identity level to match)")
		return "", nil, true
	}
	id := fmt.Sprintf("TDX_%02X", svn[1])
	for _, m := range ti.TDXModuleIdentities {
		if m.ID != id {
			continue
		}
		if !m.matches(&q.Report) {
			v.check("tdx-module", false, "MRSIGNERSEAM / SEAM attributes do not match TCB info identity %s", id)
			return "", nil, false
		}
		if l := firstISVLevel(m.TCBLevels, int(svn[0])); l != nil {
			v.check("tdx-module", true, "identity %s, SVN %d reaches the level of %s: %s", id, svn[0], l.TCBDate.Format(time.DateOnly), l.TCBStatus)
			return l.TCBStatus, l.AdvisoryIDs, true
		}
		v.check("tdx-module", false, "identity %s: SVN %d is below every TCB level", id, svn[0])
		return "", nil, false
	}
	v.check("tdx-module", false, "TCB info has no TDX module identity %s", id)
	return "", nil, false
}

// platformTCBLevel is the first TCB level (they are ordered newest first) that the platform's
// SGX component SVNs, PCE SVN and TDX component SVNs all reach. For TDX 1.5 modules
// (TEE_TCB_SVN[1] > 0) the module's own two bytes are judged by tdxModuleStatus instead.
func platformTCBLevel(ti *tcbInfo, ext *sgxExtensions, teeTCBSVN []byte) (*platformTCBLvl, bool) {
	first := 0
	if len(teeTCBSVN) > 1 && teeTCBSVN[1] > 0 {
		first = 2
	}
	for i := range ti.TCBLevels {
		l := &ti.TCBLevels[i]
		if len(l.TCB.SGX) != 16 || len(l.TCB.TDX) != 16 || len(teeTCBSVN) != 16 {
			continue
		}
		ok := ext.pceSVN >= l.TCB.PCESVN
		for j := 0; ok && j < 16; j++ {
			ok = ext.compSVN[j] >= l.TCB.SGX[j].SVN
		}
		for j := first; ok && j < 16; j++ {
			ok = int(teeTCBSVN[j]) >= l.TCB.TDX[j].SVN
		}
		if ok {
			return l, true
		}
	}
	return nil, false
}

// qeIdentityStatus checks the QE report against the TD_QE identity and finds its TCB level.
func qeIdentityStatus(v *Verification, report []byte, qe *qeIdentity) (string, []string, bool) {
	mrsigner := report[reportMRSignerOff : reportMRSignerOff+32]
	misc := report[reportMiscSelectOff : reportMiscSelectOff+4]
	// The identity writes MISCSELECT big-endian as hex of the u32; the report holds it little-endian.
	miscBE := []byte{misc[3], misc[2], misc[1], misc[0]}
	attrs := report[reportAttributesOff : reportAttributesOff+16]
	prod := int(qeU16(report, reportISVProdIDOff))
	ok := strings.EqualFold(hex.EncodeToString(mrsigner), qe.MRSigner) && prod == qe.ISVProdID &&
		maskedEqual(miscBE, qe.MiscSelect, qe.MiscSelectMask) && maskedEqual(attrs, qe.Attributes, qe.AttributesMask)
	if !v.check("qe-identity", ok, "QE MRSIGNER %x, ISVPRODID %d, MISCSELECT %x, attributes %x against TD_QE identity", mrsigner, prod, miscBE, attrs) {
		return "", nil, false
	}
	svn := int(qeU16(report, reportISVSVNOff))
	if l := firstISVLevel(qe.TCBLevels, svn); l != nil {
		v.check("qe-tcb-level", true, "QE SVN %d reaches the level of %s: %s", svn, l.TCBDate.Format(time.DateOnly), l.TCBStatus)
		return l.TCBStatus, l.AdvisoryIDs, true
	}
	v.check("qe-tcb-level", false, "QE SVN %d is below every TD_QE TCB level", svn)
	return "", nil, false
}

// NoMatchingTCBLevel is the TCB status reported when the platform or the QE reaches no TCB level
// of the collateral (dcap-qvl's and dstack's verifier's wording for Intel's TCB_NOT_SUPPORTED).
const NoMatchingTCBLevel = "NoMatchingTCBLevel"

// TCBPolicy decides which TCB statuses are acceptable.
type TCBPolicy struct {
	Name    string
	accepts func(status string) bool
}

// ParseTCBPolicy reads "default" (every status but Revoked and no matching level, as dcap-qvl
// and dstack's verifier), "strict" (UpToDate only) or a comma-separated list of statuses.
func ParseTCBPolicy(s string) (TCBPolicy, error) {
	switch strings.TrimSpace(s) {
	case "", "default":
		return TCBPolicy{"default", func(st string) bool { return st != "Revoked" && st != NoMatchingTCBLevel }}, nil
	case "strict":
		return TCBPolicy{"strict", func(st string) bool { return st == "UpToDate" }}, nil
	}
	ok := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if _, known := tcbStatusRank[p]; !known {
			return TCBPolicy{}, &UnknownTCBStatusError{Policy: s, Status: p}
		}
		ok[p] = true
	}
	return TCBPolicy{s, func(st string) bool { return ok[st] }}, nil
}

// UnknownTCBStatusError is a TCB policy naming a status that does not exist.
type UnknownTCBStatusError struct{ Policy, Status string }

func (e *UnknownTCBStatusError) Error() string {
	return fmt.Sprintf("TCB policy %q: unknown status %q (want default, strict, or a comma-separated list of %s)", e.Policy, e.Status, strings.Join(TCBStatuses(), ", "))
}

// TCBStatuses lists the TCB status names a policy may name, sorted.
func TCBStatuses() []string {
	names := make([]string, 0, len(tcbStatusRank))
	for n := range tcbStatusRank {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Accepts reports whether status meets the policy.
func (p TCBPolicy) Accepts(status string) bool { return p.accepts(status) }
