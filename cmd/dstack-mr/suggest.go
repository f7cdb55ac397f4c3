package main

// Nearest valid choices for mistyped commands, flags and enumerated values.

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/dstack-mr/dstack-mr/quote"
	"github.com/urfave/cli/v2"
)

// nearest returns the choice closest to s by edit distance, or "" when none is close enough
// to be a plausible typo (at most a third of the longer word, and at least one edit allowed).
func nearest(s string, choices []string) string {
	best, bestD := "", 1<<30
	for _, c := range choices {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(len(s), len(best)) / 3
	if limit < 1 {
		limit = 1
	}
	if best == "" || bestD > limit {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// didYouMean is " (did you mean X?)" for the nearest choice, or "".
func didYouMean(s string, choices []string, format string) string {
	if n := nearest(s, choices); n != "" {
		return fmt.Sprintf(" (did you mean "+format+"?)", n)
	}
	return ""
}

// enumError is the error for a value outside an enumerated flag's choices: it lists them and
// names the nearest.
func enumError(flag, value string, choices []string) error {
	return fmt.Errorf("--%s %q: want %s%s", flag, value, orList(choices), didYouMean(value, choices, "%s"))
}

func orList(choices []string) string {
	switch len(choices) {
	case 0:
		return ""
	case 1:
		return choices[0]
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}

// unknownCommand answers a word that names no subcommand of c's command (or of the app): the
// nearest command, and where the list is.
func unknownCommand(word string, cmds []*cli.Command, where string) error {
	var names []string
	for _, cmd := range cmds {
		if !cmd.Hidden {
			names = append(names, cmd.Names()...)
		}
	}
	return fmt.Errorf("unknown command %q%s; commands: %s (see '%s --help')", word, didYouMean(word, names, "'%s'"), strings.Join(visibleNames(cmds), ", "), where)
}

func visibleNames(cmds []*cli.Command) []string {
	var out []string
	for _, cmd := range cmds {
		if !cmd.Hidden && cmd.Name != "help" {
			out = append(out, cmd.Name)
		}
	}
	return out
}

// showHelpOrRefuse is the Action of the app and of every command that only groups
// subcommands: without arguments it prints the help (asked for by running it bare), with one it
// refuses the word as an unknown command.
func showHelpOrRefuse(cmds func() []*cli.Command, where string) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() == 0 {
			if c.Command != nil && c.Command.Name != "" {
				return cli.ShowSubcommandHelp(c)
			}
			return cli.ShowAppHelp(c)
		}
		return unknownCommand(c.Args().First(), cmds(), where)
	}
}

var undefinedFlag = regexp.MustCompile(`flag provided but not defined: -+([^\s]+)`)

// suggestFlag adds the nearest defined flag of the command to urfave/cli's "flag provided but
// not defined" error.
func suggestFlag(c *cli.Context, err error) string {
	m := undefinedFlag.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	var flags []cli.Flag
	if c.Command != nil && c.Command.Name != "" {
		flags = c.Command.Flags
	} else {
		flags = c.App.Flags
	}
	var names []string
	for _, f := range flags {
		names = append(names, f.Names()...)
	}
	return didYouMean(m[1], names, "--%s")
}

// parseTCBPolicyFlag reads --tcb-policy, naming the nearest status for a mistyped one.
func parseTCBPolicyFlag(value string) (quote.TCBPolicy, error) {
	p, err := quote.ParseTCBPolicy(value)
	var unknown *quote.UnknownTCBStatusError
	if errors.As(err, &unknown) {
		return p, fmt.Errorf("--tcb-policy: %w%s", err, didYouMean(unknown.Status, append([]string{"default", "strict"}, quote.TCBStatuses()...), "%s"))
	}
	if err != nil {
		return p, fmt.Errorf("--tcb-policy: %w", err)
	}
	return p, nil
}

// logLevels are --log-level's values, as logrus names them.
var logLevels = []string{"debug", "info", "warning", "error"}
