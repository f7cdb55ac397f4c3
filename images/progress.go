package images

import (
	"fmt"
	"io"
	"time"
)

// progressReader reports how much of an input has been read, at most every
// progressInterval, as carriage-return-refreshed lines ending with a newline. The
// caller decides whether its writer is a terminal.
type progressReader struct {
	r     io.Reader
	w     io.Writer
	label string
	total int64 // -1 when unknown
	read  int64
	last  time.Time
}

const progressInterval = 250 * time.Millisecond

func newProgressReader(r io.Reader, total int64, label string, w io.Writer) *progressReader {
	return &progressReader{r: r, w: w, label: label, total: total}
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.read += int64(n)
	if now := time.Now(); now.Sub(p.last) >= progressInterval {
		p.last = now
		p.print()
	}
	return n, err
}

func (p *progressReader) print() {
	if p.total > 0 {
		fmt.Fprintf(p.w, "\r%s: %s / %s (%d%%)", p.label, mib(p.read), mib(p.total), p.read*100/p.total)
	} else {
		fmt.Fprintf(p.w, "\r%s: %s", p.label, mib(p.read))
	}
}

func (p *progressReader) done(ok bool) {
	p.print()
	if ok {
		fmt.Fprintln(p.w, " done")
	} else {
		fmt.Fprintln(p.w, " failed")
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
