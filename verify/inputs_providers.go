package verify

// The forms providers publish attestations in, read natively: NEAR AI cloud attestation
// reports (several CVMs in one file), NEAR MPC nodes' public_data.json and tcb_info.json, and
// quotes written as JSON arrays of byte values.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/quote"
)

// NamedInput is one CVM's attestation out of an input that may hold several.
type NamedInput struct {
	// Name identifies the CVM within its report ("gateway", "model[0]",
	// "model[0].compose-manager"); empty when the input holds a single CVM.
	Name string `json:"name"`
	// Label is what the report says the CVM serves (a NEAR AI model name), if anything.
	Label string `json:"label,omitempty"`
	// Attestation is the CVM's attestation, in a form Options.Attestation reads.
	Attestation []byte `json:"-"`
}

// Title is the name and label, for headings.
func (n NamedInput) Title() string {
	if n.Label == "" {
		return n.Name
	}
	return n.Name + " (" + n.Label + ")"
}

// nearAIReport is a NEAR AI cloud attestation report: the gateway's attestation and one per
// model server, each model server possibly with a second quote from its compose manager.
type nearAIReport struct {
	Gateway json.RawMessage   `json:"gateway_attestation"`
	Models  []json.RawMessage `json:"model_attestations"`
}

// nearAICVM is one CVM's entry of a NEAR AI report.
type nearAICVM struct {
	IntelQuote *string          `json:"intel_quote"`
	EventLog   json.RawMessage  `json:"event_log"`
	ReportData *string          `json:"report_data"`
	ModelName  string           `json:"model_name"`
	Info       *json.RawMessage `json:"info"`
	// ComposeManager is a GetQuote-shaped second quote of the same VM (other report data).
	ComposeManager json.RawMessage `json:"compose_manager_attestation"`
}

// SplitAttestations returns one entry per CVM an attestation input holds: one for every form
// Options.Attestation reads, several for a NEAR AI cloud report (the gateway, each model server
// and each model server's compose-manager quote).
func SplitAttestations(data []byte) ([]NamedInput, error) {
	if Sniff(data) != FormNearAIReport {
		return []NamedInput{{Attestation: data}}, nil
	}
	var rep nearAIReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("NEAR AI report: %s", jsonProblem(err))
	}
	var out []NamedInput
	if present((*json.RawMessage)(&rep.Gateway)) {
		if Sniff(rep.Gateway) != FormNearAICVM {
			return nil, errors.New("NEAR AI report: gateway_attestation is not an attestation (an object with intel_quote)")
		}
		out = append(out, NamedInput{Name: "gateway", Attestation: rep.Gateway})
	}
	for i, m := range rep.Models {
		if !present(&m) {
			continue
		}
		var c nearAICVM
		if err := json.Unmarshal(m, &c); err != nil {
			return nil, fmt.Errorf("NEAR AI report: model_attestations[%d]: %s", i, jsonProblem(err))
		}
		if c.IntelQuote == nil {
			return nil, fmt.Errorf("NEAR AI report: model_attestations[%d] has no intel_quote", i)
		}
		name := fmt.Sprintf("model[%d]", i)
		out = append(out, NamedInput{Name: name, Label: c.ModelName, Attestation: m})
		if present((*json.RawMessage)(&c.ComposeManager)) {
			if Sniff(c.ComposeManager) != FormGetQuote {
				return nil, fmt.Errorf("NEAR AI report: model_attestations[%d].compose_manager_attestation is not a GetQuote-shaped attestation (quote, event_log)", i)
			}
			out = append(out, NamedInput{Name: name + ".compose-manager", Label: c.ModelName, Attestation: c.ComposeManager})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("NEAR AI report: neither gateway_attestation nor model_attestations holds a CVM attestation")
	}
	return out, nil
}

// SelectCVM picks one CVM by name ("gateway", "model[0]"), by the model it serves, or by its
// position counted from 1 in the order SplitAttestations lists them.
func SelectCVM(cvms []NamedInput, sel string) (NamedInput, error) {
	sel = strings.TrimSpace(sel)
	if n, err := strconv.Atoi(sel); err == nil && n >= 1 && n <= len(cvms) {
		return cvms[n-1], nil
	}
	var byLabel []NamedInput
	for _, c := range cvms {
		if strings.EqualFold(c.Name, sel) {
			return c, nil
		}
		if c.Label != "" && c.Label == sel && !strings.HasSuffix(c.Name, ".compose-manager") {
			byLabel = append(byLabel, c)
		}
	}
	if len(byLabel) == 1 {
		return byLabel[0], nil
	}
	var names []string
	for i, c := range cvms {
		names = append(names, fmt.Sprintf("%d %s", i+1, c.Title()))
	}
	if len(cvms) == 1 && cvms[0].Name == "" {
		return NamedInput{}, fmt.Errorf("%q: the input holds a single CVM; there is nothing to select", sel)
	}
	return NamedInput{}, fmt.Errorf("%q names no CVM of the report; it holds %s (give a name, a model name or a number)", sel, strings.Join(names, ", "))
}

// readNearAICVM reads one CVM's entry of a NEAR AI report.
func (in *inputs) readNearAICVM(data []byte) error {
	var c nearAICVM
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("NEAR AI report entry: %s", jsonProblem(err))
	}
	in.form = "NEAR AI cloud report CVM"
	if c.IntelQuote == nil || strings.TrimSpace(*c.IntelQuote) == "" {
		return errors.New("NEAR AI report entry: no intel_quote")
	}
	in.quote = []byte(*c.IntelQuote)
	if c.ReportData != nil && *c.ReportData != "" {
		b, err := hex.DecodeString(strings.TrimPrefix(*c.ReportData, "0x"))
		if err != nil {
			return fmt.Errorf("NEAR AI report entry: report_data: not hex: %v", err)
		}
		in.reportData = b
	}
	var tcb *tcbInfo
	if c.Info != nil && present(c.Info) {
		var info struct {
			TCBInfo  json.RawMessage `json:"tcb_info"`
			VMConfig json.RawMessage `json:"vm_config"`
		}
		if err := json.Unmarshal(*c.Info, &info); err != nil {
			return fmt.Errorf("NEAR AI report entry: info: %s", jsonProblem(err))
		}
		if present(&info.TCBInfo) {
			t, err := parseTCBInfo(info.TCBInfo, false)
			if err != nil {
				return fmt.Errorf("NEAR AI report entry: info.tcb_info: %w", err)
			}
			tcb = t
			in.appCompose = t.appCompose
		}
		if present(&info.VMConfig) {
			in.vmConfig = info.VMConfig
		}
	}
	switch {
	case present(&c.EventLog) && tcb != nil && tcb.eventLog != nil:
		if err := sameEventLog(c.EventLog, tcb.eventLog); err != nil {
			return fmt.Errorf("NEAR AI report entry: event_log and info.tcb_info.event_log %w", err)
		}
		in.eventLog = c.EventLog
	case present(&c.EventLog):
		in.eventLog = c.EventLog
	case tcb != nil:
		in.eventLog = tcb.eventLog
	}
	return nil
}

// sameEventLog reports how two renderings of one event log (a list, a JSON string holding
// it) differ, if they do; the quote is replayed from one of them, so they must agree.
func sameEventLog(a, b []byte) error {
	ea, errA := eventlog.Parse(a)
	eb, errB := eventlog.Parse(b)
	if errA != nil || errB != nil {
		return nil // the one used is parsed again and its errors reported
	}
	if len(ea) != len(eb) {
		return fmt.Errorf("differ: %d events against %d", len(ea), len(eb))
	}
	for i := range ea {
		x, y := &ea[i], &eb[i]
		if x.IMR != y.IMR || x.EventType != y.EventType || x.Name != y.Name || !bytes.Equal(x.Digest, y.Digest) || !bytes.Equal(x.Payload, y.Payload) {
			return fmt.Errorf("differ at event %d", i)
		}
	}
	return nil
}

// readNearMPCPublicData reads a NEAR MPC node's /public_data: the quote as byte values and the
// tcb_info with the event log, under tee_participant_info.Dstack.
func (in *inputs) readNearMPCPublicData(data []byte) error {
	var p struct {
		TEE map[string]json.RawMessage `json:"tee_participant_info"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("public_data: %s", jsonProblem(err))
	}
	raw, ok := p.TEE["Dstack"]
	if !ok {
		var kinds []string
		for k := range p.TEE {
			kinds = append(kinds, k)
		}
		return fmt.Errorf("public_data: tee_participant_info holds no Dstack attestation (it holds %s)", orNothing(kinds))
	}
	var d struct {
		Quote   json.RawMessage `json:"quote"`
		TCBInfo json.RawMessage `json:"tcb_info"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("public_data: tee_participant_info.Dstack: %s", jsonProblem(err))
	}
	in.form = "NEAR MPC public_data"
	q, err := decodeByteArray(d.Quote)
	if err != nil {
		return fmt.Errorf("public_data: tee_participant_info.Dstack.quote: %w", err)
	}
	in.quote = q
	if present(&d.TCBInfo) {
		t, err := parseTCBInfo(d.TCBInfo, false)
		if err != nil {
			return fmt.Errorf("public_data: tee_participant_info.Dstack.tcb_info: %w", err)
		}
		in.eventLog, in.appCompose = t.eventLog, t.appCompose
	}
	return nil
}

func orNothing(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

// tcbInfo is a dstack tcb_info: the registers the guest read, its event log and app compose.
type tcbInfo struct {
	registers  *quote.Quote // only MRTD, RTMR0-3 (and a zero MRCONFIGID) are set
	eventLog   []byte
	appCompose []byte
}

// parseTCBInfo reads a tcb_info object, or a JSON string holding one (as the guest agent's Info
// sends it). With registers set, MRTD and RTMR0-3 are required.
func parseTCBInfo(data []byte, registers bool) (*tcbInfo, error) {
	data = bytes.TrimSpace(data)
	var text string
	if json.Unmarshal(data, &text) == nil {
		data = []byte(text)
	}
	var t struct {
		MRTD       string          `json:"mrtd"`
		RTMR0      string          `json:"rtmr0"`
		RTMR1      string          `json:"rtmr1"`
		RTMR2      string          `json:"rtmr2"`
		RTMR3      string          `json:"rtmr3"`
		EventLog   json.RawMessage `json:"event_log"`
		AppCompose *string         `json:"app_compose"`
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, errors.New(jsonProblem(err))
	}
	out := &tcbInfo{}
	if present(&t.EventLog) {
		out.eventLog = t.EventLog
	}
	if t.AppCompose != nil && *t.AppCompose != "" {
		out.appCompose = []byte(*t.AppCompose)
	}
	if !registers {
		return out, nil
	}
	q := &quote.Quote{}
	for _, f := range []struct {
		name string
		hex  string
		dst  *quote.Hex
	}{{"mrtd", t.MRTD, &q.Report.MRTD}, {"rtmr0", t.RTMR0, &q.Report.RTMR[0]}, {"rtmr1", t.RTMR1, &q.Report.RTMR[1]},
		{"rtmr2", t.RTMR2, &q.Report.RTMR[2]}, {"rtmr3", t.RTMR3, &q.Report.RTMR[3]}} {
		b, err := hex.DecodeString(strings.TrimPrefix(f.hex, "0x"))
		if err != nil || len(b) != 48 {
			return nil, fmt.Errorf("%s: want 48 bytes of hex", f.name)
		}
		*f.dst = b
	}
	q.Report.MRConfigID = make(quote.Hex, 48)
	out.registers = q
	return out, nil
}

// decodeByteArray reads a JSON array of byte values (near/mpc writes quotes so), streaming so
// that an oversized array is refused before it is held.
func decodeByteArray(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('[') {
		return nil, errors.New("want a JSON array of byte values")
	}
	var out []byte
	for i := 0; ; i++ {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("byte %d: %s", i, jsonProblem(err))
		}
		if tok == json.Delim(']') {
			break
		}
		n, ok := tok.(json.Number)
		v, err := strconv.ParseUint(string(n), 10, 8)
		if !ok || err != nil {
			return nil, fmt.Errorf("byte %d: %v is not a byte value (0-255)", i, tok)
		}
		if len(out) >= quote.MaxQuoteLen {
			return nil, fmt.Errorf("over %d bytes", quote.MaxQuoteLen)
		}
		out = append(out, byte(v))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the array")
	}
	if len(out) == 0 {
		return nil, errors.New("empty array")
	}
	return out, nil
}

// jsonProblem words a JSON decoding error without Go type names.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not valid JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		where := typ.Field
		if where == "" {
			where = "the document"
		}
		return fmt.Sprintf("%s: want %s, got a JSON %s", where, jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "the JSON ends early"
	}
	return err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "a list"
	case "map", "struct":
		return "an object"
	case "bool":
		return "true or false"
	case "ptr", "interface":
		return "a value"
	}
	return "a number"
}

// ExtractQuote returns the TDX quote an input carries, in whichever form: a binary or hex
// quote, a JSON array of its byte values, a GetQuote response, dstack's {"attestation": hex}
// or the encoded attestation itself, a NEAR MPC public_data.json, a NEAR AI report entry, or a
// NEAR AI report, whose CVM cvm selects (SelectCVM; needed when it holds several). A form that
// carries no quote is named, with where it goes instead.
func ExtractQuote(data []byte, cvm string) ([]byte, Form, error) {
	f := Sniff(data)
	if !f.CarriesQuote() {
		if f == FormUnknown || f == FormEmpty {
			return nil, f, WrongInput(wantQuote, data)
		}
		if f.VerifyHint() == "" {
			return nil, f, fmt.Errorf("this looks like %s, which carries no TDX quote (and which dstack-mr does not read yet)", f)
		}
		return nil, f, fmt.Errorf("this looks like %s, which carries no TDX quote; it is for `dstack-mr verify`: %s", f, f.VerifyHint())
	}
	if f == FormNearAIReport {
		cvms, err := SplitAttestations(data)
		if err != nil {
			return nil, f, err
		}
		var one NamedInput
		switch {
		case cvm != "":
			if one, err = SelectCVM(cvms, cvm); err != nil {
				return nil, f, fmt.Errorf("--cvm %w", err)
			}
		case len(cvms) == 1:
			one = cvms[0]
		default:
			var names []string
			for _, c := range cvms {
				names = append(names, c.Title())
			}
			return nil, f, fmt.Errorf("a NEAR AI report holding %d quotes (%s): pick one with --cvm", len(cvms), strings.Join(names, ", "))
		}
		data = one.Attestation
	} else if cvm != "" {
		return nil, f, fmt.Errorf("--cvm picks a CVM of a NEAR AI report; this is %s", f)
	}
	switch f {
	case FormQuote, FormQuoteHex, FormQuoteBytes:
		q, err := quoteBytes(data)
		return q, f, err
	}
	in := &inputs{}
	if err := in.readAttestation(data); err != nil {
		return nil, f, err
	}
	if len(in.quote) == 0 {
		return nil, f, fmt.Errorf("%s without a quote", f)
	}
	return in.quote, f, nil
}

// CollateralOf returns the Intel collateral an input carries, as dcap-qvl's QuoteCollateralV3
// JSON (quote.ParseCollateral): such a document as it is, or the collateral a NEAR MPC node
// publishes beside its quote in public_data.json (the same fields, with byte arrays where
// dcap-qvl writes hex). Its signatures and validity are checked where it is used, like any.
func CollateralOf(data []byte) ([]byte, error) {
	switch Sniff(data) {
	case FormCollateral:
		return data, nil
	case FormNearMPCPublicData:
	default:
		return nil, WrongInput("Intel collateral (QuoteCollateralV3 JSON, or a NEAR MPC public_data.json carrying it)", data)
	}
	var p struct {
		TEE struct {
			Dstack struct {
				Collateral map[string]json.RawMessage `json:"collateral"`
			} `json:"Dstack"`
		} `json:"tee_participant_info"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("public_data: %s", jsonProblem(err))
	}
	c := p.TEE.Dstack.Collateral
	if len(c) == 0 {
		return nil, errors.New("public_data: tee_participant_info.Dstack carries no collateral")
	}
	out := make(map[string]string, len(c))
	for k, v := range c {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
			continue
		}
		b, err := decodeByteArray(v)
		if err != nil {
			return nil, fmt.Errorf("public_data: tee_participant_info.Dstack.collateral.%s: %w", k, err)
		}
		out[k] = hex.EncodeToString(b)
	}
	return json.Marshal(out)
}
