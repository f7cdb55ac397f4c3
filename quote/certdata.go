package quote

import (
	"encoding/binary"
	"fmt"
)

// Certification data types (Intel DCAP, sgx_quote_4.h).
const (
	CertDataPCKChain       = 5 // PEM: PCK leaf, PCK Platform/Processor CA, Root CA
	CertDataQEReportCertif = 6 // QE report certification data, wrapping type 5
)

// Sizes inside ECDSA-P256 signature data.
const (
	ecdsaP256SigLen = 64
	ecdsaP256KeyLen = 64
	// SGXReportBodyLen is the QE's SGX report body (sgx_report_body_t).
	SGXReportBodyLen = 384
	// maxPCKChainLen bounds the PEM chain; real ones are ~4 KiB.
	maxPCKChainLen = 64 << 10
)

// SignatureData is the ECDSA-P256 signature data of a TDX quote with QE report certification
// data, split into its parts. Byte fields alias the quote.
type SignatureData struct {
	Signature      []byte // r ‖ s over the quote's header and body
	AttestationKey []byte // x ‖ y of the attestation key (P-256)
	QEReport       []byte // the QE's SGX report body (384 bytes)
	QEReportSig    []byte // r ‖ s of the PCK leaf key over QEReport
	QEAuthData     []byte
	PCKChainPEM    []byte // certification data type 5
}

// SGX report body fields the checks read (offsets in sgx_report_body_t).
const (
	reportMiscSelectOff = 16
	reportAttributesOff = 48
	reportMRSignerOff   = 128
	reportISVProdIDOff  = 256
	reportISVSVNOff     = 258
	reportDataOff       = 320
)

// ParseSignatureData splits q's signature data. Only attestation key type 2 (ECDSA-P256) with
// certification data type 6 wrapping type 5 is accepted: that is what TDX quotes carry, and
// anything else cannot be verified here.
func (q *Quote) ParseSignatureData() (*SignatureData, error) {
	if q.Header.AttestationKeyType != AttKeyECDSAP256 {
		return nil, fmt.Errorf("%w: attestation key type %d: only 2 (ECDSA-P256) is verifiable", ErrMalformed, q.Header.AttestationKeyType)
	}
	f, err := splitSignatureData(q.Header.AttestationKeyType, q.SignatureData)
	if err != nil {
		return nil, err
	}
	if f.certType != CertDataQEReportCertif {
		return nil, fmt.Errorf("%w: certification data type %d: want 6 (QE report certification data)", ErrMalformed, f.certType)
	}
	s := &SignatureData{Signature: f.signature, AttestationKey: f.attestationKey}
	outer := f.certData
	in := &reader{buf: outer}
	if s.QEReport, err = in.take("QE report", SGXReportBodyLen); err != nil {
		return nil, err
	}
	if s.QEReportSig, err = in.take("QE report signature", ecdsaP256SigLen); err != nil {
		return nil, err
	}
	authLen, err := in.u16("QE authentication data size")
	if err != nil {
		return nil, err
	}
	if s.QEAuthData, err = in.take("QE authentication data", int(authLen)); err != nil {
		return nil, err
	}
	innerType, err := in.u16("PCK certification data type")
	if err != nil {
		return nil, err
	}
	if innerType != CertDataPCKChain {
		return nil, fmt.Errorf("%w: QE report certification data wraps type %d: want 5 (PCK certificate chain)", ErrMalformed, innerType)
	}
	chainLen, err := in.u32("PCK certificate chain size")
	if err != nil {
		return nil, err
	}
	if chainLen > maxPCKChainLen {
		return nil, fmt.Errorf("%w: PCK certificate chain of %d bytes, over the %d-byte limit", ErrMalformed, chainLen, maxPCKChainLen)
	}
	if s.PCKChainPEM, err = in.take("PCK certificate chain", int(chainLen)); err != nil {
		return nil, err
	}
	if in.off != len(outer) {
		return nil, fmt.Errorf("%w: %d bytes after the PCK certificate chain", ErrMalformed, len(outer)-in.off)
	}
	return s, nil
}

// qeU16 returns the little-endian u16 at off of the QE report.
func qeU16(report []byte, off int) uint16 { return binary.LittleEndian.Uint16(report[off:]) }
