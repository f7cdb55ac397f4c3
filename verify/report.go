package verify

import (
	"fmt"

	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/policy"
	"github.com/dstack-mr/dstack-mr/quote"
)

// Report is the outcome of Verify.
type Report struct {
	// SchemaVersion of the JSON form (schemas/verify.schema.json); set by the caller.
	SchemaVersion int `json:"schema_version,omitempty"`
	// Verified is true only when every check ran and passed (the quote's authenticity among
	// them) and nothing required was left unchecked. The TCB status, which needs Intel's
	// collateral, is listed as not checked but not required. The "policy" check (Options.Policy)
	// alone does not count: see Policy.
	Verified bool   `json:"verified"`
	Mode     string `json:"mode"` // "full", "lite" or "none" (no expected image)
	// InputForm names what the attestation was read from: a GetQuote response or dstack's
	// {"attestation": hex} in MessagePack or SCALE.
	InputForm string     `json:"input_form,omitempty"`
	Quote     *QuoteInfo `json:"quote"`
	// QuoteVerification is the quote's offline authenticity check (quote.Verify), as
	// `dstack-mr quote verify` prints it.
	QuoteVerification *quote.Verification  `json:"quote_verification"`
	Registers         map[string]*Register `json:"registers"`
	RTMR3             *eventlog.RTMR3Facts `json:"rtmr3,omitempty"`
	App               *AppInfo             `json:"app"`
	VMConfig          *VMConfig            `json:"vm_config,omitempty"`
	Lite              *LiteMeasurement     `json:"lite_measurement,omitempty"`
	// Shape is the VM shape the prediction assumed, with where each field came from.
	Shape      *VMShape     `json:"vm_shape,omitempty"`
	Checks     []Check      `json:"checks"`
	NotChecked []NotChecked `json:"not_checked"`
	// Warnings name what the prediction rests on beyond proof (acpi.MachineConfig.Warnings);
	// never null.
	Warnings []string `json:"warnings"`
	// BootInfo is what dstack's KMS would post to its auth webhook for this CVM; nil (with a
	// boot-info not_checked entry) unless the quote is authentic and every value is attested.
	BootInfo *policy.BootInfo `json:"boot_info,omitempty"`
	// Policy is Options.Policy's answer over BootInfo. Its "policy" check never decides Verified:
	// the attestation holding and a policy admitting it are separate questions.
	Policy *policy.Decision `json:"policy,omitempty"`
	// ToolVersion names the program that wrote the report (set by the caller).
	ToolVersion string `json:"tool_version,omitempty"`
}

// VMShape is the machine a prediction was made for. Sources maps each field (vm_config's key
// names) to "vm_config", "flag" or "default".
type VMShape struct {
	mr.MachineReport
	Sources map[string]string `json:"sources"`
}

// shapeFields are the VMShape fields whose source is reported, by vm_config key.
var shapeFields = []string{"cpu_count", "memory_size", "qemu_version", "pic", "smm", "qemu_single_pass_add_pages",
	"num_nics", "num_verity_volumes", "num_gpus", "num_nvswitches", "hotplug_off", "root_verity",
	"pci_hole64_size", "hugepages", "host_share_mode", "numa_nodes", "qemu_build"}

func describeShape(m *mr.Machine, vm *VMConfig, flags []string) *VMShape {
	s := &VMShape{MachineReport: m.Report(), Sources: map[string]string{}}
	flagged := map[string]bool{}
	for _, f := range flags {
		flagged[f] = true
	}
	for _, f := range shapeFields {
		switch {
		case flagged[f]:
			s.Sources[f] = "flag"
		case vm != nil && vm.present[f]:
			s.Sources[f] = "vm_config"
		default:
			s.Sources[f] = "default"
		}
	}
	return s
}

// QuoteInfo summarises the quote.
type QuoteInfo struct {
	Version       uint16 `json:"version"`
	BodyType      uint16 `json:"body_type"`
	TEETCBSVN     Hex    `json:"tee_tcb_svn"`
	TDAttributes  Hex    `json:"td_attributes"`
	XFAM          Hex    `json:"xfam"`
	MRConfigID    Hex    `json:"mr_config_id"`
	MROwner       Hex    `json:"mr_owner"`
	MROwnerConfig Hex    `json:"mr_owner_config"`
	ReportData    Hex    `json:"report_data"`
}

// Register compares one measurement register.
type Register struct {
	Expected Hex `json:"expected,omitempty"`
	Actual   Hex `json:"actual"` // from the quote
	// Match: Expected equals Actual; null when nothing was predicted.
	Match *bool `json:"match"`
	// Replayed is the event log's replay (RTMRs only); ReplayMatch compares it with Actual.
	Replayed        Hex         `json:"replayed,omitempty"`
	ReplayMatch     *bool       `json:"replay_match,omitempty"`
	FirstDivergence *Divergence `json:"first_divergence,omitempty"`
}

// Divergence is the first event at which a register's log departs from the prediction.
type Divergence struct {
	Position  int      `json:"position"`  // index among the register's events
	LogIndex  int      `json:"log_index"` // index in the whole log; -1 when missing from it
	Label     string   `json:"label"`
	EventType uint32   `json:"event_type,omitempty"`
	Expected  Hex      `json:"expected_digest,omitempty"`
	Actual    Hex      `json:"actual_digest,omitempty"`
	DependsOn []string `json:"depends_on,omitempty"`
	Note      string   `json:"note,omitempty"`
}

// AppInfo is the app identity the attestation carries.
type AppInfo struct {
	AppID            Hex                   `json:"app_id,omitempty"`
	ComposeHash      Hex                   `json:"compose_hash,omitempty"`
	InstanceID       Hex                   `json:"instance_id,omitempty"`
	KeyProvider      *eventlog.KeyProvider `json:"key_provider,omitempty"`
	OSImageHash      Hex                   `json:"os_image_hash,omitempty"`       // vm_config's
	RTMR3OSImageHash Hex                   `json:"rtmr3_os_image_hash,omitempty"` // RTMR3 event (KMS's view)
	// OSImageIdentity is the os_image_hash this report holds the CVM to, and
	// OSImageIdentitySource says what carries it: "rtmr3" (the CVM's own event), "lite-document"
	// (vm_config's hash, bound by the lite document whose predicted registers the quote
	// matched), "image" (the expected image, whose registers the quote matched) or
	// "vm_config" (supplied by the host, attested by nothing).
	OSImageIdentity       Hex    `json:"os_image_identity,omitempty"`
	OSImageIdentitySource string `json:"os_image_identity_source,omitempty"`
	// LiteBinding names how the VM's own lite document was bound to that hash.
	LiteBinding string `json:"lite_binding,omitempty"`
	MRConfigID  Hex    `json:"mr_config_id,omitempty"`
}

// Check is one comparison that ran.
type Check = quote.Check

// NotChecked is something that could not be checked, and why. Required ones keep Verified
// false.
type NotChecked struct {
	Name     string `json:"name"`
	Reason   string `json:"reason"`
	Required bool   `json:"required"`
}

func (r *Report) check(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

func (r *Report) skip(name string, required bool, format string, args ...any) {
	r.NotChecked = append(r.NotChecked, NotChecked{Name: name, Reason: fmt.Sprintf(format, args...), Required: required})
}

// Failed lists the checks that did not pass.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

func (r *Report) finish() {
	r.Verified = len(r.Checks) > 0 && len(r.Failed()) == 0
	for _, n := range r.NotChecked {
		if n.Required {
			r.Verified = false
		}
	}
}
