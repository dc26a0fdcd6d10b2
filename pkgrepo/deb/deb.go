// Package deb reads and rewrites Debian binary packages (deb(5)): an ar
// archive of "debian-binary", "control.tar[.gz|.xz|.zst]" and
// "data.tar[...]". The ledger publishes a recorded .deb under a version of
// its own (RepoVersion, as Robur's builder-web does for apt.robur.coop),
// which means rewriting the control file's Version field: Rewrite streams
// the package through, re-packing only the small control member in its
// own compression and copying the data member byte for byte.
package deb

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/pkgrepo/internal/decomp"
)

// Limits of what is read into memory: the control member (a control file
// and maintainer scripts) and the control file itself.
const (
	MaxControlMember = 16 << 20
	MaxControlFile   = 1 << 20
)

// ErrNotDeb: the file is not a Debian binary package.
var ErrNotDeb = errors.New("not a Debian binary package")

// ErrVersion: the version Rewrite was asked to write is not a Debian
// version (deb-version(7)).
var ErrVersion = errors.New("deb: not a version")

const arMagic = "!<arch>\n"

// member is an ar member header.
type member struct {
	name string
	size int64
}

func readHeader(r io.Reader) (member, error) {
	var h [60]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return member{}, err
	}
	if string(h[58:60]) != "`\n" {
		return member{}, fmt.Errorf("%w: an ar member header is malformed", ErrNotDeb)
	}
	size, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
	if err != nil || size < 0 {
		return member{}, fmt.Errorf("%w: an ar member has no valid size", ErrNotDeb)
	}
	return member{name: strings.TrimSuffix(strings.TrimSpace(string(h[0:16])), "/"), size: size}, nil
}

func writeHeader(w io.Writer, name string, size int64) error {
	// name, mtime 0, uid 0, gid 0, mode 100644, size, magic (as dpkg-deb
	// writes reproducible packages).
	_, err := fmt.Fprintf(w, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", name, 0, 0, 0, "100644", size)
	return err
}

// Control is a control file's fields, in order.
type Control struct {
	Fields []Field
}

// Field is one field of a control file; Value keeps continuation lines.
type Field struct{ Name, Value string }

// Get returns the value of the named field (case-insensitive), or "".
func (c *Control) Get(name string) string {
	for _, f := range c.Fields {
		if strings.EqualFold(f.Name, name) {
			return strings.TrimSpace(f.Value)
		}
	}
	return ""
}

// ParseControl parses a control file (one deb822 paragraph), refusing
// what would let a package's fields say more than its own stanza of a
// Packages index (another paragraph, a field twice, a field name that is
// not one) and a Package or Architecture that is not a name (they become
// paths of the repository).
func ParseControl(b []byte) (*Control, error) {
	c := &Control{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), MaxControlFile)
	ended := false
	seen := map[string]bool{}
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(line) == "":
			ended = len(c.Fields) > 0
			continue
		case ended:
			return nil, fmt.Errorf("%w: the control file has more than one paragraph", ErrNotDeb)
		case line[0] == ' ' || line[0] == '\t':
			if len(c.Fields) == 0 {
				return nil, fmt.Errorf("%w: the control file starts with a continuation line", ErrNotDeb)
			}
			c.Fields[len(c.Fields)-1].Value += "\n" + line
		default:
			name, value, ok := strings.Cut(line, ":")
			if !ok || !fieldRE.MatchString(name) {
				return nil, fmt.Errorf("%w: control line %q is not a field", ErrNotDeb, line)
			}
			if seen[strings.ToLower(name)] {
				return nil, fmt.Errorf("%w: the control file has field %s twice", ErrNotDeb, name)
			}
			seen[strings.ToLower(name)] = true
			c.Fields = append(c.Fields, Field{Name: name, Value: strings.TrimLeft(value, " \t")})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: the control file: %v", ErrNotDeb, err)
	}
	if c.Get("Package") == "" || c.Get("Version") == "" {
		return nil, fmt.Errorf("%w: the control file has no Package or Version", ErrNotDeb)
	}
	if !nameRE.MatchString(c.Get("Package")) {
		return nil, fmt.Errorf("%w: Package %q is not a package name (deb-control(5))", ErrNotDeb, c.Get("Package"))
	}
	if a := c.Get("Architecture"); !archRE.MatchString(a) {
		return nil, fmt.Errorf("%w: Architecture %q is not an architecture name", ErrNotDeb, a)
	}
	return c, nil
}

// Bytes writes the control file.
func (c *Control) Bytes() []byte {
	var b bytes.Buffer
	for _, f := range c.Fields {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, f.Value)
	}
	return b.Bytes()
}

// set replaces (or adds) a field's value.
func (c *Control) set(name, value string) {
	for i, f := range c.Fields {
		if strings.EqualFold(f.Name, name) {
			c.Fields[i].Value = value
			return
		}
	}
	c.Fields = append(c.Fields, Field{Name: name, Value: value})
}

// codec is a member's compression, by its name's suffix.
type codec string

func codecOf(name, prefix string) (codec, bool) {
	if !strings.HasPrefix(name, prefix) {
		return "", false
	}
	switch c := codec(strings.TrimPrefix(name, prefix)); c {
	case "", ".gz", ".xz", ".zst":
		return c, true
	}
	return "", false
}

// reader decompresses r; call the returned function when done.
func (c codec) reader(r io.Reader) (io.Reader, func(), error) {
	switch c {
	case ".gz":
		return decomp.Reader(decomp.Gzip, r)
	case ".xz":
		return decomp.Reader(decomp.Xz, r)
	case ".zst":
		return decomp.Reader(decomp.Zstd, r)
	}
	return r, func() {}, nil
}

func (c codec) compress(b []byte) ([]byte, error) {
	var out bytes.Buffer
	var w io.WriteCloser
	var err error
	switch c {
	case ".gz":
		w = gzip.NewWriter(&out)
	case ".xz":
		w, err = xz.NewWriter(&out)
	case ".zst":
		w, err = zstd.NewWriter(&out)
	default:
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// readControlMember reads r's ar header and its first two members, and
// returns the control member's name and bytes (r is then at the data
// member's header).
func readControlMember(r io.Reader) (debianBinary []byte, name string, control []byte, err error) {
	var magic [8]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || string(magic[:]) != arMagic {
		return nil, "", nil, fmt.Errorf("%w: no ar archive header", ErrNotDeb)
	}
	h, err := readHeader(r)
	if err != nil || h.name != "debian-binary" || h.size > 64 {
		return nil, "", nil, fmt.Errorf("%w: the first member is not debian-binary", ErrNotDeb)
	}
	debianBinary = make([]byte, h.size)
	if _, err := io.ReadFull(r, debianBinary); err != nil {
		return nil, "", nil, fmt.Errorf("%w: %v", ErrNotDeb, err)
	}
	if !bytes.HasPrefix(debianBinary, []byte("2.")) {
		return nil, "", nil, fmt.Errorf("%w: format %q (want 2.x)", ErrNotDeb, bytes.TrimSpace(debianBinary))
	}
	if h.size%2 == 1 {
		io.ReadFull(r, make([]byte, 1))
	}
	h, err = readHeader(r)
	if err != nil {
		return nil, "", nil, err
	}
	if _, ok := codecOf(h.name, "control.tar"); !ok {
		return nil, "", nil, fmt.Errorf("%w: the second member is %q, not control.tar[.gz|.xz|.zst]", ErrNotDeb, h.name)
	}
	if h.size > MaxControlMember {
		return nil, "", nil, fmt.Errorf("%w: its control member has %d bytes, more than the %d read", ErrNotDeb, h.size, MaxControlMember)
	}
	control = make([]byte, h.size)
	if _, err := io.ReadFull(r, control); err != nil {
		return nil, "", nil, fmt.Errorf("%w: %v", ErrNotDeb, err)
	}
	if h.size%2 == 1 {
		io.ReadFull(r, make([]byte, 1))
	}
	return debianBinary, h.name, control, nil
}

// controlFile finds ./control in a control tarball.
func controlFile(member string, data []byte) (*Control, error) {
	c, _ := codecOf(member, "control.tar")
	rd, done, err := c.reader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotDeb, member, err)
	}
	defer done()
	tr := tar.NewReader(io.LimitReader(rd, 4*MaxControlMember))
	for {
		hdr, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("%w: %s has no control file (%v)", ErrNotDeb, member, err)
		}
		if strings.TrimPrefix(hdr.Name, "./") == "control" {
			b, err := io.ReadAll(io.LimitReader(tr, MaxControlFile+1))
			if err != nil || len(b) > MaxControlFile {
				return nil, fmt.Errorf("%w: the control file is unreadable or larger than %d bytes", ErrNotDeb, MaxControlFile)
			}
			return ParseControl(b)
		}
	}
}

// ReadControl reads a package's control file.
func ReadControl(r io.Reader) (*Control, error) {
	_, name, data, err := readControlMember(r)
	if err != nil {
		return nil, err
	}
	return controlFile(name, data)
}

// Rewrite copies the package from r to w with the control file's
// Version set to version: the control member is re-packed (same entries,
// same compression), the data member copied as it is.
func Rewrite(r io.Reader, w io.Writer, version string) error {
	if !validVersion(version) {
		return fmt.Errorf("%w: %q is not a Debian version", ErrVersion, version)
	}
	debianBinary, name, data, err := readControlMember(r)
	if err != nil {
		return err
	}
	c, _ := codecOf(name, "control.tar")
	rd, done, err := c.reader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNotDeb, name, err)
	}
	defer done()
	var tarOut bytes.Buffer
	tw := tar.NewWriter(&tarOut)
	tr := tar.NewReader(io.LimitReader(rd, 4*MaxControlMember))
	found := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNotDeb, name, err)
		}
		body, err := io.ReadAll(io.LimitReader(tr, 4*MaxControlMember))
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNotDeb, name, err)
		}
		if strings.TrimPrefix(hdr.Name, "./") == "control" {
			ctl, err := ParseControl(body)
			if err != nil {
				return err
			}
			ctl.set("Version", version)
			body = ctl.Bytes()
			hdr.Size = int64(len(body))
			found = true
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%w: %s: an entry cannot be written back: %v", ErrNotDeb, name, err)
		}
		if _, err := tw.Write(body); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("%w: %s has no control file", ErrNotDeb, name)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	packed, err := c.compress(tarOut.Bytes())
	if err != nil {
		return err
	}
	// The new archive: the same members, the control one re-packed.
	if _, err := io.WriteString(w, arMagic); err != nil {
		return err
	}
	for _, m := range []struct {
		name string
		data []byte
	}{{"debian-binary", debianBinary}, {name, packed}} {
		if err := writeHeader(w, m.name, int64(len(m.data))); err != nil {
			return err
		}
		if _, err := w.Write(m.data); err != nil {
			return err
		}
		if len(m.data)%2 == 1 {
			if _, err := w.Write([]byte{'\n'}); err != nil {
				return err
			}
		}
	}
	h, err := readHeader(r)
	if err != nil {
		return fmt.Errorf("%w: no data member: %v", ErrNotDeb, err)
	}
	if _, ok := codecOf(h.name, "data.tar"); !ok {
		return fmt.Errorf("%w: the third member is %q, not data.tar[...]", ErrNotDeb, h.name)
	}
	if err := writeHeader(w, h.name, h.size); err != nil {
		return err
	}
	n, err := io.CopyN(w, r, h.size)
	if err != nil {
		return fmt.Errorf("%w: the data member is cut short after %d of %d bytes", ErrNotDeb, n, h.size)
	}
	if h.size%2 == 1 {
		if _, err := w.Write([]byte{'\n'}); err != nil {
			return err
		}
	}
	return nil
}

var (
	// deb822 field names: printable ASCII but ":", not starting with "#"
	// or "-"; package names as deb-control(5) says; architectures as
	// dpkg-architecture names them.
	fieldRE    = regexp.MustCompile(`^[!-"$-,.-9;-~][!-9;-~]*$`)
	nameRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	archRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	versionRE  = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$`)
	describeRE = regexp.MustCompile(`-[0-9]+-g[0-9a-f]{7,}$`)
)

func validVersion(v string) bool { return len(v) <= 512 && versionRE.MatchString(v) }

// RepoVersion is the version under which the ledger publishes a package of
// version v built at built whose original bytes have digest d, as Robur
// publishes to apt.robur.coop: VERSION[-0-g0000000]-BUILDTIME-SHA256. A
// version that is not a git describe one (…-N-gHASH) gets -0-g0000000, so
// that a release orders before the commits after it; the build time
// (UTC, YYYYMMDDhhmmss) makes newer builds newer; the digest makes each
// output's version unique, so the same output from other inputs does not
// force an update, and names the recorded build it comes from.
func RepoVersion(v string, built time.Time, d digest.Digest) string {
	if !describeRE.MatchString(v) {
		v += "-0-g0000000"
	}
	return fmt.Sprintf("%s-%s-%s", v, built.UTC().Format("20060102150405"), d)
}
