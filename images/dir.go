package images

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// openDir reads an image from the directory dir whose description is metaPath. Every
// file is opened through an os.Root, so neither a name nor a symlink can reach outside
// dir.
func openDir(dir, metaPath string, opts Options) (*Image, error) {
	mf, err := os.Open(metaPath)
	if err != nil {
		return nil, err
	}
	metaData, err := readBounded(mf, metaPath, maxSmallFileBytes)
	mf.Close()
	if err != nil {
		return nil, err
	}
	meta, err := ParseMetadata(metaData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", metaPath, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()

	members := make(map[string]*member)
	metaSum := sha256.Sum256(metaData)
	members[MetadataFileName] = &member{name: MetadataFileName, size: int64(len(metaData)), sha256: metaSum[:], data: metaData, kept: true}
	if base := filepath.Base(metaPath); base != MetadataFileName {
		// The user named another description file; a metadata.json next to it is still
		// what sha256sum.txt lists, so it is read below like any listed file.
		delete(members, MetadataFileName)
		members[base] = &member{name: base, size: int64(len(metaData)), sha256: metaSum[:], data: metaData, kept: true}
	}

	img := &Image{}
	for _, f := range meta.fileFields() {
		if members[f.name] != nil {
			continue
		}
		what := fmt.Sprintf("%s field %q (%q)", MetadataFileName, f.field, f.name)
		switch f.role {
		case RoleFirmware, RoleKernel, RoleFirmwareSEV:
			if f.role == RoleFirmwareSEV && !opts.SEV {
				// Not measured: only its size unless sha256sum.txt lists it.
				if err := statDirMember(root, f.name, what, members); err != nil {
					return nil, err
				}
				continue
			}
			m, err := readDirMember(root, f.name, what, opts.MaxBufferBytes)
			if err != nil {
				return nil, err
			}
			members[f.name] = m
			if opts.BootFileRead != nil {
				opts.BootFileRead(f.role, m.data)
			}
		case RoleInitrd:
			name := f.name
			open := func() (io.ReadCloser, error) { return openRegular(root, name, what) }
			m, err := hashDirMember(open, name, what, opts.MaxMemberBytes, true)
			if err != nil {
				return nil, err
			}
			members[name] = m
			dirCopy := dir
			img.openInitrd = func() (io.ReadCloser, error) {
				r, err := os.OpenRoot(dirCopy)
				if err != nil {
					return nil, err
				}
				defer r.Close()
				return openRegular(r, name, what)
			}
		default:
			// Big or unmeasured files (rootfs, hda): only their size unless sha256sum.txt lists
			// them; a rootfs-free bundle may lack them.
			if err := statDirMember(root, f.name, what, members); err != nil {
				return nil, err
			}
		}
	}
	// The measurement document is what verifiers of a lite CVM are given: read it whether or
	// not sha256sum.txt lists it, so that an unlisted one is noticed.
	for _, name := range []string{sha256SumName, digestName, MeasurementDocName, SNPMeasurementDocName} {
		if members[name] != nil {
			continue
		}
		m, err := readDirMember(root, name, name, maxSmallFileBytes)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		members[name] = m
	}
	if sums := members[sha256SumName]; sums != nil {
		// Hash every listed file not read yet; a bad list is reported by assemble.
		if lines, err := ParseChecksums(sums.data); err == nil {
			for _, l := range lines {
				if m := members[l.Name]; m != nil && m.sha256 != nil {
					continue
				}
				what := fmt.Sprintf("%s entry %q", sha256SumName, l.Name)
				name := l.Name
				open := func() (io.ReadCloser, error) { return openRegular(root, name, what) }
				m, err := hashDirMember(open, name, what, opts.MaxMemberBytes, false)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return nil, err
				}
				members[name] = m
			}
		}
	}
	out, err := assemble(dir, meta, members, false, opts)
	if err != nil {
		return nil, err
	}
	out.openInitrd = img.openInitrd
	return out, nil
}

// statDirMember records the size of an unmeasured file, if present.
func statDirMember(root *os.Root, name, what string, members map[string]*member) error {
	st, err := root.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: %w", what, errNotRegular)
	}
	members[name] = &member{name: name, size: st.Size()}
	return nil
}

// openRegular opens name inside root, refusing anything but a regular file.
func openRegular(root *os.Root, name, what string) (*os.File, error) {
	f, err := root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return nil, fmt.Errorf("%s: must be a file inside the image directory: %w", what, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", what, errNotRegular)
	}
	return f, nil
}

func readDirMember(root *os.Root, name, what string, limit int64) (*member, error) {
	f, err := openRegular(root, name, what)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := readBounded(f, what, limit)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	return &member{name: name, size: int64(len(data)), sha256: sum[:], data: data, kept: true}, nil
}

func hashDirMember(open func() (io.ReadCloser, error), name, what string, limit int64, withSHA384 bool) (*member, error) {
	f, err := open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h256 := sha256.New()
	h384 := sha512.New384()
	var n int64
	if withSHA384 {
		pipe := newHashPipe(h256, h384)
		defer pipe.Close()
		n, err = io.Copy(pipe, io.LimitReader(f, limit+1))
		pipe.Close()
	} else {
		n, err = io.CopyBuffer(h256, io.LimitReader(f, limit+1), make([]byte, 1<<20))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%s: larger than the %d-byte limit", what, limit)
	}
	m := &member{name: name, size: n, sha256: h256.Sum(nil)}
	if withSHA384 {
		m.sha384 = h384.Sum(nil)
	}
	return m, nil
}
