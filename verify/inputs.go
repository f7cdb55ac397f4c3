package verify

// The attestation pieces Verify reads, whichever form they came in.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

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

func gather(opts *Options) (*inputs, error) {
	in := &inputs{}
	if len(opts.Attestation) > 0 {
		var a struct {
			Binary     *string          `json:"attestation"`
			Quote      *string          `json:"quote"`
			EventLog   *json.RawMessage `json:"event_log"`
			VMConfig   *json.RawMessage `json:"vm_config"`
			ReportData *string          `json:"report_data"`
		}
		if err := json.Unmarshal(opts.Attestation, &a); err != nil {
			return nil, fmt.Errorf("attestation: want a GetQuote JSON object: %w", err)
		}
		in.form = "GetQuote response"
		if a.Quote != nil {
			in.quote = []byte(*a.Quote)
		} else if a.Binary != nil {
			b, err := decodeBinaryAttestation(strings.TrimPrefix(strings.TrimSpace(*a.Binary), "0x"))
			if err != nil {
				return nil, err
			}
			log, err := b.eventLogJSON()
			if err != nil {
				return nil, err
			}
			in.quote, in.eventLog, in.vmConfig, in.reportData = b.quote, log, []byte(b.config), b.reportData
			in.form = "dstack attestation (" + b.encoding + ")"
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
				return nil, fmt.Errorf("attestation: report_data: not hex: %w", err)
			}
			in.reportData = b
		}
	}
	if len(opts.Info) > 0 {
		if len(opts.Attestation) > 0 || opts.Quote != nil {
			return nil, errors.New("give an Info or an attestation/quote, not both")
		}
		if err := in.readInfo(opts.Info); err != nil {
			return nil, err
		}
	}
	if opts.Quote != nil {
		in.quote = opts.Quote
	}
	if opts.EventLog != nil {
		in.eventLog = opts.EventLog
	}
	if opts.VMConfig != nil {
		in.vmConfig = opts.VMConfig
	}
	if len(in.quote) == 0 && in.infoRegisters == nil {
		return nil, errors.New("no quote: give an attestation with a quote, or the quote itself")
	}
	return in, nil
}

// present reports whether a JSON field holds something other than null or "".
func present(m *json.RawMessage) bool {
	if m == nil {
		return false
	}
	v := string(bytes.TrimSpace(*m))
	return v != "null" && v != `""` && v != ""
}

// readInfo takes the registers, event log and vm_config of a guest agent Info response.
func (in *inputs) readInfo(data []byte) error {
	var info struct {
		TCBInfo  json.RawMessage `json:"tcb_info"`
		VMConfig json.RawMessage `json:"vm_config"`
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return fmt.Errorf("info: want the guest agent's Info JSON: %w", err)
	}
	tcb := []byte(info.TCBInfo)
	var text string
	if json.Unmarshal(tcb, &text) == nil {
		tcb = []byte(text) // a JSON string holding the object, as the guest agent sends it
	}
	var t struct {
		MRTD     string          `json:"mrtd"`
		RTMR0    string          `json:"rtmr0"`
		RTMR1    string          `json:"rtmr1"`
		RTMR2    string          `json:"rtmr2"`
		RTMR3    string          `json:"rtmr3"`
		EventLog json.RawMessage `json:"event_log"`
		// AppCompose is a JSON string holding the document, whose exact bytes were hashed.
		AppCompose json.RawMessage `json:"app_compose"`
	}
	if err := json.Unmarshal(tcb, &t); err != nil {
		return fmt.Errorf("info: tcb_info: %w", err)
	}
	if present(&t.AppCompose) {
		var doc string
		if err := json.Unmarshal(t.AppCompose, &doc); err != nil {
			return errors.New("info: tcb_info.app_compose: want a JSON string holding the app-compose document")
		}
		in.appCompose = []byte(doc)
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
			return fmt.Errorf("info: tcb_info.%s: want 48 bytes of hex", f.name)
		}
		*f.dst = b
	}
	q.Report.MRConfigID = make(quote.Hex, 48)
	in.infoRegisters = q
	in.form = "guest agent Info (no quote)"
	if present((*json.RawMessage)(&t.EventLog)) {
		in.eventLog = t.EventLog
	}
	if present((*json.RawMessage)(&info.VMConfig)) {
		in.vmConfig = info.VMConfig
	}
	return nil
}
