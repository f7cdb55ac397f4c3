package images

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

const (
	sha256SumName = "sha256sum.txt"
	digestName    = "digest.txt"
)

// Checksum status values.
const (
	StatusOK       = "ok"       // every listed file and digest.txt match
	StatusSkipped  = "skipped"  // verification off: mismatches reported, not enforced
	StatusAbsent   = "absent"   // no sha256sum.txt
	StatusMismatch = "mismatch" // a report returned with an error, or ChecksumsReportOnly's finding
)

// ChecksumReport is the result of checking sha256sum.txt and digest.txt.
type ChecksumReport struct {
	Status  string `json:"status"`
	Skipped bool   `json:"skipped"` // VerifyChecksums was false
	// OSImageHash is the hex SHA-256 of sha256sum.txt.
	OSImageHash string          `json:"os_image_hash,omitempty"`
	Files       []ChecksumEntry `json:"files,omitempty"`
	Digest      *DigestCheck    `json:"digest,omitempty"` // nil without digest.txt
	Mismatches  []string        `json:"mismatches,omitempty"`
	// Problems says, one sentence each, what does not match and how to fix it.
	Problems []string `json:"problems,omitempty"`
}

// ChecksumEntry is one line of sha256sum.txt checked against the file.
type ChecksumEntry struct {
	Name     string `json:"name"`
	Expected string `json:"expected"`
	Actual   string `json:"actual,omitempty"` // empty when the file is absent
	Present  bool   `json:"present"`
	OK       bool   `json:"ok"`
}

// DigestCheck compares digest.txt with the SHA-256 of sha256sum.txt.
type DigestCheck struct {
	Expected string `json:"expected"`
	Actual   string `json:"actual"`
	OK       bool   `json:"ok"`
}

// ChecksumLine is one parsed line of a sha256sum file.
type ChecksumLine struct {
	SHA256 string // lower-case hex
	Name   string // cleaned, see CleanName
}

// ParseChecksums parses sha256sum(1) output ("<hex>  <name>" or "<hex> *<name>",
// "./" prefixes as older releases wrote them). Duplicate names, bad digests and
// names leaving the image folder are errors naming the line.
func ParseChecksums(data []byte) ([]ChecksumLine, error) {
	if len(data) > maxSmallFileBytes {
		return nil, fmt.Errorf("%s: %d bytes, over the %d-byte limit", sha256SumName, len(data), maxSmallFileBytes)
	}
	var out []ChecksumLine
	seen := make(map[string]int)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxSmallFileBytes)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		escaped := strings.HasPrefix(line, "\\")
		if escaped {
			line = line[1:]
		}
		if len(line) < 66 || line[64] != ' ' || (line[65] != ' ' && line[65] != '*') {
			return nil, fmt.Errorf("%s line %d: not \"<sha256>  <name>\"", sha256SumName, lineNo)
		}
		digest := strings.ToLower(line[:64])
		if _, err := hex.DecodeString(digest); err != nil {
			return nil, fmt.Errorf("%s line %d: digest is not hex", sha256SumName, lineNo)
		}
		name := line[66:]
		if escaped {
			name = strings.NewReplacer(`\\`, `\`, `\n`, "\n").Replace(name)
		}
		clean, err := CleanName(name)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", sha256SumName, lineNo, err)
		}
		if clean == sha256SumName {
			return nil, fmt.Errorf("%s line %d: lists itself", sha256SumName, lineNo)
		}
		if prev, dup := seen[clean]; dup {
			return nil, fmt.Errorf("%s line %d: %q already listed on line %d", sha256SumName, lineNo, clean, prev)
		}
		seen[clean] = lineNo
		out = append(out, ChecksumLine{SHA256: digest, Name: clean})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", sha256SumName, err)
	}
	return out, nil
}

// verifyChecksums checks every file sha256sum.txt lists and digest.txt. With enforce,
// the first problem is returned as an error (with the report filled so far).
func verifyChecksums(members map[string]*member, roles map[string]Role, enforce, reportOnly bool) (ChecksumReport, error) {
	rep := ChecksumReport{Status: StatusAbsent, Skipped: !enforce && !reportOnly}
	sums := members[sha256SumName]
	dig := members[digestName]
	if sums == nil {
		if dig != nil && enforce {
			return rep, fmt.Errorf("%s present without %s", digestName, sha256SumName)
		}
		return rep, nil
	}
	if !sums.kept {
		return rep, fmt.Errorf("%s: larger than %d bytes", sha256SumName, maxSmallFileBytes)
	}
	osHash := sha256.Sum256(sums.data)
	rep.OSImageHash = hex.EncodeToString(osHash[:])
	lines, err := ParseChecksums(sums.data)
	if err != nil {
		return rep, err
	}
	var problems []string
	for _, l := range lines {
		e := ChecksumEntry{Name: l.Name, Expected: l.SHA256}
		m := members[l.Name]
		switch {
		case m == nil:
			// Rootfs-free bundles drop the root filesystem older releases listed.
			if isRootfsName(l.Name) || roles[l.Name] == RoleRootfs {
				e.OK = true
				break
			}
			problems = append(problems, fmt.Sprintf("%s: listed in %s but missing", l.Name, sha256SumName))
		case m.sha256 == nil:
			problems = append(problems, fmt.Sprintf("%s: listed in %s but not read", l.Name, sha256SumName))
		default:
			e.Present = true
			e.Actual = hex.EncodeToString(m.sha256)
			e.OK = e.Actual == e.Expected
			if !e.OK {
				problems = append(problems, fmt.Sprintf("%s: SHA-256 %s, but %s says %s", l.Name, e.Actual, sha256SumName, e.Expected))
			}
		}
		if !e.OK {
			rep.Mismatches = append(rep.Mismatches, l.Name)
		}
		rep.Files = append(rep.Files, e)
	}
	if dig != nil {
		if !dig.kept {
			return rep, fmt.Errorf("%s: larger than %d bytes", digestName, maxSmallFileBytes)
		}
		want := strings.ToLower(strings.TrimSpace(string(dig.data)))
		rep.Digest = &DigestCheck{Expected: want, Actual: rep.OSImageHash, OK: want == rep.OSImageHash}
		if !rep.Digest.OK {
			rep.Mismatches = append(rep.Mismatches, digestName)
			problems = append(problems, fmt.Sprintf("%s: says %q, but the SHA-256 of %s is %s (if %s is right, regenerate %s: sha256sum %s | cut -d' ' -f1 > %s)",
				digestName, short([]byte(want)), sha256SumName, rep.OSImageHash, sha256SumName, digestName, sha256SumName, digestName))
		}
	}
	sort.Strings(rep.Mismatches)
	rep.Problems = problems
	switch {
	case reportOnly && len(problems) > 0:
		rep.Status = StatusMismatch
	case reportOnly:
		rep.Status = StatusOK
	case !enforce:
		rep.Status = StatusSkipped
	case len(problems) > 0:
		rep.Status = StatusMismatch
		return rep, fmt.Errorf("checksum verification failed: %s", strings.Join(problems, "; "))
	default:
		rep.Status = StatusOK
	}
	return rep, nil
}
