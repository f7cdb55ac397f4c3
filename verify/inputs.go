package verify

// The attestation pieces Verify reads, whichever form they came in.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/quote"
)

// inputs are the attestation pieces after Options' overrides.
type inputs struct {
	quote, eventLog, vmConfig, reportData []byte
	form                                  string
	// infoRegisters holds the registers of a guest-agent Info (no quote): only the TD report's
	// MRTD, RTMRs and MRCONFIGID (zero) are set.
	infoRegisters *quote.Quote
	appCompose    []byte // the app-compose document the input itself carries (checked, never trusted)
}

// InputError is an input Verify cannot read; Flag names the CLI flag that gave it
// ("attestation", "quote", "event-log", "vm-config", "info") so the caller can name the file.
type InputError struct {
	Flag string
	Err  error
}

func (e *InputError) Error() string {
	if msg := e.Err.Error(); strings.HasPrefix(msg, inputNames[e.Flag]) {
		return msg // already names its input ("vm_config.cpu_count: ...")
	}
	return inputNames[e.Flag] + ": " + e.Err.Error()
}

func (e *InputError) Unwrap() error { return e.Err }

var inputNames = map[string]string{"attestation": "attestation", "quote": "quote", "event-log": "event log", "vm-config": "vm_config", "info": "info"}

func inputErr(flag string, err error) error { return &InputError{Flag: flag, Err: err} }

// What each input flag wants, for errors about a file of another form.
const (
	wantAttestation = "an attestation (a GetQuote response, dstack's {\"attestation\": hex}, a NEAR AI report or a NEAR MPC public_data.json)"
	wantQuote       = "a TDX quote (binary, hex, or a JSON array of byte values)"
	wantEventLog    = "an event log (a JSON list of events, or a tcb_info holding one)"
	wantInfo        = "a guest agent Info response or a tcb_info document"
)

func gather(opts *Options) (*inputs, error) {
	in := &inputs{}
	if opts.Attestation != nil {
		if err := in.readAttestation(opts.Attestation); err != nil {
			return nil, inputErr("attestation", err)
		}
	}
	if len(opts.Info) > 0 {
		if len(opts.Attestation) > 0 || opts.Quote != nil {
			return nil, errors.New("give an Info or an attestation/quote, not both")
		}
		if err := in.readInfo(opts.Info); err != nil {
			return nil, inputErr("info", err)
		}
	}
	if opts.Quote != nil {
		q, err := quoteBytes(opts.Quote)
		if err != nil {
			return nil, inputErr("quote", err)
		}
		in.quote = q
	}
	if opts.EventLog != nil {
		log, err := eventLogBytes(opts.EventLog)
		if err != nil {
			return nil, inputErr("event-log", err)
		}
		in.eventLog = log
	}
	if opts.VMConfig != nil {
		if f := Sniff(opts.VMConfig); f != FormVMConfig && f != FormUnknown && f != FormSysConfig {
			return nil, inputErr("vm-config", WrongInput("a vm_config (JSON object)", opts.VMConfig))
		}
		in.vmConfig = vmConfigOf(opts.VMConfig)
	}
	if len(in.quote) == 0 && in.infoRegisters == nil {
		return nil, errors.New("no quote: give an attestation with a quote, or the quote itself")
	}
	// Each piece is parsed here, and again by Verify, so that an error names the input it came
	// from: a quote inside --attestation is the attestation's fault, not --quote's.
	if in.infoRegisters == nil {
		if _, err := quote.ParseAuto(in.quote); err != nil {
			return nil, in.pieceErr(opts, "quote", err)
		}
	}
	if len(in.eventLog) > 0 {
		if _, err := eventlog.Parse(in.eventLog); err != nil {
			return nil, in.pieceErr(opts, "event-log", err)
		}
	}
	if len(in.vmConfig) > 0 {
		if _, err := ParseVMConfig(in.vmConfig); err != nil {
			return nil, in.pieceErr(opts, "vm-config", err)
		}
	}
	return in, nil
}

// pieceErr attributes an error in one piece (quote, event log, vm_config) to the input it came
// from, naming the piece when that input is a whole attestation or Info.
func (in *inputs) pieceErr(opts *Options, flag string, err error) error {
	src := in.source(opts, flag)
	if src == flag || strings.HasPrefix(err.Error(), inputNames[flag]) {
		return inputErr(src, err)
	}
	return inputErr(src, fmt.Errorf("%s: %w", inputNames[flag], err))
}

// source names the flag a piece came from: its own flag when given, else the file it was
// read out of.
func (in *inputs) source(opts *Options, flag string) string {
	switch {
	case flag == "quote" && opts.Quote != nil, flag == "event-log" && opts.EventLog != nil, flag == "vm-config" && opts.VMConfig != nil:
		return flag
	case len(opts.Info) > 0:
		return "info"
	}
	return "attestation"
}

// readAttestation reads every form Options.Attestation takes, recognised by content.
func (in *inputs) readAttestation(data []byte) error {
	switch f := Sniff(data); f {
	case FormGetQuote, FormDstackAttestation:
		return in.readGetQuote(data)
	case FormDstackAttestationBinary:
		b, err := decodeBinaryAttestationBytes(quote.DecodeHexOrBinary(data))
		if err != nil {
			return err
		}
		return in.useBinary(b)
	case FormNearAICVM:
		return in.readNearAICVM(data)
	case FormNearMPCPublicData:
		return in.readNearMPCPublicData(data)
	case FormNearAIReport:
		cvms, err := SplitAttestations(data)
		if err != nil {
			return err
		}
		if len(cvms) != 1 {
			var names []string
			for _, c := range cvms {
				names = append(names, c.Title())
			}
			return fmt.Errorf("a NEAR AI report with %d CVMs (%s): verify each (the CLI does; the library: SplitAttestations) or pick one (--cvm)",
				len(cvms), strings.Join(names, ", "))
		}
		return in.readAttestation(cvms[0].Attestation)
	default:
		return WrongInput(wantAttestation, data)
	}
}

// readGetQuote reads a GetQuote response, or dstack's {"attestation": hex}.
func (in *inputs) readGetQuote(data []byte) error {
	var a struct {
		Binary     *string          `json:"attestation"`
		Quote      *string          `json:"quote"`
		EventLog   *json.RawMessage `json:"event_log"`
		VMConfig   *json.RawMessage `json:"vm_config"`
		ReportData *string          `json:"report_data"`
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return fmt.Errorf("want a GetQuote JSON object: %s", jsonProblem(err))
	}
	in.form = "GetQuote response"
	if a.Quote != nil {
		in.quote = []byte(*a.Quote)
	} else if a.Binary != nil {
		b, err := decodeBinaryAttestation(strings.TrimPrefix(strings.TrimSpace(*a.Binary), "0x"))
		if err != nil {
			return err
		}
		if err := in.useBinary(b); err != nil {
			return err
		}
	}
	if present(a.EventLog) {
		in.eventLog = *a.EventLog
	}
	if present(a.VMConfig) {
		in.vmConfig = *a.VMConfig
	}
	if a.ReportData != nil && *a.ReportData != "" {
		b, err := hex.DecodeString(strings.TrimPrefix(*a.ReportData, "0x"))
		if err != nil {
			return fmt.Errorf("report_data: not hex: %w", err)
		}
		in.reportData = b
	}
	return nil
}

func (in *inputs) useBinary(b *binAttestation) error {
	log, err := b.eventLogJSON()
	if err != nil {
		return err
	}
	in.quote, in.eventLog, in.vmConfig, in.reportData = b.quote, log, vmConfigOf([]byte(b.config)), b.reportData
	in.form = "dstack attestation (" + b.encoding + ")"
	return nil
}

// quoteBytes reads --quote: a binary or hex quote, or near/mpc's JSON array of byte values.
func quoteBytes(data []byte) ([]byte, error) {
	switch f := Sniff(data); f {
	case FormQuote, FormQuoteHex:
		return data, nil
	case FormQuoteBytes:
		return decodeByteArray(data)
	default:
		return nil, WrongInput(wantQuote, data)
	}
}

// eventLogBytes reads --event-log: the event list (or a JSON string holding it), or the
// event_log of a tcb_info (near/mpc's tcb_info.json).
func eventLogBytes(data []byte) ([]byte, error) {
	switch f := Sniff(data); f {
	case FormEventLog:
		return data, nil
	case FormTCBInfo:
		t, err := parseTCBInfo(data, false)
		if err != nil {
			return nil, fmt.Errorf("tcb_info: %w", err)
		}
		if t.eventLog == nil {
			return nil, errors.New("the tcb_info has no event_log")
		}
		return t.eventLog, nil
	default:
		return nil, WrongInput(wantEventLog, data)
	}
}

// present reports whether a JSON field holds something other than null or "".
func present(m *json.RawMessage) bool {
	if m == nil {
		return false
	}
	v := string(bytes.TrimSpace(*m))
	return v != "null" && v != `""` && v != ""
}

// readInfo takes the registers, event log and vm_config of a guest agent Info response, or a
// bare tcb_info (near/mpc's tcb_info.json: registers and event log, no vm_config).
func (in *inputs) readInfo(data []byte) error {
	var tcbRaw, vmConfig json.RawMessage
	switch f := Sniff(data); f {
	case FormGuestAgentInfo:
		var info struct {
			TCBInfo  json.RawMessage `json:"tcb_info"`
			VMConfig json.RawMessage `json:"vm_config"`
		}
		if err := json.Unmarshal(data, &info); err != nil {
			return fmt.Errorf("want the guest agent's Info JSON: %s", jsonProblem(err))
		}
		tcbRaw, vmConfig = info.TCBInfo, info.VMConfig
		in.form = "guest agent Info (no quote)"
	case FormTCBInfo:
		tcbRaw = data
		in.form = "tcb_info (no quote)"
	default:
		return WrongInput(wantInfo, data)
	}
	t, err := parseTCBInfo(tcbRaw, true)
	if err != nil {
		return fmt.Errorf("tcb_info: %w", err)
	}
	in.infoRegisters, in.eventLog, in.appCompose = t.registers, t.eventLog, t.appCompose
	if present(&vmConfig) {
		in.vmConfig = vmConfig
	}
	return nil
}

// vmConfigOf takes the vm_config out of a dstack sys-config (the guest's configuration, which
// some attestations carry in its place: {"kms_urls", ..., "vm_config": "<JSON string>"}), and
// returns anything else unchanged.
func vmConfigOf(data []byte) []byte {
	if Sniff(data) != FormSysConfig {
		return data
	}
	var sc struct {
		VMConfig json.RawMessage `json:"vm_config"`
	}
	if json.Unmarshal(data, &sc) != nil || !present(&sc.VMConfig) {
		return data
	}
	return sc.VMConfig
}
