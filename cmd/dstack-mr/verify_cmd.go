package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/mr"
	"github.com/dstack-mr/dstack-mr/verify"
)

// exitNotVerified is verify's exit code when the attestation was read but does not verify.
const exitNotVerified = 3

func verifyCommand(log *logrus.Logger) *cli.Command {
	const cat = "Attestation"
	return &cli.Command{
		Name:      "verify",
		Usage:     "check a dstack attestation (TDX quote + event log + VM config) against an expected image",
		ArgsUsage: "[IMAGE]",
		Description: "Replays every RTMR from the event log and compares it with the quote, recomputes\n" +
			"MRTD and RTMR0-2 for the expected image and the VM shape (from vm_config, overridden by\n" +
			"any VM shape flag given; without a vm_config, from the flags alone, at least --cpu and\n" +
			"--memory, on vm_config's defaults, not the flag defaults shown below), checks the ACPI\n" +
			"digests, and reports the RTMR3 app facts. The report says where each shape field came\n" +
			"from. A QEMU newer than the newest ACPI profile (11.1) is predicted with that profile and\n" +
			"the assumption is reported as the acpi-profile-assumed check.\n\n" +
			"IMAGE (metadata.json, image directory or release tarball) selects full mode;\n" +
			"--measurement (measurement.tdx.cbor) selects lite mode; without either, the VM's own\n" +
			"vm_config.tdx_measurement is used and must be bound with --os-image-hash.\n" +
			"The quote's authenticity is checked offline as by 'quote verify' (signature, QE report,\n" +
			"PCK chain to Intel's pinned root at --time) and is required for VERIFIED; with --collateral\n" +
			"its TCB status must meet --tcb-policy too, without it the TCB status is listed as not checked.\n\n" +
			"An --attestation that is dstack's SEV-SNP attestation (tee_variant dstack-amd-sev-snp) is verified\n" +
			"instead as the README's AMD SEV-SNP section says: the report's VCEK chain to AMD's pinned root\n" +
			"(from its cert chain, or --vcek and --ask), HOST_DATA, and the MEASUREMENT of its launch document\n" +
			"(or of IMAGE's bios-sev) for the vm_config's vCPUs.\n\n" +
			"Exit status: 0 verified, 3 read but not verified, 1 unreadable input or usage error.",
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "attestation", Category: cat, Usage: "GetQuote response JSON (quote, event_log, vm_config, report_data)"},
			&cli.StringFlag{Name: "quote", Category: cat, Usage: "TDX quote file, binary or hex"},
			&cli.StringFlag{Name: "info", Category: cat, Usage: "guest agent Info JSON (tcb_info, vm_config) instead of an attestation: replayed and predicted, never VERIFIED (no quote)"},
			&cli.StringFlag{Name: "event-log", Category: cat, Usage: "event log JSON"},
			&cli.StringFlag{Name: "vm-config", Category: cat, Usage: "vm_config JSON"},
			&cli.StringFlag{Name: "measurement", Category: cat, Usage: "measurement.tdx.cbor of the expected image (lite mode)"},
			&cli.StringFlag{Name: "compose-hash", Category: cat, Usage: "required compose hash (hex)"},
			&cli.StringFlag{Name: "app-id", Category: cat, Usage: "required app id (hex)"},
			&cli.StringFlag{Name: "instance-id", Category: cat, Usage: "required instance id (hex)"},
			&cli.StringFlag{Name: "os-image-hash", Category: cat, Usage: "required os_image_hash (hex)"},
			&cli.StringFlag{Name: "key-provider", Category: cat, Usage: "required key provider name (e.g. kms, local-sgx)"},
			&cli.StringFlag{Name: "key-provider-id", Category: cat, Usage: "required key provider id (hex)"},
			&cli.StringFlag{Name: "time", Category: cat, Usage: "RFC 3339 time the quote's PCK certificates (and the collateral) must be valid at (default: now)"},
			&cli.StringFlag{Name: "collateral", Category: cat, Usage: "dcap-qvl QuoteCollateralV3 JSON: evaluate the quote's TCB status (as quote verify does)"},
			&cli.StringFlag{Name: "tcb-policy", Category: cat, Value: "default", Usage: "acceptable TCB statuses with --collateral: default, strict, or a comma-separated list"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		}, imageReadFlags()...), append(verifyMachineFlags(), snpVerifyFlags()...)...),
		Action: func(c *cli.Context) error {
			if handled, err := verifySNPAttestation(c, log); handled {
				return err
			}
			opts, err := verifyOptions(c, log)
			if err != nil {
				return err
			}
			rep, err := verify.Verify(*opts)
			if err != nil {
				return err
			}
			rep.ToolVersion, rep.SchemaVersion = toolVersion(), jsonSchemaVersion
			if c.Bool("json") {
				// tee_variant as dstack names it, so a caller tells TDX and SEV-SNP reports apart.
				if err := printJSON(c.App.Writer, struct {
					TEEVariant string `json:"tee_variant"`
					*verify.Report
				}{"dstack-tdx", rep}); err != nil {
					return err
				}
			} else {
				printVerifyReport(c.App.Writer, rep)
			}
			if !rep.Verified {
				return &exitError{code: exitNotVerified, err: fmt.Errorf("attestation NOT verified")}
			}
			return nil
		},
	}
}

func readFlagFile(c *cli.Context, name string) ([]byte, error) {
	p := c.String(name)
	if p == "" {
		return nil, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", name, err)
	}
	return b, nil
}

func hexFlag(c *cli.Context, name string) ([]byte, error) {
	s := strings.TrimPrefix(strings.TrimSpace(c.String(name)), "0x")
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("--%s: not hex: %w", name, err)
	}
	return b, nil
}

func verifyOptions(c *cli.Context, log *logrus.Logger) (*verify.Options, error) {
	var opts verify.Options
	var err error
	for name, dst := range map[string]*[]byte{"attestation": &opts.Attestation, "quote": &opts.Quote,
		"event-log": &opts.EventLog, "vm-config": &opts.VMConfig, "measurement": &opts.LiteMeasurement, "collateral": &opts.Collateral, "info": &opts.Info} {
		if *dst, err = readFlagFile(c, name); err != nil {
			return nil, err
		}
	}
	if opts.LiteMeasurement != nil {
		if _, err := verify.DecodeLite(opts.LiteMeasurement); err != nil {
			return nil, fmt.Errorf("--measurement %s: %w", c.String("measurement"), err)
		}
	}
	if opts.Attestation == nil && opts.Info == nil && (opts.Quote == nil || opts.EventLog == nil) {
		return nil, fmt.Errorf("give --attestation, or --quote and --event-log (and --vm-config), or --info")
	}
	for name, dst := range map[string]*[]byte{"compose-hash": &opts.Expect.ComposeHash, "app-id": &opts.Expect.AppID,
		"instance-id": &opts.Expect.InstanceID, "os-image-hash": &opts.Expect.OSImageHash} {
		if *dst, err = hexFlag(c, name); err != nil {
			return nil, err
		}
	}
	if opts.QuoteTime, err = parseTimeFlag(c, "time"); err != nil {
		return nil, err
	}
	opts.TCBPolicy = c.String("tcb-policy")
	opts.Expect.KeyProviderName = c.String("key-provider")
	opts.Expect.KeyProviderID = strings.TrimPrefix(c.String("key-provider-id"), "0x")
	switch {
	case c.NArg() > 1:
		return nil, fmt.Errorf("verify takes at most one IMAGE")
	case c.NArg() == 1 && opts.LiteMeasurement != nil:
		return nil, fmt.Errorf("give IMAGE (full mode) or --measurement (lite mode), not both")
	case c.NArg() == 1:
		img, err := openMeasuredImage(c, c.Args().First(), log)
		if err != nil {
			return nil, err
		}
		if err := opts.UseImage(img); err != nil {
			return nil, err
		}
	}
	override, fields, err := machineOverride(c)
	if err != nil {
		return nil, err
	}
	opts.OverrideMachine, opts.OverrideFields = override, fields
	return &opts, nil
}

// shapeFlagFields maps each VM shape flag to the vm_config field it stands for (verify reports
// where every shape field came from).
var shapeFlagFields = map[string]string{
	"cpu": "cpu_count", "memory": "memory_size", "qemu-version": "qemu_version", "pic": "pic", "smm": "smm",
	"num-nics": "num_nics", "num-verity-volumes": "num_verity_volumes", "num-gpus": "num_gpus",
	"num-nvswitches": "num_nvswitches", "hotplug-off": "hotplug_off", "root-verity": "root_verity",
	"pci-hole64-size": "pci_hole64_size", "hugepages": "hugepages", "host-share-mode": "host_share_mode",
	"two-pass-add-pages": "qemu_single_pass_add_pages", "no-kernel-patch": "kernel_setup_header_patch",
	"numa-nodes": "numa_nodes", "qemu-build": "qemu_build",
}

// machineOverride applies the VM shape flags the user actually gave on top of vm_config (or,
// without one, on top of vm_config's defaults), and names the fields they set.
func machineOverride(c *cli.Context) (func(*mr.Machine), []string, error) {
	var setters []func(*mr.Machine)
	var fields []string
	if c.IsSet("cpu") {
		n, err := strconv.Atoi(c.String("cpu"))
		if err != nil || n <= 0 {
			return nil, nil, fmt.Errorf("--cpu %q: verify takes one positive whole number", c.String("cpu"))
		}
		setters = append(setters, func(m *mr.Machine) { m.CPUs = n })
		fields = append(fields, shapeFlagFields["cpu"])
	}
	if c.IsSet("memory") {
		v, err := parseSize(c.String("memory"))
		if err != nil || v == 0 {
			return nil, nil, fmt.Errorf("--memory %q: verify takes one non-zero size", c.String("memory"))
		}
		setters = append(setters, func(m *mr.Machine) { m.MemoryBytes = v })
		fields = append(fields, shapeFlagFields["memory"])
	}
	base, err := baseMachine(c)
	if err != nil {
		return nil, nil, err
	}
	b := base.Config
	set := func(name string, f func(m *mr.Machine)) {
		if c.IsSet(name) {
			setters = append(setters, f)
			fields = append(fields, shapeFlagFields[name])
		}
	}
	set("qemu-version", func(m *mr.Machine) { m.QEMUVersion = b.QEMUVersion })
	set("pic", func(m *mr.Machine) { m.PIC = b.PIC })
	set("smm", func(m *mr.Machine) { m.SMM = b.SMM })
	set("num-nics", func(m *mr.Machine) { m.NumNICs = b.NumNICs })
	set("num-verity-volumes", func(m *mr.Machine) { m.NumVerityVolumes = b.NumVerityVolumes })
	set("num-gpus", func(m *mr.Machine) { m.NumGPUs = b.NumGPUs })
	set("num-nvswitches", func(m *mr.Machine) { m.NumNVSwitches = b.NumNVSwitches })
	set("hotplug-off", func(m *mr.Machine) { m.HotplugOff = b.HotplugOff })
	set("root-verity", func(m *mr.Machine) { m.RootVerity = b.RootVerity })
	set("pci-hole64-size", func(m *mr.Machine) { m.PCIHole64Size, m.PCIHole64SizeSet = b.PCIHole64Size, true })
	set("hugepages", func(m *mr.Machine) { m.Hugepages = b.Hugepages })
	set("host-share-mode", func(m *mr.Machine) { m.HostShareMode = b.HostShareMode })
	set("numa-nodes", func(m *mr.Machine) { m.NUMANodes = b.NUMANodes })
	set("two-pass-add-pages", func(m *mr.Machine) { m.TwoPassAddPages = base.TwoPass })
	set("no-kernel-patch", func(m *mr.Machine) { m.NoKernelPatch = base.NoKernelPatch })
	set("qemu-build", func(m *mr.Machine) { m.QEMUBuild = base.QEMUBuild })
	if len(setters) == 0 {
		return nil, nil, nil
	}
	return func(m *mr.Machine) {
		for _, s := range setters {
			s(m)
		}
	}, fields, nil
}

// verifyMachineFlags are the VM shape flags as verify uses them: overrides of vm_config, so
// their defaults are vm_config's (or its defaults when a key is absent), not the flag defaults.
func verifyMachineFlags() []cli.Flag {
	flags := machineFlags()
	for _, f := range flags {
		const d = "vm_config's"
		switch x := f.(type) {
		case *cli.StringFlag:
			x.DefaultText = d
		case *cli.BoolFlag:
			x.DefaultText = d
		case *cli.IntFlag:
			x.DefaultText = d
		}
	}
	return flags
}
