package service

// dstack's verifier API (dstack/verifier/src/types.rs, verification.rs, read as the
// specification): the request, the response and how a verify.Report maps onto it.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/policy"
	"github.com/dstack-mr/dstack-mr/verify"
)

// VerifyRequest is dstack's VerificationRequest. Every field is optional and unknown fields
// are ignored, so a guest agent's GetQuote response posts unchanged.
type VerifyRequest struct {
	// Quote is the TDX quote as hex.
	Quote json.RawMessage `json:"quote"`
	// EventLog is a string holding the JSON event list (dstack's form); a list is taken too.
	EventLog json.RawMessage `json:"event_log"`
	// VMConfig is a string holding the vm_config JSON; an object is taken too.
	VMConfig json.RawMessage `json:"vm_config"`
	// Attestation is dstack's versioned attestation as hex; when present the other three are
	// ignored, as dstack's verifier ignores them.
	Attestation json.RawMessage `json:"attestation"`
	Debug       json.RawMessage `json:"debug"`
}

// VerifyResponse is dstack's VerificationResponse.
type VerifyResponse struct {
	IsValid bool    `json:"is_valid"`
	Reason  *string `json:"reason"`
	Details Details `json:"details"`
}

// Details is dstack's VerificationDetails, plus this tool's whole report and the policy's
// answer.
type Details struct {
	QuoteVerified       bool                  `json:"quote_verified"`
	EventLogVerified    bool                  `json:"event_log_verified"`
	OSImageHashVerified bool                  `json:"os_image_hash_verified"`
	ACPITablesVerified  bool                  `json:"acpi_tables_verified"`
	OSImageIsDev        *bool                 `json:"os_image_is_dev"`
	OSImageVersion      *string               `json:"os_image_version"`
	TEEVariant          *string               `json:"tee_variant"`
	ReportData          *string               `json:"report_data"`
	TCBStatus           *string               `json:"tcb_status"`
	AdvisoryIDs         []string              `json:"advisory_ids"`
	KeyProvider         *eventlog.KeyProvider `json:"key_provider"`
	AppInfo             *AppInfo              `json:"app_info"`
	BootInfo            *policy.BootInfo      `json:"boot_info,omitempty"`
	// Policy is the --policy answer over BootInfo (/bootAuth/app's question).
	Policy *PolicyAnswer `json:"policy,omitempty"`
	// Report is this tool's whole verify --json report: every check made and not made.
	Report *verify.Report `json:"report,omitempty"`
}

// AppInfo is dstack-attest's AppInfo: lowercase hex without 0x.
type AppInfo struct {
	AppID            string   `json:"app_id"`
	ComposeHash      string   `json:"compose_hash"`
	InstanceID       string   `json:"instance_id"`
	DeviceID         string   `json:"device_id"`
	MRSystem         string   `json:"mr_system"`
	MRAggregated     string   `json:"mr_aggregated"`
	OSImageHash      string   `json:"os_image_hash"`
	KeyProviderInfo  string   `json:"key_provider_info"`
	InitScriptHashes []string `json:"init_script_hashes"`
}

// PolicyAnswer is the policy's verdict over the CVM's BootInfo.
type PolicyAnswer struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
}

// errorBody is the answer to a request that is not a verification request at all.
type errorBody struct {
	Error string `json:"error"`
}

// Reason prefixes, as dstack's verifier words them.
const (
	reasonQuote    = "Quote verification failed: "
	reasonOSImage  = "OS image hash verification failed: "
	reasonEventLog = "Event log verification failed: "
	reasonInternal = "Internal error: "
)

// tcbNotEvaluated is details.tcb_status when no collateral was available for the quote's FMSPC.
const tcbNotEvaluated = "not evaluated"

// badRequest is a body that is not a verification request: HTTP 400.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// parseVerifyRequest reads the body into verify's input: a GetQuote-shaped JSON or dstack's
// {"attestation": hex}. missing is dstack's answer for a request without a quote or event log
// ("Event log is required", "Quote is required"), which is not a malformed body.
func parseVerifyRequest(body []byte) (attestation []byte, missing string, err error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, "", badf("empty body: want a JSON object (quote, event_log, vm_config, or attestation)")
	}
	if trimmed[0] != '{' {
		return nil, "", badf("want a JSON object (quote, event_log, vm_config, or attestation)")
	}
	var req VerifyRequest
	if err := json.Unmarshal(trimmed, &req); err != nil {
		return nil, "", badf("body is not valid JSON: %v", err)
	}
	if present(req.Debug) {
		var d bool
		if err := json.Unmarshal(req.Debug, &d); err != nil {
			return nil, "", badf("debug: want true or false")
		}
	}
	// The object verify reads is assembled from the fields as received (already valid JSON,
	// hex checked), not re-encoded: the body is parsed once here and once by verify.
	if present(req.Attestation) {
		h, err := hexField("attestation", req.Attestation)
		if err != nil {
			return nil, "", err
		}
		return assemble("attestation", `"`+h+`"`), "", nil
	}
	if !present(req.Quote) {
		return nil, "Quote is required", nil
	}
	q, err := hexField("quote", req.Quote)
	if err != nil {
		return nil, "", err
	}
	if !present(req.EventLog) {
		return nil, "Event log is required", nil
	}
	if err := stringOr(req.EventLog, "event_log", '['); err != nil {
		return nil, "", err
	}
	fields := []string{"quote", `"` + q + `"`, "event_log", string(req.EventLog)}
	if present(req.VMConfig) {
		if err := stringOr(req.VMConfig, "vm_config", '{'); err != nil {
			return nil, "", err
		}
		fields = append(fields, "vm_config", string(req.VMConfig))
	}
	return assemble(fields...), "", nil
}

// assemble writes {"k1": v1, ...} from keys and JSON values that are already valid.
func assemble(kv ...string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + kv[i] + `":`)
		b.WriteString(kv[i+1])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// present: the field was given as something other than null.
func present(m json.RawMessage) bool {
	return len(m) > 0 && string(m) != "null"
}

// hexField reads a JSON string of hex (0x optional), as dstack's serde_human_bytes does.
func hexField(name string, raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", badf("%s: want a hex string", name)
	}
	s = strings.TrimPrefix(strings.TrimSpace(s), "0x")
	if len(s)%2 == 1 {
		return "", badf("%s: not hex: odd length %d", name, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", badf("%s: not hex: %q at offset %d", name, c, i)
		}
	}
	return s, nil
}

// stringOr accepts dstack's form (a JSON string holding the document) or the document itself
// (a JSON value starting with open).
func stringOr(raw json.RawMessage, name string, open byte) error {
	t := bytes.TrimSpace(raw)
	if len(t) > 0 && (t[0] == '"' || t[0] == open) {
		return nil
	}
	return badf("%s: want a string holding the JSON (dstack's form)", name)
}

// internalError is dstack's answer when verification could not run.
func internalError(msg string) *VerifyResponse {
	r := reasonInternal + msg
	return &VerifyResponse{Reason: &r, Details: Details{AdvisoryIDs: []string{}}}
}

// checkCategory sorts the report's checks into dstack's three failure reasons.
func checkCategory(name string) string {
	switch {
	case name == "quote", name == "quote-authentic", name == "td-attributes", name == "report-data", name == "tcb-status", name == "revocation":
		return reasonQuote
	case name == "event-log", strings.HasSuffix(name, "-replay"), strings.HasPrefix(name, "rtmr3-"),
		name == "mr-config-id", name == "mr-config-document", name == "boot-info":
		return reasonEventLog
	case name == "policy", name == "vm-config-fields":
		return "" // not part of the verdict
	}
	return reasonOSImage
}

// respond maps a verify report onto dstack's response. is_valid is the report's verdict.
func respond(rep *verify.Report, img *imageFacts) *VerifyResponse {
	d := Details{AdvisoryIDs: []string{}, Report: rep}
	failed := map[string][]string{}
	for _, c := range rep.Checks {
		if !c.OK {
			cat := checkCategory(c.Name)
			failed[cat] = append(failed[cat], c.Name+": "+c.Detail)
		}
	}
	for _, n := range rep.NotChecked {
		if n.Required {
			cat := checkCategory(n.Name)
			failed[cat] = append(failed[cat], n.Name+" not checked: "+n.Reason)
		}
	}
	passed := func(name string) bool {
		for _, c := range rep.Checks {
			if c.Name == name {
				return c.OK
			}
		}
		return false
	}
	// As dstack's verifier, what the quote says is reported only once the quote is authentic,
	// and the key provider only once the event log replays.
	if v := rep.QuoteVerification; v != nil && v.Authentic {
		d.QuoteVerified = len(failed[reasonQuote]) == 0
		t := "dstack-tdx"
		d.TEEVariant = &t
		if v.TCBStatus != nil {
			d.TCBStatus = v.TCBStatus
		} else {
			s := tcbNotEvaluated
			d.TCBStatus = &s
		}
		if v.AdvisoryIDs != nil {
			d.AdvisoryIDs = v.AdvisoryIDs
		}
	}
	if rep.Quote != nil && d.TEEVariant != nil {
		s := hex.EncodeToString(rep.Quote.ReportData)
		d.ReportData = &s
	}
	d.EventLogVerified = d.QuoteVerified && passed("rtmr3-replay") && len(failed[reasonEventLog]) == 0
	d.OSImageHashVerified = rep.App != nil && rep.App.OSImageHash != nil && passed("mrtd") &&
		passed("rtmr0") && passed("rtmr1") && passed("rtmr2") && len(failed[reasonOSImage]) == 0
	d.ACPITablesVerified = passed("acpi-digests")
	if img != nil {
		d.OSImageIsDev = img.isDev
		if img.version != "" {
			v := img.version
			d.OSImageVersion = &v
		}
	}
	if d.EventLogVerified && rep.RTMR3 != nil && rep.RTMR3.KeyProvider != nil {
		d.KeyProvider = rep.RTMR3.KeyProvider
	}
	if rep.Policy != nil {
		reason := rep.Policy.Reason
		if rep.Policy.Detail != "" {
			reason += " (" + rep.Policy.Detail + ")"
		}
		d.Policy = &PolicyAnswer{Allowed: rep.Policy.Allowed, Reason: reason}
	} else {
		for _, n := range rep.NotChecked {
			if n.Name == "policy" {
				d.Policy = &PolicyAnswer{Allowed: false, Reason: n.Reason}
			}
		}
	}
	resp := &VerifyResponse{IsValid: rep.Verified, Details: d}
	if rep.Verified {
		if b := rep.BootInfo; b != nil {
			resp.Details.BootInfo = b
			resp.Details.AppInfo = appInfo(b, rep)
		}
		return resp
	}
	for _, cat := range []string{reasonQuote, reasonOSImage, reasonEventLog} {
		if len(failed[cat]) > 0 {
			r := cat + strings.Join(failed[cat], "; ")
			resp.Reason = &r
			return resp
		}
	}
	r := reasonInternal + "not verified, and no check names why"
	resp.Reason = &r
	return resp
}

func appInfo(b *policy.BootInfo, rep *verify.Report) *AppInfo {
	a := &AppInfo{AppID: b.AppID, ComposeHash: b.ComposeHash, InstanceID: b.InstanceID, DeviceID: b.DeviceID,
		MRSystem: b.MRSystem, MRAggregated: b.MRAggregated, OSImageHash: b.OSImageHash, KeyProviderInfo: b.KeyProviderInfo,
		InitScriptHashes: []string{}}
	if rep.RTMR3 != nil {
		for _, h := range rep.RTMR3.InitScriptHashes {
			a.InitScriptHashes = append(a.InitScriptHashes, hex.EncodeToString(h))
		}
	}
	return a
}

// imageFacts are what the image store knows of the expected image a request used.
type imageFacts struct {
	hash    string
	isDev   *bool
	version string
}

var errTimeout = errors.New("the verification did not finish within the per-request deadline")
