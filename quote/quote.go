// Package quote parses Intel TDX DCAP quotes (versions 4 and 5) and checks their authenticity
// offline: Parse reads the header, the TD report body and the signature data framing; Verify
// checks the attestation key's signature, the QE report's signature by the PCK leaf, the QE
// report data binding the attestation key, and the PCK chain up to Intel's SGX Root CA, pinned
// in this package (authenticity.go). TCB status and revocation need Intel's collateral and are
// reported as not checked without it. A parsed Quote alone proves nothing:
// Quote.SignatureVerified stays false and says so in JSON.
//
// Layouts follow Intel's "TDX DCAP Quote Generation Library and Quote Verification Library"
// (sgx_quote_4.h / sgx_quote_5.h): a 48-byte header, then for v4 a 584-byte TD report, for v5 a
// body descriptor (type u16, size u32) and a TD report 1.0 (584 bytes) or 1.5 (648 bytes),
// then a u32 signature data length and the signature data.
package quote

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrMalformed wraps every structural error of a quote.
var ErrMalformed = errors.New("malformed TDX quote")

// Field sizes of the quote layout.
const (
	HeaderLen         = 48
	TDReport10Len     = 584
	TDReport15Len     = 648
	v5DescriptorLen   = 6
	sigDataLenFieldSz = 4
	measurementLen    = 48

	// MaxQuoteLen bounds what Parse accepts; real quotes are a few KiB (the PCK chain dominates).
	MaxQuoteLen = 1 << 20
)

// TEETypeTDX is the header's TEE type for a TD quote (0x00 would be SGX).
const TEETypeTDX = 0x81

// v5 body types (sgx_quote_5.h).
const (
	BodyTypeSGXEnclave = 1
	BodyTypeTDReport10 = 2
	BodyTypeTDReport15 = 3
)

// Attestation key types.
const (
	AttKeyECDSAP256 = 2
	AttKeyECDSAP384 = 3
)

// Hex is a byte string that marshals to lowercase hex in JSON.
type Hex []byte

func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

func (h Hex) String() string { return hex.EncodeToString(h) }

// Header is the 48-byte quote header.
type Header struct {
	Version            uint16 `json:"version"`
	AttestationKeyType uint16 `json:"attestation_key_type"`
	TEEType            uint32 `json:"tee_type"`
	// Reserved holds what v3 called QE SVN and PCE SVN; v4/v5 leave it reserved.
	Reserved   Hex `json:"reserved"`
	QEVendorID Hex `json:"qe_vendor_id"`
	UserData   Hex `json:"user_data"`
}

// TDReport is the TD quote body: a TD report 1.0, or 1.5 with TEE_TCB_SVN2 and MRSERVICETD.
type TDReport struct {
	TEETCBSVN      Hex    `json:"tee_tcb_svn"`
	MRSEAM         Hex    `json:"mr_seam"`
	MRSignerSEAM   Hex    `json:"mr_signer_seam"`
	SEAMAttributes Hex    `json:"seam_attributes"`
	TDAttributes   Hex    `json:"td_attributes"`
	XFAM           Hex    `json:"xfam"`
	MRTD           Hex    `json:"mr_td"`
	MRConfigID     Hex    `json:"mr_config_id"`
	MROwner        Hex    `json:"mr_owner"`
	MROwnerConfig  Hex    `json:"mr_owner_config"`
	RTMR           [4]Hex `json:"rtmr"`
	ReportData     Hex    `json:"report_data"`
	// Only in TD report 1.5 (v5 body type 3).
	TEETCBSVN2  Hex `json:"tee_tcb_svn2,omitempty"`
	MRServiceTD Hex `json:"mr_service_td,omitempty"`
}

// Quote is a parsed TDX quote. Byte fields alias the input buffer.
type Quote struct {
	Header Header `json:"header"`
	// BodyType is the v5 body descriptor type; v4 quotes always carry a TD report 1.0 (2).
	BodyType uint16   `json:"body_type"`
	Report   TDReport `json:"td_report"`
	// SignatureData is the raw signature data (ECDSA signature, attestation key and
	// certification data), unparsed and unverified.
	SignatureData Hex `json:"-"`
	// Signed is what the attestation key signs: the header and the body (with the v5 body
	// descriptor), everything before the signature data length.
	Signed Hex `json:"-"`
	// SignatureDataLen is len(SignatureData), as declared by the quote.
	SignatureDataLen int `json:"signature_data_len"`
	// PaddingLen counts the zero bytes after the signature data.
	PaddingLen int `json:"padding_len"`
	// SignatureVerified is always false: this package does not check signatures or collateral.
	SignatureVerified bool   `json:"signature_verified"`
	SignatureNote     string `json:"signature_note"`
}

// SignatureNotVerified is the note every parsed quote carries.
const SignatureNotVerified = "parsing does not verify the quote: see quote.Verify (dstack-mr quote verify)"

// reader walks a buffer, naming the field whose bytes run out.
type reader struct {
	buf []byte
	off int
}

func (r *reader) take(field string, n int) ([]byte, error) {
	if n < 0 || r.off+n > len(r.buf) {
		return nil, fmt.Errorf("%w: truncated at %s (offset %d needs %d bytes, quote has %d)", ErrMalformed, field, r.off, n, len(r.buf))
	}
	b := r.buf[r.off : r.off+n : r.off+n]
	r.off += n
	return b, nil
}

func (r *reader) u16(field string) (uint16, error) {
	b, err := r.take(field, 2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (r *reader) u32(field string) (uint32, error) {
	b, err := r.take(field, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// Parse decodes a binary quote. The signature data must end exactly where the quote ends.
func Parse(data []byte) (*Quote, error) {
	if len(data) > MaxQuoteLen {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrMalformed, len(data), MaxQuoteLen)
	}
	r := &reader{buf: data}
	q := &Quote{SignatureNote: SignatureNotVerified}
	if err := parseHeader(r, &q.Header); err != nil {
		return nil, err
	}
	bodyLen := TDReport10Len
	q.BodyType = BodyTypeTDReport10
	switch q.Header.Version {
	case 4:
	case 5:
		bt, err := r.u16("body type")
		if err != nil {
			return nil, err
		}
		size, err := r.u32("body size")
		if err != nil {
			return nil, err
		}
		q.BodyType = bt
		switch bt {
		case BodyTypeTDReport10:
			bodyLen = TDReport10Len
		case BodyTypeTDReport15:
			bodyLen = TDReport15Len
		case BodyTypeSGXEnclave:
			return nil, fmt.Errorf("%w: body type %d is an SGX enclave report, not a TD report", ErrMalformed, bt)
		default:
			return nil, fmt.Errorf("%w: unknown body type %d", ErrMalformed, bt)
		}
		if int64(size) != int64(bodyLen) {
			return nil, fmt.Errorf("%w: body size %d inconsistent with body type %d (want %d)", ErrMalformed, size, bt, bodyLen)
		}
	default:
		return nil, fmt.Errorf("%w: unsupported version %d (want 4 or 5)", ErrMalformed, q.Header.Version)
	}
	body, err := r.take("TD report", bodyLen)
	if err != nil {
		return nil, err
	}
	parseTDReport(body, &q.Report)
	q.Signed = data[:r.off:r.off]
	sigLen, err := r.u32("signature data length")
	if err != nil {
		return nil, err
	}
	rest := len(data) - r.off
	if int64(sigLen) > int64(rest) {
		return nil, fmt.Errorf("%w: signature data length %d inconsistent with the %d bytes that follow", ErrMalformed, sigLen, rest)
	}
	// Quote generation hands out a fixed-size buffer: real quotes arrive zero padded.
	end := r.off + int(sigLen)
	if !allZero(data[end:]) {
		return nil, fmt.Errorf("%w: signature data length %d leaves %d trailing bytes that are not zero padding", ErrMalformed, sigLen, len(data)-end)
	}
	q.SignatureData = data[r.off:end:end]
	q.SignatureDataLen = int(sigLen)
	q.PaddingLen = len(data) - end
	if _, err := splitSignatureData(q.Header.AttestationKeyType, q.SignatureData); err != nil {
		return nil, err
	}
	return q, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func parseHeader(r *reader, h *Header) error {
	var err error
	if h.Version, err = r.u16("header version"); err != nil {
		return err
	}
	if h.AttestationKeyType, err = r.u16("header attestation key type"); err != nil {
		return err
	}
	if h.TEEType, err = r.u32("header TEE type"); err != nil {
		return err
	}
	if h.Reserved, err = r.take("header reserved", 4); err != nil {
		return err
	}
	if h.QEVendorID, err = r.take("header QE vendor ID", 16); err != nil {
		return err
	}
	if h.UserData, err = r.take("header user data", 20); err != nil {
		return err
	}
	if h.TEEType != TEETypeTDX {
		return fmt.Errorf("%w: header TEE type 0x%x is not TDX (0x81)", ErrMalformed, h.TEEType)
	}
	if h.AttestationKeyType != AttKeyECDSAP256 && h.AttestationKeyType != AttKeyECDSAP384 {
		return fmt.Errorf("%w: header attestation key type %d unknown (want 2 = ECDSA-P256 or 3 = ECDSA-P384)", ErrMalformed, h.AttestationKeyType)
	}
	return nil
}

// parseTDReport slices a body whose length the caller checked (584 or 648 bytes).
func parseTDReport(b []byte, t *TDReport) {
	off := 0
	next := func(n int) Hex {
		v := Hex(b[off : off+n : off+n])
		off += n
		return v
	}
	t.TEETCBSVN = next(16)
	t.MRSEAM = next(measurementLen)
	t.MRSignerSEAM = next(measurementLen)
	t.SEAMAttributes = next(8)
	t.TDAttributes = next(8)
	t.XFAM = next(8)
	t.MRTD = next(measurementLen)
	t.MRConfigID = next(measurementLen)
	t.MROwner = next(measurementLen)
	t.MROwnerConfig = next(measurementLen)
	for i := range t.RTMR {
		t.RTMR[i] = next(measurementLen)
	}
	t.ReportData = next(64)
	if len(b) == TDReport15Len {
		t.TEETCBSVN2 = next(16)
		t.MRServiceTD = next(measurementLen)
	}
}

// signatureDataFrame is the outer framing of ECDSA quote signature data.
type signatureDataFrame struct {
	signature, attestationKey []byte
	certType                  uint16
	certData                  []byte
}

// splitSignatureData splits ECDSA quote signature data: signature, attestation public key, then
// certification data type (u16), size (u32) and exactly that much data.
func splitSignatureData(keyType uint16, sig []byte) (*signatureDataFrame, error) {
	sigLen, keyLen := ecdsaP256SigLen, ecdsaP256KeyLen
	if keyType == AttKeyECDSAP384 {
		sigLen, keyLen = 96, 96
	}
	r := &reader{buf: sig}
	f := &signatureDataFrame{}
	var err error
	if f.signature, err = r.take("signature data ECDSA signature", sigLen); err != nil {
		return nil, err
	}
	if f.attestationKey, err = r.take("signature data attestation key", keyLen); err != nil {
		return nil, err
	}
	if f.certType, err = r.u16("signature data certification data type"); err != nil {
		return nil, err
	}
	n, err := r.u32("signature data certification data size")
	if err != nil {
		return nil, err
	}
	if int64(n) != int64(len(sig)-r.off) {
		return nil, fmt.Errorf("%w: certification data size %d inconsistent with the %d bytes that follow", ErrMalformed, n, len(sig)-r.off)
	}
	f.certData = sig[r.off:]
	return f, nil
}

// ParseAuto accepts a binary quote or its hex encoding (optionally "0x"-prefixed, surrounding
// whitespace and a JSON string's quotes ignored). Binary quotes start with version 4 or 5 as a
// little-endian u16, whose first byte is never an ASCII hex digit, so the two cannot be confused.
func ParseAuto(data []byte) (*Quote, error) {
	if b, ok := decodeHexText(data); ok {
		return Parse(b)
	}
	return Parse(data)
}

// DecodeHexOrBinary returns data's bytes, hex-decoding it when it is hex text.
func DecodeHexOrBinary(data []byte) []byte {
	if b, ok := decodeHexText(data); ok {
		return b
	}
	return data
}

func decodeHexText(data []byte) ([]byte, bool) {
	s := bytes.TrimSpace(data)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = bytes.TrimSpace(s[1 : len(s)-1])
	}
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	if len(s) == 0 || len(s)%2 != 0 || len(s) > 2*MaxQuoteLen {
		return nil, false
	}
	out := make([]byte, len(s)/2)
	if _, err := hex.Decode(out, s); err != nil {
		return nil, false
	}
	return out, true
}
