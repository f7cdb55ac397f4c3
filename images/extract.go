package images

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// extractor writes release members into Options.ExtractDir. Every file is created
// through an os.Root with O_EXCL, so no name or pre-existing symlink can make it
// write outside the directory or over an existing file; on failure everything it
// wrote (and the directory, if it made it) is removed.
type extractor struct {
	dir     string
	root    *os.Root
	made    bool
	written []string
}

func newExtractor(dir string) (*extractor, error) {
	if dir == "" {
		return nil, nil
	}
	e := &extractor{dir: dir}
	switch err := os.Mkdir(dir, 0o755); {
	case err == nil:
		e.made = true
	case errors.Is(err, fs.ErrExist):
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("extract directory: %w", err)
		}
		if len(entries) > 0 {
			return nil, fmt.Errorf("extract directory %s is not empty", dir)
		}
	default:
		return nil, fmt.Errorf("extract directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		if e.made {
			os.Remove(dir)
		}
		return nil, fmt.Errorf("extract directory: %w", err)
	}
	e.root = root
	return e, nil
}

func (e *extractor) create(name string) (*os.File, error) {
	f, err := e.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("extracting %q into %s: %w", name, e.dir, err)
	}
	e.written = append(e.written, name)
	return f, nil
}

// abort removes what was extracted. Safe on a nil extractor.
func (e *extractor) abort() {
	if e == nil || e.root == nil {
		return
	}
	for _, name := range e.written {
		e.root.Remove(name)
	}
	e.root.Close()
	e.root = nil
	if e.made {
		os.Remove(e.dir)
	}
}

func (e *extractor) finish() error {
	if e == nil || e.root == nil {
		return nil
	}
	err := e.root.Close()
	e.root = nil
	return err
}
