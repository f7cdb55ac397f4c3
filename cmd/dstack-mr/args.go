package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed moves a subcommand's positional arguments after its flags, so that
// "measure IMAGE --cpu 8" works: urfave/cli v2 stops reading flags at the first positional.
// Everything after a literal "--" is left alone.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	// Walk down the command tree: global flags, then command names.
	cmds := app.Commands
	valued := valueFlags(app.Flags)
	i := 1
	var cmd *cli.Command
	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			if takesValue(a, valued) {
				i++
			}
			i++
			continue
		}
		c := findCommand(cmds, a)
		if c == nil {
			break
		}
		cmd, cmds, valued = c, c.Subcommands, valueFlags(c.Flags)
		i++
		if len(cmds) == 0 {
			break
		}
	}
	if cmd == nil || len(cmd.Subcommands) > 0 {
		return args
	}
	out := append([]string{}, args[:i]...)
	var positional []string
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			out = append(out, a)
			if takesValue(a, valued) && i+1 < len(args) {
				out = append(out, args[i+1])
				i++
			}
		default:
			positional = append(positional, a)
		}
	}
	if len(positional) > 0 && positional[0] != "--" {
		out = append(out, "--")
	}
	return append(out, positional...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name {
			return c
		}
		for _, a := range c.Aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

// valueFlags lists the names of flags that take a value (all but booleans).
func valueFlags(flags []cli.Flag) map[string]bool {
	m := map[string]bool{}
	for _, f := range flags {
		if _, isBool := f.(*cli.BoolFlag); isBool {
			continue
		}
		for _, n := range f.Names() {
			m[n] = true
		}
	}
	return m
}

func takesValue(arg string, valued map[string]bool) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	return valued[name]
}

// legacyForm rewrites the command lines of the original Go dstack-mr that dstack's attestation
// guide and older scripts still use:
//
//	dstack-mr -cpu 4 -ram 4096 -metadata dstack-v0.4.0/metadata.json   (no subcommand; -ram in MiB)
//	dstack-mr measure -cpu 8 -memory 8G -json -metadata metadata.json
//
// into the measure command, and returns a note naming the equivalent. ok is false for anything
// else, which is parsed as usual.
func legacyForm(args []string) (out []string, note string, ok bool) {
	if len(args) < 2 {
		return nil, "", false
	}
	start := 1
	switch {
	case args[1] == "measure":
		start = 2
		legacy := false
		for _, a := range args[2:] {
			legacy = legacy || a == "-metadata" || a == "-ram"
		}
		if !legacy {
			return nil, "", false
		}
	case args[1] == "-cpu" || args[1] == "-ram" || args[1] == "-metadata" || args[1] == "-memory":
	default:
		return nil, "", false
	}
	out = []string{args[0], "measure"}
	var positional []string
	for i := start; i < len(args); i++ {
		a := args[i]
		value := func() string {
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch a {
		case "-cpu":
			out = append(out, "--cpu", value())
		case "-ram":
			out = append(out, "--memory", value()+"M")
		case "-memory":
			out = append(out, "--memory", value())
		case "-metadata":
			positional = append(positional, value())
		default:
			if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(a) > 2 {
				a = "-" + a // the old single-dash long flags
			}
			out = append(out, a)
		}
	}
	out = append(out, positional...)
	shown := append([]string{"dstack-mr"}, out[1:]...)
	return out, "legacy command line; the same as: " + strings.Join(shown, " "), true
}

// hoistGlobalFlags moves the application's own flags (--log-level) to the front wherever they
// appear, so "measure IMAGE --log-level debug" works like "--log-level debug measure IMAGE".
func hoistGlobalFlags(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	valued := valueFlags(app.Flags)
	global := map[string]bool{}
	for _, f := range app.Flags {
		for _, n := range f.Names() {
			global[n] = true
		}
	}
	var front, rest []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name := strings.TrimLeft(a, "-")
		if j := strings.IndexByte(name, '='); j >= 0 {
			name = name[:j]
		}
		if strings.HasPrefix(a, "-") && global[name] {
			front = append(front, a)
			if takesValue(a, valued) && i+1 < len(args) {
				front = append(front, args[i+1])
				i++
			}
			continue
		}
		rest = append(rest, a)
	}
	return append(append([]string{args[0]}, front...), rest...)
}
