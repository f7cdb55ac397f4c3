package verify

import (
	"fmt"
	"strings"

	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/policy"
	"github.com/dstack-mr/dstack-mr/quote"
)

// Report is the outcome of Verify.
type Report struct {
	// SchemaVersion of the JSON form (schemas/verify.schema.json); set by the caller.
	SchemaVersion int `json:"schema_version,omitempty"`
	// TEEVariant is dstack's name for the platform ("dstack-tdx"), so a caller tells TDX and
	// SEV-SNP reports apart (schemas/verify-sev-snp.schema.json for the latter).
	TEEVariant string `json:"tee_variant"`
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
	// LiteSource says whose lite document was used: LiteFromVMConfig (the VM's own, supplied by
	// the host) or LiteFromRelyingParty (--measurement); LiteSHA256 names it.
	LiteSource string `json:"lite_measurement_source,omitempty"`
	LiteSHA256 Hex    `json:"lite_measurement_sha256,omitempty"`
	// ExpectedImage names the image of full mode: where it was read and its metadata.json version.
	ExpectedImage *ExpectedImage `json:"expected_image,omitempty"`
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

// ExpectedImage names the expected image a full-mode report was predicted from.
type ExpectedImage struct {
	Source      string `json:"source"`
	Version     string `json:"version,omitempty"`
	OSImageHash Hex    `json:"os_image_hash,omitempty"`
}

// VMShape is the machine a prediction was made for. Sources maps each field, by its name in
// this JSON object, to "vm_config", "flag", "default" or, for acpi_profile, "derived" (from
// qemu_version).
type VMShape struct {
	mr.MachineReport
	Sources map[string]string `json:"sources"`
}

// shapeFields are the VMShape fields whose source is reported, with the vm_config key that
// carries each.
var shapeFields = []struct{ field, vmConfigKey string }{
	{"cpu_count", "cpu_count"}, {"memory_size", "memory_size"}, {"qemu_version", "qemu_version"}, {"qemu_build", "qemu_build"},
	{"two_pass_add_pages", "qemu_single_pass_add_pages"}, {"pic", "pic"}, {"smm", "smm"}, {"num_nics", "num_nics"},
	{"num_verity_volumes", "num_verity_volumes"}, {"num_gpus", "num_gpus"}, {"num_nvswitches", "num_nvswitches"},
	{"hotplug_off", "hotplug_off"}, {"root_verity", "root_verity"}, {"pci_hole64_size", "pci_hole64_size"},
	{"hugepages", "hugepages"}, {"host_share_mode", "host_share_mode"}, {"numa_nodes", "numa_nodes"},
}

func describeShape(m *mr.Machine, vm *VMConfig, flags []string) *VMShape {
	s := &VMShape{MachineReport: m.Report(), Sources: map[string]string{"acpi_profile": "derived"}}
	flagged := map[string]bool{}
	for _, f := range flags {
		flagged[f] = true
	}
	for _, f := range shapeFields {
		switch {
		case flagged[f.vmConfigKey]:
			s.Sources[f.field] = "flag"
		case vm != nil && vm.present[f.vmConfigKey]:
			s.Sources[f.field] = "vm_config"
		default:
			s.Sources[f.field] = "default"
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
	Position int    `json:"position"`  // index among the register's events
	LogIndex int    `json:"log_index"` // index in the whole log; -1 when missing from it
	Label    string `json:"label"`     // the predicted event's; "" when the prediction has none there
	// LoggedLabel is the logged event's label at that position; "" when the log has none there.
	LoggedLabel string   `json:"logged_label,omitempty"`
	EventType   uint32   `json:"event_type,omitempty"`
	Expected    Hex      `json:"expected_digest,omitempty"`
	Actual      Hex      `json:"actual_digest,omitempty"`
	DependsOn   []string `json:"depends_on,omitempty"`
	Note        string   `json:"note,omitempty"`
}

// AppInfo is the app identity the attestation carries.
type AppInfo struct {
	AppID       Hex                   `json:"app_id,omitempty"`
	ComposeHash Hex                   `json:"compose_hash,omitempty"`
	InstanceID  Hex                   `json:"instance_id,omitempty"`
	KeyProvider *eventlog.KeyProvider `json:"key_provider,omitempty"`
	// OSImageHash is the os_image_hash this report holds the CVM to (null when none was
	// established), and OSImageHashSource what establishes it: IdentityRTMR3 (the CVM's own
	// event), IdentityImage (the expected image, whose registers the quote matched) or
	// IdentityPinnedDocument (the hash the relying party pinned, to which the measurement
	// document the quote matched is bound). See identity.go for the rule.
	OSImageHash       Hex    `json:"os_image_hash"`
	OSImageHashSource string `json:"os_image_hash_source,omitempty"`
	// OSImageHashBinding names how the lite document was tied to an os_image_hash, when it was.
	OSImageHashBinding string `json:"os_image_hash_binding,omitempty"`
	// VMConfigOSImageHash is vm_config's os_image_hash: supplied by the host, attested by
	// nothing, never the identity on its own.
	VMConfigOSImageHash Hex `json:"vm_config_os_image_hash,omitempty"`
	MRConfigID          Hex `json:"mr_config_id,omitempty"`
	// MRConfig names the form of MRCONFIGID and what it binds.
	MRConfig *MRConfigInfo `json:"mr_config,omitempty"`
	// AppCompose is the app-compose document the relying party gave (--app-compose), and
	// InputAppCompose the one the input itself carries (a guest agent Info's
	// tcb_info.app_compose): each is checked against the attested compose hash, and its facts
	// are reported only when it matched.
	AppCompose      *ComposeCheck `json:"app_compose,omitempty"`
	InputAppCompose *ComposeCheck `json:"input_app_compose,omitempty"`
}

// ComposeCheck is an app-compose document checked against the compose hash the CVM attested.
type ComposeCheck struct {
	// SHA256 is of the document's bytes as given.
	SHA256 Hex `json:"sha256"`
	// Matched: one of the forms tried hashes to the attested compose hash; Form names it
	// ("exact", "deterministic" or "sdk-normalized").
	Matched    bool     `json:"matched"`
	Form       string   `json:"form,omitempty"`
	FormsTried []string `json:"forms_tried"`
	// Note says why a form could not be built (the document is not a JSON object, ...).
	Note  string        `json:"note,omitempty"`
	Facts *ComposeFacts `json:"facts,omitempty"`
}

// MRConfigInfo describes the quote's MRCONFIGID: Version 0 (all zero: unset), 1
// (0x01 || compose_hash), 2 (0x02 || keccak256(compose_hash || app_id || key provider kind ||
// key provider id)) or 3 (0x03 || sha256("dstack-mr-config-v3:" || 0x00 || document)), other
// values unknown. Document is the v3 mr_config document when the input carries it.
type MRConfigInfo struct {
	Version        int    `json:"version"`
	Form           string `json:"form"`
	Document       string `json:"document,omitempty"`
	DocumentSource string `json:"document_source,omitempty"`
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

// registerSource names where the registers under check come from: a quote, or, without one,
// the guest agent's unsigned Info.
func (r *Report) registerSource() string {
	if r.Quote == nil {
		return "Info's tcb_info"
	}
	return "quote"
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

// String says, in one line, which event diverges on each side, with both digests, what the
// event depends on and the note; it never prints an empty value.
func (d *Divergence) String() string {
	var parts []string
	switch {
	case d.Label == "mrtd":
		parts = append(parts, "MRTD")
	case d.Position < 0:
	case d.Label != "" && d.LoggedLabel != "":
		if d.Label == d.LoggedLabel {
			parts = append(parts, fmt.Sprintf("event #%d %s: predicted %x, logged %x", d.Position, d.Label, []byte(d.Expected), []byte(d.Actual)))
		} else {
			parts = append(parts, fmt.Sprintf("event #%d: predicted %s %x, the log has %s %x there", d.Position, d.Label, []byte(d.Expected), d.LoggedLabel, []byte(d.Actual)))
		}
	case d.Label != "":
		parts = append(parts, fmt.Sprintf("event #%d %s: predicted %x, not in the log", d.Position, d.Label, []byte(d.Expected)))
	case d.LoggedLabel != "" || d.Actual != nil:
		label := d.LoggedLabel
		if label == "" {
			label = "(unlabelled)"
		}
		parts = append(parts, fmt.Sprintf("event #%d %s: logged %x, not predicted", d.Position, label, []byte(d.Actual)))
	}
	if d.Note != "" {
		parts = append(parts, d.Note)
	}
	if len(d.DependsOn) > 0 {
		parts = append(parts, "depends on "+strings.Join(d.DependsOn, ", "))
	}
	return "first divergence: " + strings.Join(parts, "; ")
}
