package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/dstack-mr/dstack-mr/verify"
)

// printAppCompose prints the app-compose documents checked against the attested compose hash,
// with the facts an auditor reviews, and the form of MRCONFIGID.
func printAppCompose(w io.Writer, r *verify.Report) {
	a := r.App
	if a == nil {
		return
	}
	printComposeCheck(w, "app compose (--app-compose)", a.AppCompose)
	printComposeCheck(w, "app compose carried by the input (tcb_info.app_compose)", a.InputAppCompose)
	if m := a.MRConfig; m != nil {
		fmt.Fprintf(w, "  MRCONFIGID %s\n", m.Form)
		if m.Document != "" {
			fmt.Fprintf(w, "    mr_config document (%s): %s\n", m.DocumentSource, m.Document)
		}
	}
}

func printComposeCheck(w io.Writer, title string, c *verify.ComposeCheck) {
	if c == nil {
		return
	}
	if !c.Matched {
		fmt.Fprintf(w, "  %s: does NOT hash to the attested compose hash (forms tried: %s); its contents are not shown, they are not the app's\n",
			title, strings.Join(c.FormsTried, ", "))
		return
	}
	fmt.Fprintf(w, "  %s: matches the attested compose hash (%s form)\n", title, c.Form)
	f := c.Facts
	if f == nil {
		if c.Note != "" {
			fmt.Fprintf(w, "    %s\n", c.Note)
		}
		return
	}
	line := func(name, val string) { fmt.Fprintf(w, "    %-16s %s\n", name, val) }
	line("name", f.Name)
	line("runner", f.Runner)
	for _, d := range []struct {
		name string
		v    []byte
	}{{"docker compose", f.DockerComposeSHA256}, {"bash script", f.BashScriptSHA256}, {"pre-launch", f.PreLaunchScriptSHA256}} {
		if d.v != nil {
			line(d.name, fmt.Sprintf("sha256 %x", d.v))
		}
	}
	for i, d := range f.InitScriptSHA256 {
		line(fmt.Sprintf("init script %d", i), fmt.Sprintf("sha256 %x", []byte(d)))
	}
	kp := f.KeyProvider
	if f.KeyProviderID != "" {
		kp += ", pinned id " + f.KeyProviderID
	}
	line("key provider", kp)
	line("kms enabled", flagText(f.KMSEnabled))
	line("gateway enabled", flagText(f.GatewayEnabled))
	envs := "(none)"
	if len(f.AllowedEnvs) > 0 {
		envs = strings.Join(f.AllowedEnvs, ", ")
	}
	line("allowed envs", envs)
	line("public logs", flagText(f.PublicLogs))
	line("public sysinfo", flagText(f.PublicSysinfo))
	line("public tcbinfo", flagText(f.PublicTCBInfo))
	line("no instance id", flagText(f.NoInstanceID))
}

// flagText prints an app-compose boolean; unset ones take dstack's default for that version.
func flagText(b *bool) string {
	if b == nil {
		return "not set (dstack's default)"
	}
	return fmt.Sprint(*b)
}
