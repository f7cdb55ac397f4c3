package testvectors

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
)

// ReadGzip returns the decompressed content of a gzip'd test input (large firmware images
// are committed compressed).
func ReadGzip(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
