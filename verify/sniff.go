package verify

// Recognising an input from its content, so that a file given to the wrong flag is named for
// what it is ("this looks like a TDX quote; use --quote") instead of failing deep in a parser
// whose message means nothing to the person who typed the command.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/dstack-mr/dstack-mr/quote"
)

// Form is what an input file holds, as far as its content tells.
type Form int

// The forms Sniff recognises.
const (
	FormUnknown Form = iota
	FormEmpty
	// FormQuote is a binary TDX quote; FormQuoteHex its hex text; FormQuoteBytes a JSON array
	// of its byte values (near/mpc's quote.json).
	FormQuote
	FormQuoteHex
	FormQuoteBytes
	// FormGetQuote is a dstack guest agent GetQuote response {"quote", "event_log", ...}.
	FormGetQuote
	// FormDstackAttestation is dstack's {"attestation": hex}; FormDstackAttestationBinary the
	// encoded attestation itself (SCALE or MessagePack), raw or as hex text.
	FormDstackAttestation
	FormDstackAttestationBinary
	// FormNearAIReport is a NEAR AI cloud attestation report (gateway_attestation,
	// model_attestations[]); FormNearAICVM one CVM's entry of it ({"intel_quote", ...}).
	FormNearAIReport
	FormNearAICVM
	// FormNearMPCPublicData is a NEAR MPC node's /public_data (tee_participant_info.Dstack).
	FormNearMPCPublicData
	// FormGuestAgentInfo is a dstack guest agent Info response (tcb_info, vm_config).
	FormGuestAgentInfo
	// FormTCBInfo is a bare tcb_info object (mrtd, rtmr0-3, event_log), as near/mpc's
	// tcb_info.json.
	FormTCBInfo
	FormEventLog
	FormVMConfig
	// FormSysConfig is a dstack guest's sys-config, whose vm_config field is the vm_config.
	FormSysConfig
	FormLiteDocument
	FormMetadataJSON
	FormCollateral
	FormAppCompose
	// FormCCEL is a binary TCG event log as the ACPI CCEL table holds it.
	FormCCEL
)

// formInfo says what each form is and where verify takes it.
var formInfo = map[Form]struct{ what, use string }{
	FormUnknown:                 {"an unrecognised file", ""},
	FormEmpty:                   {"an empty file", ""},
	FormQuote:                   {"a binary TDX quote", "use --quote (or `dstack-mr quote verify`)"},
	FormQuoteHex:                {"a TDX quote in hex", "use --quote (or `dstack-mr quote verify`)"},
	FormQuoteBytes:              {"a TDX quote as a JSON array of byte values", "use --quote (or `dstack-mr quote verify`)"},
	FormGetQuote:                {"a GetQuote response", "use --attestation"},
	FormDstackAttestation:       {`a dstack attestation ({"attestation": hex})`, "use --attestation"},
	FormDstackAttestationBinary: {"an encoded dstack attestation (SCALE or MessagePack)", "use --attestation"},
	FormNearAIReport:            {"a NEAR AI cloud attestation report", "use --attestation (--cvm picks one CVM)"},
	FormNearAICVM:               {"one CVM's entry of a NEAR AI cloud attestation report", "use --attestation"},
	FormNearMPCPublicData:       {"a NEAR MPC node's public_data.json", "use --attestation"},
	FormGuestAgentInfo:          {"a dstack guest agent Info response", "use --info"},
	FormTCBInfo:                 {"a tcb_info document (registers and event log, no quote)", "use --info, or --event-log beside --quote"},
	FormEventLog:                {"an event log", "use --event-log"},
	FormVMConfig:                {"a vm_config", "use --vm-config"},
	FormSysConfig:               {"a dstack sys-config (holding a vm_config)", "use --vm-config"},
	FormLiteDocument:            {"a measurement document (measurement.tdx.cbor)", "use --measurement"},
	FormMetadataJSON:            {"a dstack image's metadata.json", "give it (or its directory) as the IMAGE argument"},
	FormCollateral:              {"Intel collateral (QuoteCollateralV3)", "use --collateral"},
	FormAppCompose:              {"an app-compose document", "use --app-compose"},
	FormCCEL:                    {"a binary CCEL event log (the ACPI table)", ""},
}

// String says what the form is, e.g. "a binary TDX quote".
func (f Form) String() string { return formInfo[f].what }

// VerifyHint says where `dstack-mr verify` takes this form, e.g. "use --quote" ("" when it
// does not read it).
func (f Form) VerifyHint() string { return formInfo[f].use }

// CarriesQuote reports whether the form holds a TDX quote.
func (f Form) CarriesQuote() bool {
	switch f {
	case FormQuote, FormQuoteHex, FormQuoteBytes, FormGetQuote, FormDstackAttestation, FormDstackAttestationBinary,
		FormNearAIReport, FormNearAICVM, FormNearMPCPublicData:
		return true
	}
	return false
}

// maxSniffBytes bounds what Sniff decodes; inputs are bounded by their readers before that.
const maxSniffBytes = 64 << 20

// Sniff recognises an input by its content alone (never its file name).
func Sniff(data []byte) Form {
	f, _ := sniff(data)
	return f
}

// sniff also returns, for a JSON object it does not recognise, its top-level keys.
func sniff(data []byte) (Form, []string) {
	if len(data) > maxSniffBytes {
		return FormUnknown, nil
	}
	t := bytes.TrimSpace(data)
	if len(t) == 0 {
		return FormEmpty, nil
	}
	switch {
	case isQuoteHeader(data):
		return FormQuote, nil
	case isCCEL(data):
		return FormCCEL, nil
	case isLiteCBOR(data):
		return FormLiteDocument, nil
	case isBinaryAttestation(data):
		return FormDstackAttestationBinary, nil
	}
	switch t[0] {
	case '{':
		var obj map[string]json.RawMessage
		if json.Unmarshal(t, &obj) != nil {
			return FormUnknown, nil
		}
		return sniffObject(obj)
	case '[':
		var list []json.RawMessage
		if json.Unmarshal(t, &list) != nil {
			return FormUnknown, nil
		}
		return sniffList(list), nil
	case '"':
		var s string
		if json.Unmarshal(t, &s) != nil {
			return FormUnknown, nil
		}
		inner := strings.TrimSpace(s)
		if strings.HasPrefix(inner, "[") || strings.HasPrefix(inner, "{") {
			return sniff([]byte(inner))
		}
		return sniffHex([]byte(inner)), nil
	}
	return sniffHex(t), nil
}

func sniffHex(t []byte) Form {
	b := quote.DecodeHexOrBinary(t)
	if len(b) == len(t) {
		return FormUnknown // not hex text
	}
	switch {
	case isQuoteHeader(b):
		return FormQuoteHex
	case isBinaryAttestation(b):
		return FormDstackAttestationBinary
	}
	return FormUnknown
}

func sniffObject(obj map[string]json.RawMessage) (Form, []string) {
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := obj[k]; !ok {
				return false
			}
		}
		return true
	}
	switch {
	case has("gateway_attestation") || has("model_attestations"):
		return FormNearAIReport, nil
	case has("intel_quote"):
		return FormNearAICVM, nil
	case has("tee_participant_info"):
		return FormNearMPCPublicData, nil
	case has("quote"): // some GetQuote responses carry the encoded attestation too
		return FormGetQuote, nil
	case has("attestation"):
		return FormDstackAttestation, nil
	case has("tcb_info") && !has("tcb_info_issuer_chain"):
		return FormGuestAgentInfo, nil
	case has("mrtd", "rtmr0"):
		return FormTCBInfo, nil
	case has("tcb_info_issuer_chain") || has("pck_crl_issuer_chain") || has("qe_identity_issuer_chain"):
		return FormCollateral, nil
	case has("kernel", "cmdline") || has("bios", "kernel"):
		return FormMetadataJSON, nil
	case has("manifest_version") || has("docker_compose_file") || has("runner"):
		return FormAppCompose, nil
	case has("vm_config") && (has("kms_urls") || has("gateway_urls") || has("host_api_url")):
		return FormSysConfig, nil
	case has("cpu_count") || has("memory_size") || has("spec_version") || has("os_image_hash") || has("qemu_version"):
		return FormVMConfig, nil
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return FormUnknown, keys
}

func sniffList(list []json.RawMessage) Form {
	if len(list) == 0 {
		return FormEventLog
	}
	first := bytes.TrimSpace(list[0])
	switch {
	case len(first) > 0 && first[0] >= '0' && first[0] <= '9':
		return FormQuoteBytes
	case len(first) > 0 && first[0] == '{':
		var e map[string]json.RawMessage
		if json.Unmarshal(first, &e) == nil {
			if _, ok := e["imr"]; ok {
				return FormEventLog
			}
			if _, ok := e["event_type"]; ok {
				return FormEventLog
			}
		}
	}
	return FormUnknown
}

// isQuoteHeader recognises a TDX quote's header: version 4 or 5, an ECDSA attestation key and
// the TDX TEE type.
func isQuoteHeader(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	v, k, tee := binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:]), binary.LittleEndian.Uint32(b[4:])
	return (v == 4 || v == 5) && (k == quote.AttKeyECDSAP256 || k == quote.AttKeyECDSAP384) && tee == quote.TEETypeTDX
}

// isCCEL recognises a TCG event log: its first event is the EV_NO_ACTION "Spec ID Event03"
// header (PCR index, type, 20-byte SHA-1 digest, size, then the signature).
func isCCEL(b []byte) bool {
	return len(b) >= 48 && binary.LittleEndian.Uint32(b[4:]) == 3 && bytes.HasPrefix(b[32:], []byte("Spec ID Event03"))
}

// isLiteCBOR recognises a measurement.tdx.cbor: a CBOR map (major type 5) naming the tdvf and
// image sections.
func isLiteCBOR(b []byte) bool {
	if len(b) == 0 || b[0]>>5 != 5 {
		return false
	}
	return bytes.Contains(b, []byte("\x64tdvf")) && bytes.Contains(b, []byte("\x65image"))
}

// isBinaryAttestation recognises an encoded dstack attestation by decoding it whole.
func isBinaryAttestation(b []byte) bool {
	if len(b) < 2 || len(b) > maxBinaryAttestation {
		return false
	}
	_, err := decodeBinaryAttestationBytes(b)
	return err == nil
}

// WrongInput is the error for a file given where another form was wanted: it says what the
// file looks like and where it goes.
func WrongInput(wanted string, data []byte) error {
	f, keys := sniff(data)
	switch {
	case f == FormUnknown && keys != nil:
		shown := keys
		if len(shown) > 6 {
			shown = append(shown[:6:6], "…")
		}
		return fmt.Errorf("want %s, got a JSON object with keys %s, which is none of the forms dstack-mr reads", wanted, strings.Join(shown, ", "))
	case f == FormUnknown:
		return fmt.Errorf("want %s; this file is none of the forms dstack-mr reads", wanted)
	case f == FormEmpty:
		return fmt.Errorf("want %s, got an empty file", wanted)
	case f.VerifyHint() == "":
		return fmt.Errorf("this looks like %s, which dstack-mr does not read (not supported yet); want %s", f, wanted)
	}
	return fmt.Errorf("this looks like %s, not %s; %s", f, wanted, f.VerifyHint())
}
