package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/mr"
)

func measureCommand(log *logrus.Logger) *cli.Command {
	return &cli.Command{
		Name:      "measure",
		Usage:     "compute MRTD and RTMR0-2 (or, with --platform sev-snp, the SEV-SNP launch MEASUREMENT) for an image and VM shape",
		ArgsUsage: "[IMAGE]",
		Description: "IMAGE is a dstack metadata.json, a directory holding one, or a release tarball\n" +
			"(.tar.gz, .tgz, .tar, .tar.zst). Without IMAGE, give the boot components with\n" +
			"--firmware, --kernel, --initrd and --cmdline.\n\n" +
			"--cpu and --memory take comma-separated lists; every combination is measured, with the\n" +
			"per-image work (firmware parsing, kernel and initrd hashing) done once. A single shape\n" +
			"prints one JSON object, several print an array.\n\n" +
			"--platform sev-snp computes the AMD SEV-SNP launch MEASUREMENT instead, from the image's bios-sev\n" +
			"(an AmdSev OVMF), kernel, initrd and command line, or from --measurement measurement.snp.cbor, for\n" +
			"each --cpu and --vcpu-type; it depends on no other VM shape flag but --hugepages and --numa-nodes\n" +
			"(dstack-vmm rounds a hugepages VM's vCPUs up to a multiple of its NUMA nodes).",
		Flags: append(append(append(append(imageFlags(), machineFlags()...), platformFlag()), snpMeasureFlags()...),
			&cli.BoolFlag{Name: "json", Usage: "print JSON: registers, event log and input digests (one shape: an object; several: an array)"},
			&cli.BoolFlag{Name: "json-lines", Usage: "print one JSON object per shape, one per line (for batches)"},
		),
		Action: func(c *cli.Context) error {
			platform, err := selectedPlatform(c)
			if err != nil {
				return err
			}
			if platform == platformSEVSNP {
				return measureSNP(c, log)
			}
			shapes, err := machineShapes(c)
			if err != nil {
				return err
			}
			img, err := loadImage(c, log)
			if err != nil {
				return err
			}
			results, err := measureShapes(img, shapes, log)
			if err != nil {
				return err
			}
			var warnings [][]string
			for _, r := range results {
				warnings = append(warnings, r.Warnings)
			}
			warnOnce(log, warnings)
			logDecisions(log, results)
			if c.Bool("json-lines") {
				enc := json.NewEncoder(c.App.Writer)
				for _, r := range results {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			if c.Bool("json") {
				if len(results) == 1 {
					return printJSON(c.App.Writer, results[0])
				}
				return printJSON(c.App.Writer, results)
			}
			printMeasurements(c.App.Writer, results)
			return nil
		},
	}
}

// measureResult is one shape's answer, as printed with --json.
type measureResult struct {
	SchemaVersion int         `json:"schema_version"`
	MRTD          string      `json:"mrtd"`
	RTMR0         string      `json:"rtmr0"`
	RTMR1         string      `json:"rtmr1"`
	RTMR2         string      `json:"rtmr2"`
	Machine       machineJSON `json:"machine"`
	EventLog      []mr.Event  `json:"event_log"`
	Inputs        inputsJSON  `json:"inputs"`
	OSImageHash   string      `json:"os_image_hash,omitempty"`
	// ChecksumsVerified: the image's files matched its complete sha256sum.txt (absent in raw
	// mode); false only under --no-verify-checksums.
	ChecksumsVerified *bool `json:"checksums_verified,omitempty"`
	// Warnings name what this shape's value rests on beyond proof; never null.
	Warnings    []string `json:"warnings"`
	ToolVersion string   `json:"tool_version"`
}

// machineJSON is the machine a value was computed for, and whether the kernel was measured
// with QEMU's setup-header patch.
type machineJSON struct {
	mr.MachineReport
	KernelPatched bool `json:"kernel_setup_header_patched"`
}

func describeMachine(m *mr.Machine, kernelPatched bool) machineJSON {
	return machineJSON{MachineReport: m.Report(), KernelPatched: kernelPatched}
}

// measureShapes prepares the image once and measures every shape, in parallel, keeping the
// order of the shapes. The first error wins; nothing is printed on error.
func measureShapes(img *loadedImage, shapes []machineShape, log *logrus.Logger) ([]measureResult, error) {
	prepared, err := img.prepare()
	if err != nil {
		return nil, err
	}
	if log.IsLevelEnabled(logrus.DebugLevel) {
		if tr, err := prepared.Firmware.Traits(); err == nil {
			log.Debugf("firmware traits: CC measurement %v, Secure Boot support %v, SMM %v, fw_cfg measurement %v, load options %s, named kernel blobs %v; kernel header normalized %v",
				tr.CCMeasurement, tr.SecureBootCapable, tr.SMMRequired, tr.FwCfgMeasurement, tr.LoadOptions, tr.NamedKernelBlobs, prepared.KernelHeaderNormalized)
		}
	}
	results := make([]measureResult, len(shapes))
	errs := make([]error, len(shapes))
	version := toolVersion()
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range shapes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			m := mr.Machine{MachineConfig: shapes[i].Config, TwoPassAddPages: shapes[i].TwoPass, NoKernelPatch: shapes[i].NoKernelPatch, QEMUBuild: shapes[i].QEMUBuild}
			res, err := prepared.Measure(m)
			var patched bool
			if err == nil {
				patched, err = prepared.KernelPatched(m)
			}
			if err != nil {
				if len(shapes) > 1 {
					err = fmt.Errorf("cpu %d, memory %s: %w", m.CPUs, formatSize(m.MemoryBytes), err)
				}
				errs[i] = inFlagTerms(err)
				return
			}
			warnings := append([]string{}, m.Warnings()...)
			if w, err := otherBuildWarning(prepared, m, patched, res.RTMR1); err != nil {
				errs[i] = err
				return
			} else if w != "" {
				warnings = append(warnings, w)
			}
			results[i] = measureResult{
				MRTD: res.MRTD, RTMR0: res.RTMR0, RTMR1: res.RTMR1, RTMR2: res.RTMR2,
				Machine: describeMachine(&m, patched), EventLog: res.EventLog,
				Inputs: img.describe, OSImageHash: img.osImageHash, ChecksumsVerified: img.checksumsVerified,
				Warnings: warnings, ToolVersion: version, SchemaVersion: jsonSchemaVersion,
			}
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return results, nil
}

func printMeasurements(w io.Writer, results []measureResult) {
	if len(results) == 0 {
		return
	}
	single := len(results) == 1
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if !single {
			fmt.Fprintf(w, "cpu %d, memory %s\n", r.Machine.CPUCount, formatSize(r.Machine.MemorySize))
		}
		fmt.Fprintf(w, "MRTD:  %s\nRTMR0: %s\nRTMR1: %s\nRTMR2: %s\n", r.MRTD, r.RTMR0, r.RTMR1, r.RTMR2)
		if !single {
			fmt.Fprintf(w, "machine: %s\n", machineLine(r))
		}
	}
	r := results[0]
	if single {
		fmt.Fprintf(w, "\nmachine: %s\n", machineLine(r))
		fmt.Fprintln(w, "events:")
		for _, e := range r.EventLog {
			fmt.Fprintf(w, "  RTMR%d %-40s %s\n", e.IMR, e.Label, shortHex(e.Digest))
		}
	}
	// The inputs are the same for every shape: their identity is printed once.
	if r.OSImageHash != "" || checksumNote(r) != "" {
		if !single {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "os_image_hash: %s%s\n", orDash(r.OSImageHash), checksumNote(r))
	}
}

func shortHex(s string) string {
	if len(s) > 24 {
		return s[:16] + "…" + s[len(s)-8:]
	}
	return s
}

// otherBuildWarning names RTMR1 under the other QEMU build when the two disagree about the
// kernel patch (patched: whether m's build patches it).
func otherBuildWarning(im *mr.Image, m mr.Machine, patched bool, rtmr1 string) (string, error) {
	alt, differs, err := im.OtherQEMUBuild(m)
	if err != nil || !differs {
		return "", err
	}
	altRTMR1, err := im.RTMR1(alt)
	if err != nil || altRTMR1 == rtmr1 {
		return "", err
	}
	return fmt.Sprintf("qemu-build: on QEMU %s the kernel is measured %s by %s QEMU but %s by %s QEMU, whose RTMR1 would be %s; "+
		"pass --qemu-build for the hosts the VM runs on (dstack's production hosts run dstack-fork), or ship a normalized kernel",
		m.QEMUVersion, patchWord(patched), m.QEMUBuild.OrUpstream(), patchWord(!patched), alt.QEMUBuild, altRTMR1), nil
}

func patchWord(p bool) string {
	if p {
		return "patched"
	}
	return "unpatched"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func checksumNote(r measureResult) string {
	if r.ChecksumsVerified != nil && !*r.ChecksumsVerified {
		return " (checksums NOT verified: --no-verify-checksums)"
	}
	return ""
}

// machineLine is the full VM shape a result assumed, in one line.
func machineLine(r measureResult) string {
	m := r.Machine
	hole := "default"
	if m.PCIHole64Size != nil {
		hole = formatSize(*m.PCIHole64Size)
	}
	return fmt.Sprintf("qemu %s (%s build, ACPI profile %s), %d vCPU, %s, two-pass MRTD %v, PIC %v, SMM %v, %d NIC, %d verity volume, %d GPU, %d NVSwitch, hotplug off %v, root verity %v, pci-hole64 %s, hugepages %v, share %s, kernel patched %v",
		m.QEMUVersion, m.QEMUBuild, m.ACPIProfile, m.CPUCount, formatSize(m.MemorySize), m.TwoPassAddPages, m.PIC, m.SMM, m.NumNICs, m.NumVerityVolumes,
		m.NumGPUs, m.NumNVSwitches, m.HotplugOff, m.RootVerity, hole, m.Hugepages, m.HostShareMode, m.KernelPatched)
}

// logDecisions says, at debug level, what was read and every decision behind each value: the
// inputs with sizes and digests, the machine, and each measured event with where its bytes
// came from (TD HOB size, CFV, kernel patch and why, ACPI profile, exact command line).
func logDecisions(log *logrus.Logger, results []measureResult) {
	if !log.IsLevelEnabled(logrus.DebugLevel) || len(results) == 0 {
		return
	}
	in := results[0].Inputs
	for _, f := range []struct {
		role string
		f    *fileJSON
	}{{"firmware", &in.Firmware}, {"kernel", &in.Kernel}, {"initrd", in.Initrd}} {
		if f.f != nil {
			log.Debugf("read %s %s: %d bytes, sha256 %s, sha384 %s", f.role, f.f.Path, f.f.Size, f.f.SHA256, f.f.SHA384)
		}
	}
	log.Debugf("command line %q", in.Cmdline)
	for _, r := range results {
		log.Debugf("machine: %s", machineLine(r))
		for _, e := range r.EventLog {
			log.Debugf("  RTMR%d %s %s: %s", e.IMR, e.Label, shortHex(e.Digest), e.Detail)
		}
	}
}
