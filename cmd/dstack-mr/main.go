// Command dstack-mr computes, ahead of time, the Intel TDX measurements (MRTD, RTMR0-2) a
// dstack confidential VM will report, and the ACPI tables QEMU gives it.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
)

// jsonSchemaVersion is the schema_version of every JSON output (schemas/*.schema.json). It
// changes when a key is removed or changes meaning; added keys keep it. 2: measure drops the
// top-level cpu/memory/memory_bytes (machine.cpu_count and memory_size say it); verify's
// app.os_image_hash is the identity the report holds the CVM to, no longer vm_config's.
const jsonSchemaVersion = 2

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// run is main without the process exit, so tests can drive the whole CLI.
func run(args []string, stdout, stderr io.Writer) int {
	return runWithInput(args, os.Stdin, stdout, stderr)
}

// runWithInput is run reading IMAGE "-" from stdin.
func runWithInput(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	log := newLogger()
	log.SetOutput(stderr)
	app := newApp(log, stdout, stderr)
	app.Reader = stdin
	if legacy, note, ok := legacyForm(args); ok {
		log.Warn(note)
		args = legacy
	}
	if err := app.Run(interspersed(app, hoistGlobalFlags(app, args))); err != nil {
		log.Error(err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
	return 0
}

func newApp(log *logrus.Logger, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                 "dstack-mr",
		Usage:                "compute the TDX measurements (MRTD, RTMR0-2) of a dstack CVM ahead of time",
		Version:              toolVersion(),
		EnableBashCompletion: true,
		Writer:               stdout,
		ErrWriter:            stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "warning", Usage: "stderr log level: debug, info, warning, error"},
		},
		Before: func(c *cli.Context) error {
			lvl, err := logrus.ParseLevel(c.String("log-level"))
			if err != nil {
				return enumError("log-level", c.String("log-level"), logLevels)
			}
			log.SetLevel(lvl)
			return nil
		},
		// Errors are logged once by run; keep urfave/cli from printing them again.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
		Commands: []*cli.Command{
			measureCommand(log),
			acpiCommand(log),
			firmwareCommand(log),
			imageCommand(log),
			verifyCommand(log),
			quoteCommand(log),
			serveCommand(log),
		},
	}
	setUsageErrors(app.Commands)
	app.Action = showHelpOrRefuse(func() []*cli.Command { return app.Commands }, app.Name)
	for _, cmd := range app.Commands {
		if len(cmd.Subcommands) > 0 && cmd.Action == nil {
			cmd.Action = showHelpOrRefuse(func() []*cli.Command { return cmd.Subcommands }, app.Name+" "+cmd.Name)
		}
	}
	return app
}

// toolVersion names this build for published values and audit logs: the -ldflags version if
// set, else the module version Go recorded, plus the VCS revision the binary was built from.
func toolVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	var rev string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return formatToolVersion(version, bi.Main.Version, rev, modified)
}

// formatToolVersion appends the revision unless the version already names it: Go's
// pseudo-versions (v0.0.0-<time>-<rev12>[+dirty]) carry a revision prefix, and repeating it only
// makes the string harder to compare.
func formatToolVersion(ldflagsVersion, moduleVersion, rev string, modified bool) string {
	v := ldflagsVersion
	if v == "dev" && moduleVersion != "" && moduleVersion != "(devel)" {
		v = moduleVersion
	}
	if rev == "" {
		return v
	}
	named := len(rev) >= 12 && strings.Contains(v, rev[:12])
	switch {
	case named && modified && !strings.HasSuffix(v, "+dirty"):
		return v + "+dirty"
	case named:
		return v
	case modified:
		return v + " (" + rev + "+dirty)"
	default:
		return v + " (" + rev + ")"
	}
}

// usageError reports a command-line mistake without printing help to stdout: stdout carries
// results only, so a script never mistakes help text for output. run logs the error once.
func usageError(c *cli.Context, err error, _ bool) error {
	name := c.App.Name
	if c.Command != nil && c.Command.FullName() != "" {
		name += " " + c.Command.FullName()
	}
	return fmt.Errorf("%w%s (see '%s --help')", err, suggestFlag(c, err), name)
}

func setUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = usageError
		setUsageErrors(c.Subcommands)
	}
}
