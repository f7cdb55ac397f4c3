package mr

import (
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"unicode/utf16"

	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/uefi"
)

// TCG event types and event labels: one definition, in package eventlog, shared by the
// computed log here and the logs that verify reads.
const (
	EvSeparator                  uint32 = eventlog.EvSeparator
	EvEventTag                   uint32 = eventlog.EvEventTag
	EvPlatformConfigFlags        uint32 = eventlog.EvPlatformConfigFlags
	EvEFIVariableDriverConfig    uint32 = eventlog.EvEFIVariableDriverConfig
	EvEFIVariableBoot            uint32 = eventlog.EvEFIVariableBoot
	EvEFIBootServicesApplication uint32 = eventlog.EvEFIBootServicesApp
	EvEFIAction                  uint32 = eventlog.EvEFIAction
	EvEFIPlatformFirmwareBlob2   uint32 = eventlog.EvEFIPlatformFirmwareBlob2
	EvEFIHandoffTables2          uint32 = eventlog.EvEFIHandoffTables2
)

// Event labels, stable for JSON consumers.
const (
	LabelTDHOB        = eventlog.LabelTDHob
	LabelCFV          = eventlog.LabelCFV
	LabelSecureBoot   = eventlog.LabelSecureBoot
	LabelPK           = eventlog.LabelPK
	LabelKEK          = eventlog.LabelKEK
	LabelDB           = eventlog.LabelDB
	LabelDBX          = eventlog.LabelDBX
	LabelDBT          = eventlog.LabelDBT
	LabelSeparator    = eventlog.LabelSeparator
	LabelACPILoader   = eventlog.LabelACPILoader
	LabelACPIRSDP     = eventlog.LabelACPIRSDP
	LabelACPITables   = eventlog.LabelACPITables
	LabelBootOrder    = eventlog.LabelBootOrder
	LabelBoot0000     = eventlog.LabelBoot0000
	LabelKernel       = eventlog.LabelKernel
	LabelCallingEFI   = eventlog.LabelBootAttempt
	LabelExitBS       = eventlog.LabelExitBootSvc
	LabelExitBSReturn = eventlog.LabelExitBootSvcDone
	LabelCmdline      = eventlog.LabelCmdline
	LabelInitrd       = eventlog.LabelInitrd
)

// Event is one measured event: which RTMR it extends, its TCG type, the SHA-384 digest
// extended, and a short label saying what was measured.
type Event struct {
	IMR       int    `json:"imr"` // RTMR index 0..3, as dstack's event logs number them
	EventType uint32 `json:"event_type"`
	Digest    string `json:"digest"` // hex SHA-384
	Label     string `json:"label"`
	// Detail says where the measured bytes came from (volume, file, variable, fw_cfg
	// file, exact string); free text for people, not a stable key like Label.
	Detail string `json:"detail,omitempty"`
}

func sha384(parts ...[]byte) []byte {
	h := sha512.New384()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func newEvent(imr int, typ uint32, label string, digest []byte) Event {
	return Event{IMR: imr, EventType: typ, Digest: hex.EncodeToString(digest), Label: label}
}

// separatorDigest is the digest of EV_SEPARATOR's 4 zero bytes (no error).
var separatorDigest = sha384([]byte{0, 0, 0, 0})

// variableDriverConfigDigest is the digest of an EV_EFI_VARIABLE_DRIVER_CONFIG event: the
// SHA-384 of the whole UEFI_VARIABLE_DATA (VariableName GUID, UnicodeNameLength in
// characters, VariableDataLength, UnicodeName without NUL, VariableData).
func variableDriverConfigDigest(vendor uefi.GUID, name string, data []byte) []byte {
	uname := utf16le(name)
	var lens [16]byte
	binary.LittleEndian.PutUint64(lens[0:], uint64(len(uname)/2))
	binary.LittleEndian.PutUint64(lens[8:], uint64(len(data)))
	return sha384(vendor[:], lens[:], uname, data)
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// LoadOptions returns the UEFI LoadOptions OVMF gives a kernel booted with QEMU's -kernel:
// the fw_cfg command line with "initrd=initrd" added when an initrd is loaded, where form
// says (after it, " initrd=initrd", up to edk2-stable202502; before it, "initrd=initrd ",
// later), each BYTE widened to one UCS-2 unit (UnicodeSPrintAsciiFormat "%a" zero-extends
// CHAR8; it does not decode UTF-8), plus a terminating NUL unit. The Linux EFI stub measures
// exactly these bytes. An empty command line without initrd gives no LoadOptions (nil).
func LoadOptions(cmdline string, hasInitrd bool, form uefi.LoadOptionsForm) []byte {
	s := measuredCmdline(cmdline, hasInitrd, form)
	if s == "" {
		return nil
	}
	b := make([]byte, 2*len(s)+2)
	for i := 0; i < len(s); i++ {
		b[2*i] = s[i]
	}
	return b
}

func measuredCmdline(cmdline string, hasInitrd bool, form uefi.LoadOptionsForm) string {
	switch {
	case !hasInitrd:
		return cmdline
	case form == uefi.InitrdPrefix:
		return "initrd=initrd " + cmdline
	}
	return cmdline + " initrd=initrd"
}

// ReplayRTMR returns the value of an RTMR after extending each digest in order from zero:
// RTMR = SHA384(RTMR || digest).
func ReplayRTMR(digests [][]byte) []byte {
	mr := make([]byte, sha512.Size384)
	h := sha512.New384()
	for _, d := range digests {
		h.Reset()
		h.Write(mr)
		h.Write(d)
		mr = h.Sum(mr[:0])
	}
	return mr
}

// replayEvents replays the events of one RTMR.
func replayEvents(events []Event, imr int) ([]byte, error) {
	var ds [][]byte
	for _, e := range events {
		if e.IMR != imr {
			continue
		}
		d, err := hex.DecodeString(e.Digest)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ReplayRTMR(ds), nil
}
