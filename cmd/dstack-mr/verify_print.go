package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/dstack-mr/dstack-mr/mr/eventlog"
	"github.com/dstack-mr/dstack-mr/verify"
)

// The text form of verify's report, as a person reads it.

func printVerifyReport(w io.Writer, r *verify.Report) {
	verdict := "NOT VERIFIED"
	if r.Verified {
		verdict = "VERIFIED"
	}
	fmt.Fprintf(w, "%s (mode: %s)\n", verdict, r.Mode)
	names := make([]string, 0, len(r.Registers))
	for n := range r.Registers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		reg := r.Registers[n]
		status := "not predicted"
		if reg.Match != nil {
			status = map[bool]string{true: "match", false: "MISMATCH"}[*reg.Match]
		}
		if reg.ReplayMatch != nil && !*reg.ReplayMatch {
			status += ", event log does NOT replay to the quote"
		}
		fmt.Fprintf(w, "  %-6s %s\n", n, status)
		if d := reg.FirstDivergence; d != nil {
			fmt.Fprintf(w, "         first divergent event #%d %s: expected %s, log %s", d.Position, d.Label, d.Expected, d.Actual)
			if len(d.DependsOn) > 0 {
				fmt.Fprintf(w, " (depends on %s)", strings.Join(d.DependsOn, ", "))
			}
			fmt.Fprintln(w)
		}
	}
	if a := r.App; a != nil {
		fmt.Fprintln(w, "  attested by the CVM (RTMR3), to pin next time:")
		for _, f := range []struct {
			name string
			v    []byte
		}{{"app id", a.AppID}, {"compose hash", a.ComposeHash}, {"instance id", a.InstanceID}, {"os image hash", a.RTMR3OSImageHash}} {
			val := "(not in the log)"
			if f.v != nil {
				val = hex.EncodeToString(f.v)
			}
			fmt.Fprintf(w, "    %-14s %s\n", f.name, val)
		}
		if a.KeyProvider != nil {
			fmt.Fprintf(w, "    %-14s %s %s\n", "key provider", a.KeyProvider.Name, a.KeyProvider.ID)
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
		if a.OSImageIdentity != nil {
			fmt.Fprintf(w, "  os image identity %s (from %s)\n", hex.EncodeToString(a.OSImageIdentity), a.OSImageIdentitySource)
		}
	}
	if r.Shape != nil {
		fmt.Fprintf(w, "  VM shape: %d vCPU, %s, QEMU %s (ACPI profile %s)\n", r.Shape.CPUCount, formatSize(r.Shape.MemorySize), r.Shape.QEMUVersion, r.Shape.ACPIProfile)
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
