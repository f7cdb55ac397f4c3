package main

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/dstack-mr/dstack-mr/images"
	"github.com/dstack-mr/dstack-mr/mr"
)

const imageCategory = "Image"

func imageFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "firmware", Category: imageCategory, Usage: "OVMF/TDVF firmware file (raw mode, instead of IMAGE)"},
		&cli.StringFlag{Name: "kernel", Category: imageCategory, Usage: "Linux bzImage (raw mode)"},
		&cli.StringFlag{Name: "initrd", Category: imageCategory, Usage: "initramfs (raw mode; omit for no initrd)"},
		&cli.StringFlag{Name: "cmdline", Category: imageCategory, Usage: "kernel command line as given to QEMU -append (raw mode)"},
		&cli.BoolFlag{Name: "kernel-header-normalized", Category: imageCategory, DefaultText: "from metadata.json (raw mode: false)",
			Usage: "the kernel ships with the canonical setup header and the firmware normalizes it: measured as shipped on every QEMU (metadata.json kernel_header_normalized)"},
	}, imageReadFlags()...)
}

// imageReadFlags are how IMAGE is read; verify, which takes no raw files, has only these.
func imageReadFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "no-verify-checksums", Category: imageCategory, Usage: "do not fail when files differ from sha256sum.txt or digest.txt (DANGEROUS)"},
		&cli.StringFlag{Name: "extract", Category: imageCategory, Usage: "also extract a release tarball into this new or empty directory"},
	}
}

// loadedImage is the boot components plus what the output reports about them.
type loadedImage struct {
	inputs      mr.Inputs
	describe    inputsJSON
	osImageHash string
	// checksumsVerified: every measured file matched sha256sum.txt (nil in raw mode).
	checksumsVerified *bool
	// pendingInitrd, when set, delivers the initrd digest being computed in the background
	// (raw mode), so that hashing a large initrd overlaps with parsing the firmware.
	pendingInitrd chan initrdResult
	// pendingDescribe, when set, delivers the raw firmware's and kernel's reported digests,
	// computed alongside the firmware decode rather than before it.
	pendingDescribe chan [2]fileJSON
	// initrdSize is the initrd's size as stat reported it (raw mode), for prefetching the
	// patched kernel's digest before the initrd is hashed.
	initrdSize int64
	// prefetch are the machines about to be measured: their MRTD and kernel digests are
	// computed while the initrd is still being hashed.
	prefetch []mr.Machine
	// early, for an IMAGE, is the work started on its firmware and kernel while the reader
	// went on to hash the initrd.
	early *earlyBoot
}

// earlyBoot starts work on an image's firmware and kernel as soon as the image reader has
// read them (images.Options.BootFileRead), so that decoding the firmware and hashing both
// overlap with hashing the initrd. Nothing is used unless the image opens and the bytes are
// the very ones its Image holds.
type earlyBoot struct {
	firmware, kernel *earlyFile
}

type earlyFile struct {
	data   []byte
	sha384 chan []byte
	// Firmware only: the parsed TDVF metadata, and DeriveEvents' result once it is done.
	fw      *mr.Firmware
	fwErr   error
	derived chan error
}

// read is the images.Options.BootFileRead callback.
func (e *earlyBoot) read(role images.Role, data []byte) {
	f := &earlyFile{data: data, sha384: make(chan []byte, 1)}
	go func() {
		s := sha512.Sum384(data)
		f.sha384 <- s[:]
	}()
	switch role {
	case images.RoleFirmware:
		f.derived = make(chan error, 1)
		if f.fw, f.fwErr = mr.ParseFirmware(data); f.fwErr == nil {
			go func() { f.derived <- f.fw.DeriveEvents() }()
		} else {
			f.derived <- nil
		}
		e.firmware = f
	case images.RoleKernel:
		e.kernel = f
	}
}

// of returns the early work on data, or nil when data is not the slice handed over.
func (f *earlyFile) of(data []byte) *earlyFile {
	if f == nil || len(f.data) != len(data) || len(data) == 0 || &f.data[0] != &data[0] {
		return nil
	}
	return f
}

// maxPrefetch bounds how many shapes of a batch are prefetched: the rest are measured as
// before, once the image is ready.
const maxPrefetch = 16

type initrdResult struct {
	digest *mr.InitrdDigest
	file   *fileJSON
	err    error
}

// prepare parses the firmware while the initrd, if still being hashed, finishes. The
// firmware decode, the MRTD and the kernel digests the shapes need all start before waiting
// for the initrd, so that they run on the other core.
func (li *loadedImage) prepare() (*mr.Image, error) {
	var fw *mr.Firmware
	var ferr error
	derived := make(chan error, 1)
	if ef := li.earlyFirmware(); ef != nil {
		fw, ferr, derived = ef.fw, ef.fwErr, ef.derived
	} else if fw, ferr = mr.ParseFirmware(li.inputs.Firmware); ferr == nil {
		go func() { derived <- fw.DeriveEvents() }()
	} else {
		derived <- nil
	}
	kernel, kerr := mr.PrepareKernel(li.inputs.Kernel)
	if ferr == nil {
		if kerr == nil && len(li.prefetch) > 0 {
			early := li.inputs
			if li.pendingInitrd != nil {
				early.Initrd = &mr.InitrdDigest{Size: uint64(li.initrdSize), SHA384: make([]byte, sha512.Size384)}
			}
			if im, err := mr.NewImage(fw, kernel, early); err == nil {
				for _, m := range li.prefetch {
					im.Prefetch(m)
				}
			}
		}
	}
	if li.pendingInitrd != nil {
		r := <-li.pendingInitrd
		li.pendingInitrd = nil
		if r.err != nil {
			<-derived
			return nil, fmt.Errorf("--initrd: %w", r.err)
		}
		li.inputs.Initrd, li.describe.Initrd = r.digest, r.file
	}
	if li.pendingDescribe != nil {
		d := <-li.pendingDescribe
		li.pendingDescribe = nil
		li.describe.Firmware, li.describe.Kernel = d[0], d[1]
	}
	if err := <-derived; ferr == nil && err != nil {
		ferr = err
	}
	if ferr != nil {
		return nil, fmt.Errorf("firmware %s: %w", li.describe.Firmware.Path, ferr)
	}
	if kerr != nil {
		return nil, fmt.Errorf("kernel %s: %w", li.describe.Kernel.Path, kerr)
	}
	return mr.NewImage(fw, kernel, li.inputs)
}

func (li *loadedImage) earlyFirmware() *earlyFile {
	if li.early == nil {
		return nil
	}
	return li.early.firmware.of(li.inputs.Firmware)
}

type fileJSON struct {
	Path   string `json:"path"`
	Size   uint64 `json:"size"`
	SHA256 string `json:"sha256,omitempty"` // absent for a raw-mode initrd, which is hashed for SHA-384 only
	SHA384 string `json:"sha384"`
}

type inputsJSON struct {
	Source   string    `json:"source"`
	Firmware fileJSON  `json:"firmware"`
	Kernel   fileJSON  `json:"kernel"`
	Initrd   *fileJSON `json:"initrd,omitempty"`
	Cmdline  string    `json:"cmdline"`
}

// describeBytes reports a file's size and digests; knownSHA256 (hex), when the image reader
// already hashed the file, spares hashing it again. The two digests are computed side by side.
func describeBytes(path string, b []byte, knownSHA256 string) fileJSON {
	return describeEarly(path, b, knownSHA256, nil)
}

// describeEarly is describeBytes taking the SHA-384 from early, when early hashed b.
func describeEarly(path string, b []byte, knownSHA256 string, early *earlyFile) fileJSON {
	if early = early.of(b); early != nil {
		if knownSHA256 == "" {
			s256 := sha256.Sum256(b)
			knownSHA256 = hex.EncodeToString(s256[:])
		}
		return fileJSON{Path: path, Size: uint64(len(b)), SHA256: knownSHA256, SHA384: hex.EncodeToString(<-early.sha384)}
	}
	var wg sync.WaitGroup
	if knownSHA256 == "" {
		wg.Go(func() {
			s256 := sha256.Sum256(b)
			knownSHA256 = hex.EncodeToString(s256[:])
		})
	}
	s384 := sha512.Sum384(b)
	wg.Wait()
	return fileJSON{Path: path, Size: uint64(len(b)), SHA256: knownSHA256, SHA384: hex.EncodeToString(s384[:])}
}

// fileSHA256 is the SHA-256 package images computed for the named file, if any.
func fileSHA256(img *images.Image, name string) string {
	for _, f := range img.Files {
		if f.Name == name {
			return f.SHA256
		}
	}
	return ""
}

func loadImage(c *cli.Context, log *logrus.Logger) (*loadedImage, error) {
	raw := c.IsSet("firmware") || c.IsSet("kernel") || c.IsSet("initrd") || c.IsSet("cmdline")
	switch {
	case c.NArg() > 1:
		return nil, fmt.Errorf("measure takes one IMAGE, got %d arguments", c.NArg())
	case c.NArg() == 1 && raw:
		return nil, fmt.Errorf("give either IMAGE or --firmware/--kernel/--initrd/--cmdline, not both")
	case c.NArg() == 1:
		return loadImageArg(c, c.Args().First(), log)
	case !raw:
		return nil, fmt.Errorf("nothing to measure: give IMAGE (metadata.json, image directory or release tarball) or --firmware and --kernel")
	}
	if c.String("firmware") == "" || c.String("kernel") == "" {
		return nil, fmt.Errorf("raw mode needs --firmware and --kernel (and usually --initrd and --cmdline)")
	}
	li, err := loadRaw(c.String("firmware"), c.String("kernel"), c.String("initrd"), c.String("cmdline"))
	if err != nil {
		return nil, err
	}
	li.inputs.KernelHeaderNormalized = c.Bool("kernel-header-normalized")
	li.prefetch = prefetchMachines(c)
	return li, nil
}

// prefetchMachines are the first shapes the command line asks for (none when its shape
// flags are wrong: the command reports that itself).
func prefetchMachines(c *cli.Context) []mr.Machine {
	shapes, err := machineShapes(c)
	if err != nil {
		return nil
	}
	var out []mr.Machine
	for _, s := range shapes[:min(len(shapes), maxPrefetch)] {
		out = append(out, mr.Machine{MachineConfig: s.Config, TwoPassAddPages: s.TwoPass, NoKernelPatch: s.NoKernelPatch, QEMUBuild: s.QEMUBuild})
	}
	return out
}

// Limits on raw inputs, checked before anything is read into memory. Real OVMF images are
// 2-4 MiB and dstack's kernels about 15 MiB; an initrd is streamed, never held, but it must be a
// regular file so that a device or pipe cannot stall a measurement forever.
const (
	maxFirmwareBytes = 64 << 20
	maxKernelBytes   = 512 << 20
)

// openRegular opens path for flag, refusing anything but a regular file of at most limit
// bytes (0: no limit) with an error naming the flag and the file.
func openRegular(flag, path string, limit int64) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("--%s: %w", flag, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("--%s %s: %w", flag, path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("--%s %s: not a regular file (%s)", flag, path, images.FileKind(st.Mode()))
	}
	if limit > 0 && st.Size() > limit {
		f.Close()
		return nil, 0, fmt.Errorf("--%s %s: %d bytes, over the %d MiB limit for a %s", flag, path, st.Size(), limit>>20, flag)
	}
	return f, st.Size(), nil
}

// readOpened reads an opened regular file of the given (stat) size into one buffer of that
// size. It reads to the limit, not the size: a file growing while read is either read whole
// or refused.
func readOpened(flag, path string, f *os.File, size, limit int64) ([]byte, error) {
	b := make([]byte, size, size+1)
	n, err := io.ReadFull(f, b)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		// Shrunk while being read: what is there is the file.
		return b[:n], nil
	}
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %w", flag, path, err)
	}
	// Anything past the stat size: the file grew. Read the rest with the usual growth.
	var probe [1]byte
	if k, _ := f.Read(probe[:]); k == 0 {
		return b, nil
	}
	rest, err := io.ReadAll(io.LimitReader(f, limit-size))
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %w", flag, path, err)
	}
	b = append(append(b, probe[0]), rest...)
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("--%s %s: grew past the %d MiB limit while being read", flag, path, limit>>20)
	}
	return b, nil
}

// readRegular opens and reads a regular file for flag in one sized buffer (see readOpened).
func readRegular(flag, path string, limit int64) ([]byte, error) {
	f, size, err := openRegular(flag, path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readOpened(flag, path, f, size, limit)
}

func loadRaw(fwPath, kernelPath, initrdPath, cmdline string) (*loadedImage, error) {
	// Every input is checked before any is read.
	fwFile, fwSize, err := openRegular("firmware", fwPath, maxFirmwareBytes)
	if err != nil {
		return nil, err
	}
	defer fwFile.Close()
	kFile, kSize, err := openRegular("kernel", kernelPath, maxKernelBytes)
	if err != nil {
		return nil, err
	}
	defer kFile.Close()
	img := &loadedImage{
		inputs:          mr.Inputs{Cmdline: cmdline},
		describe:        inputsJSON{Source: "raw", Firmware: fileJSON{Path: fwPath}, Kernel: fileJSON{Path: kernelPath}, Cmdline: cmdline},
		pendingDescribe: make(chan [2]fileJSON, 1),
	}
	if initrdPath != "" {
		f, size, err := openRegular("initrd", initrdPath, 0)
		if err != nil {
			return nil, err
		}
		// The initrd's hash is the longest single chain of work: it starts first.
		img.initrdSize = size
		img.pendingInitrd = make(chan initrdResult, 1)
		go func() {
			defer f.Close()
			d, fj, err := hashReader(initrdPath, f)
			img.pendingInitrd <- initrdResult{d, fj, err}
		}()
	}
	fw, err := readOpened("firmware", fwPath, fwFile, fwSize, maxFirmwareBytes)
	if err != nil {
		return nil, err
	}
	kernel, err := readOpened("kernel", kernelPath, kFile, kSize, maxKernelBytes)
	if err != nil {
		return nil, err
	}
	img.inputs.Firmware, img.inputs.Kernel = fw, kernel
	go func() {
		var d [2]fileJSON
		var wg sync.WaitGroup
		wg.Go(func() { d[0] = describeBytes(fwPath, fw, "") })
		d[1] = describeBytes(kernelPath, kernel, "")
		wg.Wait()
		img.pendingDescribe <- d
	}()
	return img, nil
}

// hashReader streams a raw-mode initrd once through SHA-384, the one digest the measurement
// needs (its SHA-256 would only be reported, and costs a third of a core on a large initrd that
// the firmware decode competes with). Reading the next chunk overlaps hashing the previous.
func hashReader(path string, r io.Reader) (*mr.InitrdDigest, *fileJSON, error) {
	h384 := sha512.New384()
	const chunk = 1 << 20
	bufs := [2][]byte{make([]byte, chunk), make([]byte, chunk)}
	var wg sync.WaitGroup
	var n uint64
	for i := 0; ; i ^= 1 {
		k, err := io.ReadFull(r, bufs[i])
		wg.Wait() // the previous chunk's hash is done with the other buffer
		if k > 0 {
			b := bufs[i][:k]
			n += uint64(k)
			wg.Add(1)
			go func() { defer wg.Done(); h384.Write(b) }()
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			wg.Wait()
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	wg.Wait()
	d := &mr.InitrdDigest{Size: n, SHA384: h384.Sum(nil)}
	return d, &fileJSON{Path: path, Size: n, SHA384: hex.EncodeToString(d.SHA384)}, nil
}

// imageOptions are the images.Options the image-reading flags ask for.
func imageOptions(c *cli.Context, log *logrus.Logger) images.Options {
	verify := !c.Bool("no-verify-checksums")
	// Whatever publishes or checks a value needs the image tied to its sha256sum.txt;
	// inspecting an image only reports what its checksums say.
	inspect := c.Command != nil && c.Command.Name == "inspect"
	opts := images.Options{VerifyChecksums: verify && !inspect, RequireChecksums: verify && !inspect, ChecksumsReportOnly: verify && inspect,
		ExtractDir: c.String("extract"), SEV: c.String("platform") == platformSEVSNP}
	if isTerminal(os.Stderr) && log.IsLevelEnabled(logrus.WarnLevel) {
		opts.Progress = os.Stderr
	}
	return opts
}

// openImage opens IMAGE with package images, warning loudly when checksums are not verified.
func openImage(c *cli.Context, path string, log *logrus.Logger) (*images.Image, error) {
	return openImageWith(c, path, log, imageOptions(c, log))
}

// openImageEarly is openImage handing the firmware and kernel to early as soon as they are
// read.
func openImageEarly(c *cli.Context, path string, log *logrus.Logger, early *earlyBoot) (*images.Image, error) {
	opts := imageOptions(c, log)
	if early != nil {
		opts.BootFileRead = early.read
	}
	return openImageWith(c, path, log, opts)
}

// openImageWith is openImage with the options already chosen.
func openImageWith(c *cli.Context, path string, log *logrus.Logger, opts images.Options) (*images.Image, error) {
	unchecked := !opts.VerifyChecksums && !opts.ChecksumsReportOnly
	if unchecked {
		log.Warn("--no-verify-checksums: files are NOT checked against sha256sum.txt; the result may describe a tampered image")
	}
	if opts.ExtractDir != "" {
		st, err := os.Stat(path)
		switch {
		case path == "-":
			return nil, fmt.Errorf("--extract: a release read from stdin is not extracted; save it to a file first")
		case err == nil && (st.IsDir() || filepath.Base(path) == images.MetadataFileName):
			return nil, fmt.Errorf("--extract applies to release tarballs; %s is already an unpacked image", path)
		}
	}
	var img *images.Image
	var err error
	if path == "-" {
		// A release tarball streamed on stdin, read in one pass (release pipelines pipe
		// downloads straight in).
		img, err = images.ReadRelease(c.App.Reader, "stdin", opts)
	} else {
		img, err = images.Open(path, opts)
	}
	if err != nil {
		return nil, err
	}
	if unchecked && img.Checksums.Status != "" {
		log.Warnf("checksum status: %s", img.Checksums.Status)
	}
	return img, nil
}

// openMeasuredImage opens IMAGE for a command that measures it: refused when its firmware
// generation is not modelled or its metadata contradicts --kernel-header-normalized.
func openMeasuredImage(c *cli.Context, path string, log *logrus.Logger) (*images.Image, error) {
	return openMeasuredImageEarly(c, path, log, nil)
}

func openMeasuredImageEarly(c *cli.Context, path string, log *logrus.Logger, early *earlyBoot) (*images.Image, error) {
	img, err := openImageEarly(c, path, log, early)
	if err != nil {
		return nil, err
	}
	if err := checkOVMFVariant(img.Metadata.OVMFVariant); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.IsSet("kernel-header-normalized") && c.Bool("kernel-header-normalized") != img.Metadata.KernelHeaderNormalized {
		return nil, fmt.Errorf("--kernel-header-normalized=%v contradicts the image's metadata.json (kernel_header_normalized %v)", c.Bool("kernel-header-normalized"), img.Metadata.KernelHeaderNormalized)
	}
	return img, nil
}

func loadImageArg(c *cli.Context, path string, log *logrus.Logger) (*loadedImage, error) {
	early := &earlyBoot{}
	img, err := openMeasuredImageEarly(c, path, log, early)
	if err != nil {
		return nil, err
	}
	li := fromImageEarly(img, early)
	li.prefetch = prefetchMachines(c)
	return li, nil
}

// checkOVMFVariant refuses firmware generations whose RTMR0 is not modelled.
func checkOVMFVariant(v string) error {
	switch v {
	case "", "pre202505":
		return nil
	case "stable202505":
		return fmt.Errorf("metadata.json ovmf_variant %q: the edk2 >= stable202505 firmware measures QEMU fw_cfg items (BootMenu, bootorder), "+
			"an SMBIOS handoff table that depends on the memory size and extra boot options into RTMR0 (17 events), which dstack-mr does not model: not supported yet", v)
	}
	return fmt.Errorf("metadata.json ovmf_variant %q: unknown firmware generation (known: pre202505; stable202505 is not supported yet)", v)
}

func fromImageEarly(img *images.Image, early *earlyBoot) *loadedImage {
	if early == nil {
		early = &earlyBoot{}
	}
	li := &loadedImage{
		early:       early,
		inputs:      mr.InputsFromImage(img),
		osImageHash: img.OSImageHash,
		checksumsVerified: func() *bool {
			ok := img.Checksums.Status == images.StatusOK
			return &ok
		}(),
		describe: inputsJSON{
			Source:   img.Source,
			Firmware: describeEarly(img.Metadata.Bios, img.Firmware, fileSHA256(img, img.Metadata.Bios), early.firmware),
			Kernel:   describeEarly(img.Metadata.Kernel, img.Kernel, fileSHA256(img, img.Metadata.Kernel), early.kernel),
			Cmdline:  img.Cmdline,
		},
	}
	if img.Initrd != nil {
		li.describe.Initrd = &fileJSON{Path: img.Metadata.Initrd, Size: img.Initrd.Size,
			SHA256: hex.EncodeToString(img.Initrd.SHA256), SHA384: hex.EncodeToString(img.Initrd.SHA384)}
	}
	return li
}
