package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/policy"
	"github.com/dstack-mr/dstack-mr/service"
)

func serveCommand(log *logrus.Logger) *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the verification service: dstack's verifier API (POST /verify) and KMS auth webhooks, offline",
		Description: "Answers POST /verify as dstack's verifier does (quote, event_log, vm_config, or attestation;\n" +
			"a GetQuote response posts unchanged), with this tool's whole report under details.report.\n" +
			"Expected images come from --images (and, only with --image-url, are fetched once when missing):\n" +
			"a full attestation verifies when its os_image_hash is stored there; a lite one when its\n" +
			"document is bound to a stored hash.\n" +
			"GET /health, GET /metrics (Prometheus). With --policy also POST /bootAuth/app and\n" +
			"/bootAuth/kms (dstack KMS's auth webhook) and details.policy. One JSON line per request on\n" +
			"stderr. SIGTERM or SIGINT stops accepting, drains requests in flight (--drain-timeout), exits 0.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "address to listen on (host:port; 0.0.0.0:8080 for every interface)"},
			&cli.StringFlag{Name: "images", Usage: "directory of expected images, each named by its os_image_hash: image directories and release tarballs (SHA-256 of sha256sum.txt; tarballs named [mr_]<hash>.tar.gz are checked when first used), lite directories (sha256sum.txt + measurement.tdx.cbor) and measurement documents (*.cbor, keyed by their SHA-256)"},
			&cli.StringFlag{Name: "image-url", Usage: "fetch an image --images lacks from this URL template (http or https, containing " + service.HashPlaceholder +
				", e.g. dstack's https://download.dstack.org/os-images/mr_" + service.HashPlaceholder + ".tar.gz): once per hash, checked (its sha256sum.txt must hash to the requested os_image_hash, every measured file must match) before it is stored in --images; a failure is not fetched again for a minute"},
			&cli.DurationFlag{Name: "image-download-timeout", Value: service.DefaultDownloadTimeout, Usage: "bound on one --image-url download"},
			&cli.StringFlag{Name: "image-max-bytes", Value: "4G", Usage: "bound on one --image-url download's size (its unpacked content is bounded at 4x, at least 16G)"},
			&cli.IntFlag{Name: "image-cache", Value: 4, Usage: "prepared images kept in memory (each holds its firmware and kernel, ~20 MiB)"},
			&cli.StringFlag{Name: "collateral-dir", Usage: "directory of Intel collateral (dcap-qvl QuoteCollateralV3 JSON, one per FMSPC): evaluate each quote's TCB status; without it the status is \"not evaluated\""},
			&cli.StringFlag{Name: "tcb-policy", Value: "default", Usage: "acceptable TCB statuses with --collateral-dir: default, strict, or a comma-separated list"},
			&cli.StringFlag{Name: "policy", Usage: "dstack auth-simple policy (auth-config.json): serve /bootAuth/app and /bootAuth/kms and add details.policy to /verify"},
			&cli.StringFlag{Name: "max-body", Value: "1M", Usage: "request body limit (bytes or K/M binary)"},
			&cli.IntFlag{Name: "max-concurrent", Value: service.DefaultMaxConcurrent(), DefaultText: "16 x GOMAXPROCS", Usage: "verifications at once; beyond it 503 with Retry-After"},
			&cli.DurationFlag{Name: "request-timeout", Value: service.DefaultRequestTimeout, Usage: "per-request deadline (503 beyond it)"},
			&cli.DurationFlag{Name: "drain-timeout", Value: 20 * time.Second, Usage: "on SIGTERM, how long requests in flight may take to finish"},
			&cli.StringFlag{Name: "tls-cert", Usage: "TLS certificate (PEM); with --tls-key serve HTTPS"},
			&cli.StringFlag{Name: "tls-key", Usage: "TLS private key (PEM)"},
			&cli.StringFlag{Name: "time", Usage: "RFC 3339 time certificates and collateral must be valid at, to replay old captures (default: now, per request)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("serve takes no arguments, got %q", c.Args().First())
			}
			cfg, err := serveConfig(c)
			if err != nil {
				return err
			}
			access := logrus.New()
			access.SetOutput(c.App.ErrWriter)
			access.SetFormatter(&logrus.JSONFormatter{})
			cfg.Log = access
			srv, err := service.New(*cfg)
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", c.String("listen"))
			if err != nil {
				return fmt.Errorf("--listen %s: %w", c.String("listen"), err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			if cfg.Collateral != nil {
				for f, next := range cfg.Collateral.NextUpdate {
					if next.Before(cfg.Now()) {
						access.WithFields(logrus.Fields{"fmspc": f, "next_update": next}).Warn("collateral expired: quotes of this FMSPC are answered \"Internal error\" until it is refreshed")
					}
				}
			}
			access.WithFields(logrus.Fields{"listen": l.Addr().String(), "version": cfg.ToolVersion}).Info("serving")
			err = service.Serve(ctx, srv.HTTPServer(), l, c.String("tls-cert"), c.String("tls-key"), c.Duration("drain-timeout"))
			if err != nil {
				return err
			}
			access.Info("stopped: requests in flight drained")
			return nil
		},
	}
}

// serveConfig reads serve's flags; every file is read and checked before listening.
func serveConfig(c *cli.Context) (*service.Config, error) {
	cfg := &service.Config{ToolVersion: toolVersion(), SchemaVersion: jsonSchemaVersion,
		MaxConcurrent: c.Int("max-concurrent"), RequestTimeout: c.Duration("request-timeout"), Now: time.Now}
	if (c.String("tls-cert") == "") != (c.String("tls-key") == "") {
		return nil, errors.New("give --tls-cert and --tls-key together")
	}
	n, err := parseSize(c.String("max-body"))
	if err != nil || n == 0 || n > 1<<30 {
		return nil, fmt.Errorf("--max-body %q: want a size between 1 byte and 1G", c.String("max-body"))
	}
	cfg.MaxBodyBytes = int64(n)
	if c.Int("max-concurrent") <= 0 {
		return nil, fmt.Errorf("--max-concurrent %d: want at least 1", c.Int("max-concurrent"))
	}
	if c.Duration("request-timeout") <= 0 || c.Duration("drain-timeout") <= 0 {
		return nil, errors.New("--request-timeout and --drain-timeout must be positive")
	}
	if _, err := parseTCBPolicyFlag(c.String("tcb-policy")); err != nil {
		return nil, err
	}
	cfg.TCBPolicy = c.String("tcb-policy")
	at, err := parseTimeFlag(c, "time")
	if err != nil {
		return nil, err
	}
	if !at.IsZero() {
		cfg.Now = func() time.Time { return at }
	}
	if d := c.String("images"); d != "" {
		if cfg.Images, err = service.OpenStore(d, c.Int("image-cache")); err != nil {
			return nil, err
		}
	}
	if u := c.String("image-url"); u != "" {
		if cfg.Images == nil {
			return nil, errors.New("--image-url needs --images: the directory the images are stored in")
		}
		limit, err := parseSize(c.String("image-max-bytes"))
		if err != nil || limit == 0 || limit > 1<<40 {
			return nil, fmt.Errorf("--image-max-bytes %q: want a size between 1 byte and 1T", c.String("image-max-bytes"))
		}
		if c.Duration("image-download-timeout") <= 0 {
			return nil, errors.New("--image-download-timeout must be positive")
		}
		unpacked := max(int64(limit)*4, service.DefaultUnpackedMaxBytes)
		if err := cfg.Images.SetDownloader(&service.Downloader{URLTemplate: u, Timeout: c.Duration("image-download-timeout"),
			MaxBytes: int64(limit), MaxUnpackedBytes: unpacked}); err != nil {
			return nil, err
		}
	}
	if d := c.String("collateral-dir"); d != "" {
		if cfg.Collateral, err = service.OpenCollateralDir(d); err != nil {
			return nil, err
		}
	}
	if p := c.String("policy"); p != "" {
		data, err := readPolicyFile(p)
		if err != nil {
			return nil, fmt.Errorf("--policy %s: %w", p, err)
		}
		if cfg.Policy, err = policy.ParseAuthSimple(data); err != nil {
			return nil, fmt.Errorf("--policy %s: %w", p, err)
		}
	}
	return cfg, nil
}
