package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
			"With --policy (dstack's auth-simple format) the report also gives dstack's KMS values\n" +
			"(boot_info) and whether that policy lets the KMS release keys to the CVM; VERIFIED stays\n" +
			"the attestation's verdict, but a denial (or a policy that cannot be evaluated) exits 3.\n\n" +
			"Inputs are recognised by content, not name; a file given to the wrong flag is named for what\n" +
			"it is. A NEAR AI cloud report holds several CVMs (gateway, model[N], model[N].compose-manager):\n" +
			"each is verified and reported in turn (--json: {\"cvms\": [{\"name\", \"report\"}, ...]}), the\n" +
			"exit status is the worst of them; --cvm picks one, reported as a single attestation.\n\n" +
			"An --attestation that is dstack's SEV-SNP attestation (tee_variant dstack-amd-sev-snp) is verified\n" +
			"instead as the README's AMD SEV-SNP section says: the report's VCEK chain to AMD's pinned root\n" +
			"(from its cert chain, or --vcek and --ask), HOST_DATA, and the MEASUREMENT of its launch document\n" +
			"(or of IMAGE's bios-sev) for the vm_config's vCPUs.\n\n" +
			"Exit status: 0 verified (and allowed by --policy), 3 read but not verified or denied, 1\n" +
			"unreadable input or usage error.",
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "attestation", Category: cat, Usage: "attestation: a GetQuote response, dstack's {\"attestation\": hex}, a NEAR AI cloud report (every CVM verified) or a NEAR MPC public_data.json"},
			&cli.StringFlag{Name: "cvm", Category: cat, Usage: "verify one CVM of a NEAR AI report: gateway, model[N], model[N].compose-manager, a model name, or its number (from 1)"},
			&cli.StringFlag{Name: "quote", Category: cat, Usage: "TDX quote file: binary, hex, or a JSON array of byte values (near/mpc quote.json)"},
			&cli.StringFlag{Name: "info", Category: cat, Usage: "guest agent Info JSON (tcb_info, vm_config) or a bare tcb_info (near/mpc tcb_info.json) instead of an attestation: replayed and predicted, never VERIFIED (no quote)"},
			&cli.StringFlag{Name: "event-log", Category: cat, Usage: "event log JSON: the list of events, or a tcb_info holding one (near/mpc tcb_info.json)"},
			&cli.StringFlag{Name: "vm-config", Category: cat, Usage: "vm_config JSON"},
			&cli.StringFlag{Name: "measurement", Category: cat, Usage: "measurement.tdx.cbor of the expected image (lite mode)"},
			&cli.StringFlag{Name: "app-compose", Category: cat, Usage: "the app-compose.json you reviewed (or - for stdin): it must hash to the attested compose hash, as given or " +
				"in the deterministic form of dstack's SDK (getComposeHash, also normalized); the report names the form and shows its facts"},
			&cli.StringFlag{Name: "compose-hash", Category: cat, Usage: "required compose hash: 64 hex digits (SHA-256 of app-compose.json; for the file itself use --app-compose)"},
			&cli.StringFlag{Name: "app-id", Category: cat, Usage: "required app id: 40 hex digits (20 bytes)"},
			&cli.StringFlag{Name: "instance-id", Category: cat, Usage: "required instance id: 40 hex digits (20 bytes)"},
			&cli.StringFlag{Name: "os-image-hash", Category: cat, Usage: "required os_image_hash: 64 hex digits (SHA-256 of the image's sha256sum.txt)"},
			&cli.StringFlag{Name: "key-provider", Category: cat, Usage: "required key provider name (e.g. kms, local-sgx)"},
			&cli.StringFlag{Name: "key-provider-id", Category: cat, Usage: "required key provider id: hex (the KMS root public key, or the local key provider's measurement)"},
			&cli.StringFlag{Name: "time", Category: cat, Usage: "RFC 3339 time the quote's PCK certificates (and the collateral) must be valid at (default: now)"},
			&cli.StringFlag{Name: "collateral", Category: cat, Usage: "dcap-qvl QuoteCollateralV3 JSON (or a NEAR MPC public_data.json, which carries it): evaluate the quote's TCB status (as quote verify does)"},
			&cli.StringFlag{Name: "tcb-policy", Category: cat, Value: "default", Usage: "acceptable TCB statuses with --collateral: default, strict, or a comma-separated list"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		}, append(policyFlags(cat), imageReadFlags()...)...), append(verifyMachineFlags(), snpVerifyFlags()...)...),
		Action: func(c *cli.Context) error {
			// Read once: it decides the TEE variant, then it is the attestation verified.
			attestation, err := readFlagFile(c, "attestation")
			if err != nil {
				return err
			}
			if handled, err := verifySNPAttestation(c, log, attestation); handled {
				return err
			}
			opts, err := verifyOptions(c, log, attestation)
			if err != nil {
				return err
			}
			cvms, err := selectedCVMs(c, opts.Attestation)
			if err != nil {
				return err
			}
			reports := make([]*verify.Report, len(cvms))
			for i, cvm := range cvms {
				o := *opts
				if cvm.Name != "" || len(cvms) > 1 {
					o.Attestation = cvm.Attestation
				}
				rep, err := verify.Verify(o)
				if err != nil {
					err = nameInputFile(c, err)
					if cvm.Name != "" {
						err = fmt.Errorf("CVM %s: %w", cvm.Title(), err)
					}
					return err
				}
				rep.ToolVersion, rep.SchemaVersion = toolVersion(), jsonSchemaVersion
				reports[i] = rep
			}
			if len(cvms) == 1 {
				if cvms[0].Name != "" && !c.Bool("json") {
					fmt.Fprintf(c.App.Writer, "== CVM %s\n", cvms[0].Title())
				}
				return printVerifyResult(c, opts, reports[0])
			}
			return printVerifyResults(c, opts, cvms, reports)
		},
	}
}

// selectedCVMs splits an attestation input into its CVMs (a NEAR AI report holds several) and
// applies --cvm.
func selectedCVMs(c *cli.Context, attestation []byte) ([]verify.NamedInput, error) {
	if attestation == nil {
		if c.IsSet("cvm") {
			return nil, fmt.Errorf("--cvm picks a CVM of an --attestation report; there is none")
		}
		return []verify.NamedInput{{}}, nil
	}
	cvms, err := verify.SplitAttestations(attestation)
	if err != nil {
		return nil, fmt.Errorf("--attestation %s: %w", c.String("attestation"), err)
	}
	if c.IsSet("cvm") {
		one, err := verify.SelectCVM(cvms, c.String("cvm"))
		if err != nil {
			return nil, fmt.Errorf("--cvm %w", err)
		}
		cvms = []verify.NamedInput{one}
	}
	return cvms, nil
}

// nameInputFile puts the file the user typed in front of an input error.
func nameInputFile(c *cli.Context, err error) error {
	var ie *verify.InputError
	if errors.As(err, &ie) && c.String(ie.Flag) != "" {
		return fmt.Errorf("--%s %s: %w", ie.Flag, c.String(ie.Flag), ie.Err)
	}
	return err
}

func printVerifyResult(c *cli.Context, opts *verify.Options, rep *verify.Report) error {
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, rep); err != nil {
			return err
		}
	} else {
		printVerifyReport(c.App.Writer, rep)
	}
	if !rep.Verified {
		return &exitError{code: exitNotVerified, err: fmt.Errorf("attestation NOT verified")}
	}
	return policyVerdict(opts, rep)
}

// verifyMultiResult is verify --json for an input holding several CVMs (a NEAR AI report):
// one report each, as a single CVM's report reads (schemas/verify.schema.json, $defs/multi_cvm).
type verifyMultiResult struct {
	SchemaVersion int               `json:"schema_version"`
	Verified      bool              `json:"verified"`
	InputForm     string            `json:"input_form"`
	CVMs          []verifyCVMResult `json:"cvms"`
	ToolVersion   string            `json:"tool_version"`
}

type verifyCVMResult struct {
	Name     string         `json:"name"`
	Label    string         `json:"label,omitempty"`
	Verified bool           `json:"verified"`
	Report   *verify.Report `json:"report"`
}

// printVerifyResults reports every CVM of a report; the exit status is the worst of them.
func printVerifyResults(c *cli.Context, opts *verify.Options, cvms []verify.NamedInput, reports []*verify.Report) error {
	res := verifyMultiResult{SchemaVersion: jsonSchemaVersion, Verified: true, InputForm: "NEAR AI cloud attestation report", ToolVersion: toolVersion()}
	var failed []string
	for i, rep := range reports {
		res.CVMs = append(res.CVMs, verifyCVMResult{cvms[i].Name, cvms[i].Label, rep.Verified, rep})
		if !rep.Verified {
			res.Verified = false
			failed = append(failed, cvms[i].Name)
		}
	}
	w := c.App.Writer
	if c.Bool("json") {
		if err := printJSON(w, res); err != nil {
			return err
		}
	} else {
		for i, rep := range reports {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "== CVM %d of %d: %s\n", i+1, len(reports), cvms[i].Title())
			printVerifyReport(w, rep)
		}
		fmt.Fprintf(w, "\n%s: %d CVMs, %d verified\n", res.InputForm, len(reports), len(reports)-len(failed))
	}
	if len(failed) > 0 {
		return &exitError{code: exitNotVerified, err: fmt.Errorf("%d of %d CVMs NOT verified: %s", len(failed), len(reports), strings.Join(failed, ", "))}
	}
	for i, rep := range reports {
		if err := policyVerdict(opts, rep); err != nil {
			return fmt.Errorf("CVM %s: %w", cvms[i].Title(), err)
		}
	}
	return nil
}

// maxVerifyInputBytes bounds each file verify reads (a NEAR AI report with GPU evidence is a
// few hundred KiB).
const maxVerifyInputBytes = 64 << 20

func readFlagFile(c *cli.Context, name string) ([]byte, error) {
	p := c.String(name)
	if p == "" {
		return nil, nil
	}
	b, err := readBounded(p, maxVerifyInputBytes)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", name, err)
	}
	return b, nil
}

// hexFlags are verify's pinned values with the length dstack gives each (0: any length).
var hexFlags = []struct {
	name, what string
	size       int
}{
	{"compose-hash", "the SHA-256 of app-compose.json", 32},
	{"app-id", "the app id", 20},
	{"instance-id", "the instance id", 20},
	{"os-image-hash", "the SHA-256 of the image's sha256sum.txt", 32},
	{"key-provider-id", "the key provider id", 0},
}

// hexFlag decodes a pinned value, refusing as a usage error anything that cannot be what the
// flag wants, and saying what it wants.
func hexFlag(c *cli.Context, name, what string, size int) ([]byte, error) {
	raw := c.String(name)
	s := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(raw), "0x"), "0X")
	if !c.IsSet(name) {
		return nil, nil
	}
	want := "hex digits, optionally 0x-prefixed"
	if size > 0 {
		want = fmt.Sprintf("%d bytes as %d hex digits (%s), optionally 0x-prefixed", size, 2*size, what)
	}
	if s == "" {
		return nil, fmt.Errorf("--%s is empty: want %s", name, want)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		msg := fmt.Sprintf("--%s %q: want %s", name, raw, want)
		if looksLikePath(raw) {
			msg += "; this looks like a file path"
			if name == "compose-hash" {
				msg += ": to check an app-compose file, use --app-compose " + raw
			}
		} else if len(s)%2 == 1 && strings.Trim(s, "0123456789abcdefABCDEF") == "" {
			msg += fmt.Sprintf("; got an odd number of hex digits (%d)", len(s))
		}
		return nil, errors.New(msg)
	}
	if size > 0 && len(b) != size {
		return nil, fmt.Errorf("--%s %q: want %s, got %d bytes (%d hex digits)", name, raw, want, len(b), len(s))
	}
	return b, nil
}

// looksLikePath: hex has no path separators or dots, so such a value was meant as a file.
func looksLikePath(s string) bool {
	if strings.ContainsAny(s, `/\.`) {
		return true
	}
	_, err := os.Stat(s)
	return err == nil
}

// maxAppComposeBytes bounds --app-compose; dstack's documents are a few KiB.
const maxAppComposeBytes = 4 << 20

// readAppCompose reads --app-compose from a file, or from stdin for "-".
func readAppCompose(c *cli.Context) ([]byte, error) {
	p := c.String("app-compose")
	if !c.IsSet("app-compose") {
		return nil, nil
	}
	if p == "" {
		return nil, errors.New("--app-compose is empty: want the app-compose.json file, or - for stdin")
	}
	var r io.Reader
	name := p
	if p == "-" {
		if c.Args().First() == "-" {
			return nil, errors.New("--app-compose - and IMAGE - both read stdin: give one of them as a file")
		}
		r, name = c.App.Reader, "stdin"
	} else {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("--app-compose: %w", err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("--app-compose %s: not a regular file", p)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("--app-compose: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxAppComposeBytes+1))
	if err != nil {
		return nil, fmt.Errorf("--app-compose %s: %w", name, err)
	}
	if len(b) > maxAppComposeBytes {
		return nil, fmt.Errorf("--app-compose %s: over %d bytes: not an app-compose document", name, maxAppComposeBytes)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("--app-compose %s: empty", name)
	}
	return b, nil
}

func verifyOptions(c *cli.Context, log *logrus.Logger, attestation []byte) (*verify.Options, error) {
	opts := verify.Options{Attestation: attestation}
	var err error
	for name, dst := range map[string]*[]byte{"quote": &opts.Quote,
		"event-log": &opts.EventLog, "vm-config": &opts.VMConfig, "measurement": &opts.LiteMeasurement, "collateral": &opts.Collateral, "info": &opts.Info} {
		if *dst, err = readFlagFile(c, name); err != nil {
			return nil, err
		}
	}
	if opts.Collateral != nil {
		if opts.Collateral, err = verify.CollateralOf(opts.Collateral); err != nil {
			return nil, fmt.Errorf("--collateral %s: %w", c.String("collateral"), err)
		}
	}
	if opts.LiteMeasurement != nil {
		if _, err := verify.DecodeLite(opts.LiteMeasurement); err != nil {
			if verify.Sniff(opts.LiteMeasurement) != verify.FormLiteDocument {
				err = verify.WrongInput("a measurement document (measurement.tdx.cbor)", opts.LiteMeasurement)
			}
			return nil, fmt.Errorf("--measurement %s: %w", c.String("measurement"), err)
		}
	}
	if opts.Attestation == nil && opts.Info == nil && (opts.Quote == nil || opts.EventLog == nil) {
		return nil, fmt.Errorf("give --attestation, or --quote and --event-log (and --vm-config), or --info")
	}
	pins := map[string][]byte{}
	for _, f := range hexFlags {
		if pins[f.name], err = hexFlag(c, f.name, f.what, f.size); err != nil {
			return nil, err
		}
	}
	opts.Expect.ComposeHash, opts.Expect.AppID, opts.Expect.InstanceID, opts.Expect.OSImageHash =
		pins["compose-hash"], pins["app-id"], pins["instance-id"], pins["os-image-hash"]
	if pins["key-provider-id"] != nil {
		opts.Expect.KeyProviderID = hex.EncodeToString(pins["key-provider-id"])
	}
	if opts.AppCompose, err = readAppCompose(c); err != nil {
		return nil, err
	}
	if opts.QuoteTime, err = parseTimeFlag(c, "time"); err != nil {
		return nil, err
	}
	if _, err := parseTCBPolicyFlag(c.String("tcb-policy")); err != nil {
		return nil, err
	}
	opts.TCBPolicy = c.String("tcb-policy")
	if err := loadPolicy(c, &opts); err != nil {
		return nil, err
	}
	opts.Expect.KeyProviderName = c.String("key-provider")
	switch {
	case c.NArg() > 1:
		return nil, fmt.Errorf("verify takes at most one IMAGE")
	case c.NArg() == 1 && opts.LiteMeasurement != nil:
		return nil, fmt.Errorf("give IMAGE (full mode) or --measurement (lite mode), not both")
	case c.NArg() == 1:
		if err := notAnImage(c.Args().First()); err != nil {
			return nil, err
		}
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

// notAnImage names a small file given as IMAGE that is recognisably something else (an
// attestation, a quote, a measurement document): the image readers would only say it is not a
// metadata.json.
func notAnImage(path string) error {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() || st.Size() > 16<<20 {
		return nil // the image readers report it
	}
	data, err := readBounded(path, 16<<20)
	if err != nil {
		return nil
	}
	switch verify.Sniff(data) {
	case verify.FormUnknown, verify.FormEmpty, verify.FormMetadataJSON:
		return nil
	}
	return fmt.Errorf("IMAGE %s: %w", path, verify.WrongInput("an OS image (metadata.json, its directory or a release tarball)", data))
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

// verifyMachineFlags are the VM shape flags as verify uses them: overrides of vm_config, so a
// flag vm_config carries defaults to vm_config's value, and --cpu and --memory take one value
// (verify judges one CVM).
func verifyMachineFlags() []cli.Flag {
	flags := machineFlags()
	for _, f := range flags {
		name := f.Names()[0]
		key, carried := vmConfigKeyOfFlag[name]
		if name == "qemu-build" {
			f.(*cli.StringFlag).DefaultText = "upstream, or dstack-fork where only its kernel digest matches the quote's RTMR1 (reported as the qemu-build check)"
		}
		if !carried {
			continue // smm, root-verity, qemu-build, ...: vm_config has no key; the flag's own default holds
		}
		d := "vm_config's " + key
		switch x := f.(type) {
		case *cli.StringFlag:
			x.DefaultText = d
			switch name {
			case "cpu":
				x.Usage = "vCPU count of the CVM (one number), overriding vm_config's cpu_count"
			case "memory":
				x.Usage = "memory of the CVM (one size: bytes, or K/M/G/T binary as QEMU's -m reads them, 2G = 2 GiB), overriding vm_config's memory_size"
			}
		case *cli.BoolFlag:
			x.DefaultText = d
		case *cli.IntFlag:
			x.DefaultText = d
		}
	}
	return flags
}

// vmConfigKeyOfFlag names the vm_config key each VM shape flag overrides; flags absent here
// have no vm_config key.
var vmConfigKeyOfFlag = map[string]string{
	"cpu": "cpu_count", "memory": "memory_size", "qemu-version": "qemu_version", "pic": "pic",
	"two-pass-add-pages": "qemu_single_pass_add_pages", "num-nics": "num_nics", "num-verity-volumes": "num_verity_volumes",
	"num-gpus": "num_gpus", "num-nvswitches": "num_nvswitches", "hotplug-off": "hotplug_off", "pci-hole64-size": "pci_hole64_size",
	"hugepages": "hugepages", "host-share-mode": "host_share_mode", "numa-nodes": "numa_nodes",
}
