package main

// The text form of verify's report, as a person reads it: what was verified against what,
// each register with its diagnosis, the identity and what establishes it, the app facts to pin,
// the shape with where each field came from, then every check made and not made.

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/verify"
)

func printVerifyReport(w io.Writer, r *verify.Report) {
	verdict := "NOT VERIFIED"
	if r.Verified {
		verdict = "VERIFIED"
	}
	fmt.Fprintf(w, "%s (%s)\n", verdict, describeMode(r))
	if r.InputForm != "" {
		fmt.Fprintf(w, "  read from   %s\n", r.InputForm)
	}
	if r.VMConfig != nil && r.VMConfig.Image != nil {
		fmt.Fprintf(w, "  CVM image   %s (vm_config's image name, host-supplied)\n", *r.VMConfig.Image)
	}
	fmt.Fprintln(w, "  registers ("+registerSourceLabel(r)+"):")
	for _, n := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"} {
		reg := r.Registers[n]
		if reg == nil {
			continue
		}
		status := "not predicted"
		if reg.Match != nil {
			status = map[bool]string{true: "match", false: "MISMATCH"}[*reg.Match]
		}
		if reg.ReplayMatch != nil && !*reg.ReplayMatch {
			status += ", event log does NOT replay to it"
		}
		fmt.Fprintf(w, "    %-6s %s\n", n, status)
		if d := reg.FirstDivergence; d != nil {
			fmt.Fprintf(w, "           %s\n", d.String())
		}
	}
	if a := r.App; a != nil {
		printIdentity(w, r, a)
		fmt.Fprintln(w, "  attested by the CVM (RTMR3), to pin next time:")
		if r.RTMR3 == nil {
			fmt.Fprintln(w, "    (no event log: nothing read from RTMR3)")
		} else {
			for _, f := range []struct {
				name string
				v    []byte
			}{{"app id", a.AppID}, {"compose hash", a.ComposeHash}, {"instance id", a.InstanceID}, {"os image hash", r.RTMR3.OSImageHash}} {
				val := "(no event)"
				switch {
				case f.v == nil:
				case len(f.v) == 0:
					val = "(empty)"
				default:
					val = hex.EncodeToString(f.v)
				}
				fmt.Fprintf(w, "    %-14s %s\n", f.name, val)
			}
		}
		if a.KeyProvider != nil {
			id := a.KeyProvider.ID
			if id == "" {
				id = "(no id)"
			}
			fmt.Fprintf(w, "    %-14s %s, id %s\n", "key provider", a.KeyProvider.Name, id)
		}
		if f := r.RTMR3; f != nil {
			if f.GPUPolicyHash != nil {
				fmt.Fprintf(w, "    %-14s %s\n", "gpu policy", hex.EncodeToString(f.GPUPolicyHash))
			}
			for _, e := range append(append([]eventlog.NamedPayload{}, f.Unknown...), f.AppEvents...) {
				val := e.Text
				if val == "" {
					val = shortHex(hex.EncodeToString(e.Payload))
				}
				fmt.Fprintf(w, "    event %-8s %s\n", e.Name, val)
			}
		}
		printAppCompose(w, r)
	}
	if s := r.Shape; s != nil {
		src := func(field string) string {
			if v := s.Sources[field]; v != "" {
				return " (" + v + ")"
			}
			return ""
		}
		fmt.Fprintf(w, "  VM shape    %d vCPU%s, %s%s, QEMU %s%s, %s QEMU build%s, ACPI profile %s\n",
			s.CPUCount, src("cpu_count"), formatSize(s.MemorySize), src("memory_size"), s.QEMUVersion, src("qemu_version"),
			s.QEMUBuild, src("qemu_build"), s.ACPIProfile)
		fmt.Fprintf(w, "              %d NIC%s, %d verity volume%s, %d GPU%s, %d NVSwitch%s, hotplug %s%s\n",
			s.NumNICs, src("num_nics"), s.NumVerityVolumes, src("num_verity_volumes"), s.NumGPUs, src("num_gpus"),
			s.NumNVSwitches, src("num_nvswitches"), map[bool]string{true: "off", false: "on"}[s.HotplugOff], src("hotplug_off"))
	}
	for _, wn := range r.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", wn)
	}
	printPolicy(w, r)
	printChecks(w, r.Checks)
	for _, nc := range r.NotChecked {
		req := ""
		if nc.Required {
			req = " (required)"
		}
		fmt.Fprintf(w, "  [ -- ] %s%s: %s\n", nc.Name, req, nc.Reason)
	}
}

// describeMode says what the registers were predicted from.
func describeMode(r *verify.Report) string {
	switch r.Mode {
	case "full":
		if im := r.ExpectedImage; im != nil {
			s := "full mode: expected image " + im.Source
			if im.Version != "" {
				s += ", version " + im.Version
			}
			return s
		}
		return "full mode"
	case "lite":
		who := "the VM's own document (vm_config, host-supplied)"
		if r.LiteSource == verify.LiteFromRelyingParty {
			who = "your measurement document"
		}
		if r.LiteSHA256 != nil {
			who += ", sha256 " + shortHex(hex.EncodeToString(r.LiteSHA256))
		}
		return "lite mode: " + who
	}
	return "no expected image: registers not predicted"
}

func registerSourceLabel(r *verify.Report) string {
	if r.Quote == nil {
		return "from the guest agent's Info, unsigned"
	}
	return "from the quote"
}

// printIdentity says which os_image_hash the CVM is held to and what establishes it, or that
// none is, naming any host-supplied claim as such.
func printIdentity(w io.Writer, r *verify.Report, a *verify.AppInfo) {
	if a.OSImageHash != nil {
		var why string
		switch a.OSImageHashSource {
		case verify.IdentityRTMR3:
			why = "attested by the CVM (RTMR3 os-image-hash event)"
		case verify.IdentityImage:
			why = "the expected image's (its sha256sum.txt), whose registers the quote matched"
		case verify.IdentityPinnedDocument:
			why = "pinned by you (--os-image-hash) and bound to the measurement document the quote matched"
		}
		if a.OSImageHashBinding != "" {
			why += "; document bound by " + a.OSImageHashBinding
		}
		fmt.Fprintf(w, "  OS image    %s\n              %s\n", hex.EncodeToString(a.OSImageHash), why)
	} else {
		fmt.Fprintln(w, "  OS image    not established (no os-image-hash event in RTMR3, no image or pinned hash proving one)")
	}
	if h := a.VMConfigOSImageHash; h != nil && !bytes.Equal(h, a.OSImageHash) {
		fmt.Fprintf(w, "              vm_config names %s (host-supplied, attested by nothing)\n", hex.EncodeToString(h))
	}
}
