// Package freebsd reads and rewrites FreeBSD packages and writes the
// signed catalogue of a pkg(8) repository, as `pkg create` and `pkg repo`
// do (pkg-repository(5); the formats as freebsd/pkg's libpkg writes and
// reads them):
//
//   - a package (NAME-VERSION.pkg) is a tar archive, compressed with zstd,
//     xz or gzip (or not), whose first members are +COMPACT_MANIFEST and
//     +MANIFEST (JSON), followed by the files under their absolute paths.
//     Rewrite sets the version in both manifests and copies every other
//     member as it is (the manifests' per-file checksums cover file
//     contents only), re-compressing in the package's own compression.
//   - a repository holds meta.conf (plain, version 2), packagesite.pkg
//     (tar+zstd of "signature" and packagesite.yaml, one compact JSON
//     object per package: its compact manifest with sum, path, repopath
//     and pkgsize) and data.pkg (the same packages as one JSON object, which
//     newer pkg reads first), and the packages under All/.
//   - the catalogues are signed as pkg's "pubkey" signature type checks
//     them: RSASSA-PKCS1-v1_5 with SHA-256 over the lowercase hexadecimal
//     SHA-256 of the catalogue file (what `printf %s HEX | openssl dgst
//     -sha256 -sign KEY` gives), the signature's bytes alone in the
//     "signature" member; clients configure the key as a PEM "PUBLIC KEY"
//     (signature_type: "pubkey", pubkey: FILE).
package freebsd

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/buildledger/buildledger/cas/digest"
	"github.com/buildledger/buildledger/pkgrepo/internal/decomp"
)

// MaxManifest bounds what is read of each manifest member; MaxUnpacked
// bounds a package's uncompressed size, so that a small file that unpacks
// without end (a decompression bomb) is refused, not rewritten for hours.
const (
	MaxManifest = 16 << 20
	MaxUnpacked = 16 << 30
)

// ErrNotPkg: the file is not a FreeBSD package this package reads.
var ErrNotPkg = errors.New("not a FreeBSD package")

// ErrVersion: a version Rewrite was asked to write is not one pkg reads
// as meant.
var ErrVersion = errors.New("freebsd: not a package version")

// codec is a package's compression, by its magic number.
type codec string

const (
	codecZstd codec = "zstd"
	codecXz   codec = "xz"
	codecGzip codec = "gzip"
	codecNone codec = "tar"
)

func sniff(br *bufio.Reader) (codec, error) {
	head, _ := br.Peek(262)
	switch {
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return codecZstd, nil
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return codecXz, nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return codecGzip, nil
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return codecNone, nil
	}
	return "", fmt.Errorf("%w: not a tar archive compressed with zstd, xz or gzip", ErrNotPkg)
}

func (c codec) reader(r io.Reader) (io.Reader, func(), error) {
	switch c {
	case codecZstd:
		return decomp.Reader(decomp.Zstd, r)
	case codecXz:
		return decomp.Reader(decomp.Xz, r)
	case codecGzip:
		return decomp.Reader(decomp.Gzip, r)
	}
	return r, func() {}, nil
}

func (c codec) writer(w io.Writer) (io.WriteCloser, error) {
	switch c {
	case codecZstd:
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	case codecXz:
		return xz.NewWriter(w)
	case codecGzip:
		return gzip.NewWriter(w), nil
	}
	return nopCloser{w}, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Manifest is a package manifest: its JSON members by key.
type Manifest map[string]json.RawMessage

// String returns the string member key, or "".
func (m Manifest) String(key string) string {
	var s string
	json.Unmarshal(m[key], &s)
	return s
}

func parseManifest(name string, b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %s is not JSON (a UCL manifest is not read): %v", ErrNotPkg, name, err)
	}
	for _, k := range []string{"name", "version", "origin", "abi"} {
		if m.String(k) == "" {
			return nil, fmt.Errorf("%w: %s has no %s", ErrNotPkg, name, k)
		}
	}
	if !nameRE.MatchString(m.String("name")) {
		return nil, fmt.Errorf("%w: %s names the package %q, which is no package name", ErrNotPkg, name, m.String("name"))
	}
	return m, nil
}

// open starts reading a package: its compression and tar reader, which
// fails past limit uncompressed bytes.
func open(r io.Reader, limit int64) (codec, *tar.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	c, err := sniff(br)
	if err != nil {
		return "", nil, nil, err
	}
	rd, done, err := c.reader(br)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%w: %v", ErrNotPkg, err)
	}
	return c, tar.NewReader(&capped{r: rd, left: limit, limit: limit}), done, nil
}

// capped reads at most left bytes, then fails.
type capped struct {
	r           io.Reader
	left, limit int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("%w: it unpacks to more than %d bytes", ErrNotPkg, c.limit)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// ReadManifest reads a package's +COMPACT_MANIFEST.
func ReadManifest(r io.Reader) (Manifest, error) {
	_, tr, done, err := open(r, MaxUnpacked)
	if err != nil {
		return nil, err
	}
	defer done()
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("%w: no +COMPACT_MANIFEST before the files (%v)", ErrNotPkg, err)
		}
		if !strings.HasPrefix(h.Name, "+") {
			return nil, fmt.Errorf("%w: no +COMPACT_MANIFEST before the files", ErrNotPkg)
		}
		if h.Name == "+COMPACT_MANIFEST" {
			b, err := readMember(tr, h)
			if err != nil {
				return nil, err
			}
			return parseManifest(h.Name, b)
		}
	}
}

func readMember(tr *tar.Reader, h *tar.Header) ([]byte, error) {
	if h.Size > MaxManifest {
		return nil, fmt.Errorf("%w: %s has %d bytes, more than the %d read", ErrNotPkg, h.Name, h.Size, MaxManifest)
	}
	b, err := io.ReadAll(io.LimitReader(tr, MaxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotPkg, h.Name, err)
	}
	return b, nil
}

// Rewrite copies the package from r to w with version as the version of
// both manifests; everything else is copied member by member and
// re-compressed in the package's own compression. A package that unpacks
// to more than MaxUnpacked bytes is refused (RewriteLimit).
func Rewrite(r io.Reader, w io.Writer, version string) error {
	return RewriteLimit(r, w, version, MaxUnpacked)
}

// RewriteLimit is Rewrite refusing a package that unpacks to more than
// limit bytes (the publisher allows a multiple of the file's size: the
// rewrite re-compresses everything, which takes time).
func RewriteLimit(r io.Reader, w io.Writer, version string, limit int64) error {
	if !ValidVersion(version) {
		return fmt.Errorf("%w: %q", ErrVersion, version)
	}
	c, tr, done, err := open(r, limit)
	if err != nil {
		return err
	}
	defer done()
	zw, err := c.writer(w)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	manifests, files := 0, 0
	var first Manifest
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNotPkg, err)
		}
		if h.Name == "+COMPACT_MANIFEST" || h.Name == "+MANIFEST" {
			if files > 0 {
				return fmt.Errorf("%w: %s comes after the files", ErrNotPkg, h.Name)
			}
			b, err := readMember(tr, h)
			if err != nil {
				return err
			}
			m, err := parseManifest(h.Name, b)
			if err != nil {
				return err
			}
			m["version"], _ = json.Marshal(version)
			if b, err = marshalCompact(m); err != nil {
				return err
			}
			h.Size = int64(len(b))
			if err := tw.WriteHeader(h); err != nil {
				return fmt.Errorf("%w: %s cannot be written back: %v", ErrNotPkg, h.Name, err)
			}
			if _, err := tw.Write(b); err != nil {
				return err
			}
			if first == nil {
				first = m
			} else if first.String("name") != m.String("name") || first.String("origin") != m.String("origin") || first.String("abi") != m.String("abi") {
				return fmt.Errorf("%w: +COMPACT_MANIFEST and +MANIFEST name another package", ErrNotPkg)
			}
			manifests++
			continue
		}
		if !strings.HasPrefix(h.Name, "+") {
			files++
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%w: %s cannot be written back: %v", ErrNotPkg, h.Name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNotPkg, h.Name, err)
		}
	}
	if manifests != 2 {
		return fmt.Errorf("%w: want +COMPACT_MANIFEST and +MANIFEST, found %d of them", ErrNotPkg, manifests)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// marshalCompact writes m as compact JSON, keys sorted (pkg reads any
// order), without HTML escaping.
func marshalCompact(m Manifest) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		if err := json.Compact(&b, m[k]); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

var (
	// Package names become file names (All/NAME-VERSION.pkg).
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
	versionRE  = regexp.MustCompile(`^[A-Za-z0-9.+*]+(_[0-9]+)?(,[0-9]+)?$`)
	describeRE = regexp.MustCompile(`\.[0-9]+\.g[0-9a-f]{7,}$`)
)

// ValidVersion reports whether v is a pkg version whose parts pkg reads as
// meant: no "-" (a package name ends at the last one), at most one "_"
// (the port revision) and "," (the epoch), in that order.
func ValidVersion(v string) bool { return len(v) <= 512 && versionRE.MatchString(v) }

// RepoVersion is the version under which the ledger publishes a package
// of version v built at built whose original bytes have digest d, as
// Robur's pkg.robur.coop: VERSION[.0.g0000000].BUILDTIME.SHA256, the
// port revision and epoch (_N, ,N) kept at the end where pkg reads them;
// "-" in VERSION (a git describe's) becomes ".".
func RepoVersion(v string, built time.Time, d digest.Digest) string {
	suffix := ""
	if i := strings.IndexAny(v, "_,"); i >= 0 {
		v, suffix = v[:i], v[i:]
	}
	v = strings.ReplaceAll(v, "-", ".")
	if !describeRE.MatchString(v) {
		v += ".0.g0000000"
	}
	return fmt.Sprintf("%s.%s.%s%s", v, built.UTC().Format("20060102150405"), d, suffix)
}

// Key is a repository's RSA signing key.
type Key struct{ k *rsa.PrivateKey }

// NewKey makes a 4096-bit RSA key (as `openssl genrsa 4096` for pkg repo).
func NewKey() (*Key, error) {
	k, err := rsa.GenerateKey(rand.Reader, 4096)
	return &Key{k}, err
}

// ReadKey reads a PEM private key (PKCS #1 or PKCS #8).
func ReadKey(b []byte) (*Key, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("freebsd: not a PEM key")
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return &Key{k}, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("freebsd: not an RSA private key: %v", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("freebsd: not an RSA private key")
	}
	return &Key{rk}, nil
}

// MarshalPrivate writes the key as PEM (PKCS #1); keep it secret.
func (k *Key) MarshalPrivate() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.k)})
}

// Public is the public key as pkg.conf's pubkey file wants it (PEM
// "PUBLIC KEY").
func (k *Key) Public() []byte {
	der, _ := x509.MarshalPKIXPublicKey(&k.k.PublicKey)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Sign signs a catalogue file as pkg's pubkey signature type checks it.
func (k *Key) Sign(catalogue []byte) ([]byte, error) {
	h := sha256.Sum256(catalogue)
	d := sha256.Sum256([]byte(hex.EncodeToString(h[:])))
	return rsa.SignPKCS1v15(rand.Reader, k.k, crypto.SHA256, d[:])
}

// Verify checks a catalogue's signature against a PEM public key.
func Verify(pub, catalogue, sig []byte) error {
	blk, _ := pem.Decode(pub)
	if blk == nil {
		return errors.New("freebsd: not a PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return err
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return errors.New("freebsd: not an RSA public key")
	}
	h := sha256.Sum256(catalogue)
	d := sha256.Sum256([]byte(hex.EncodeToString(h[:])))
	return rsa.VerifyPKCS1v15(rk, crypto.SHA256, d[:], sig)
}

// Package is a package of a repository: its compact manifest (as
// rewritten) and its file.
type Package struct {
	Manifest Manifest
	Path     string // All/NAME-VERSION.pkg
	Size     int64
	SHA256   [32]byte
}

// PathOf is a package's path in a repository: All/NAME-VERSION.pkg.
func PathOf(m Manifest) string { return "All/" + m.String("name") + "-" + m.String("version") + ".pkg" }

// MetaConf is the repository's meta.conf (pkg's defaults for version 2,
// written out).
const MetaConf = `version = 2;
packing_format = "tzst";
manifests = "packagesite.yaml";
data = "data";
filesite = "filesite.yaml";
manifests_archive = "packagesite";
filesite_archive = "filesite";
`

// BuildRepo writes a repository's catalogue files for packages (pkg lists
// one version of each package: give the one to offer): meta.conf (and its
// copy meta), packagesite.pkg and data.pkg, signed with k.
func BuildRepo(packages []Package, k *Key) (map[string][]byte, error) {
	pkgs := slices.Clone(packages)
	slices.SortFunc(pkgs, func(a, b Package) int { return strings.Compare(a.Path, b.Path) })
	var site bytes.Buffer
	var objs [][]byte
	for _, p := range pkgs {
		m := Manifest{}
		for k, v := range p.Manifest {
			m[k] = v
		}
		sum := hex.EncodeToString(p.SHA256[:])
		m["sum"], _ = json.Marshal(sum)
		m["path"], _ = json.Marshal(p.Path)
		m["repopath"], _ = json.Marshal(p.Path)
		m["pkgsize"], _ = json.Marshal(p.Size)
		b, err := marshalCompact(m)
		if err != nil {
			return nil, err
		}
		objs = append(objs, b)
		site.Write(b)
		site.WriteByte('\n')
	}
	var data bytes.Buffer
	data.WriteString(`{"groups":[],"expired_packages":[],"packages":[`)
	for i, b := range objs {
		if i > 0 {
			data.WriteByte(',')
		}
		data.Write(b)
	}
	data.WriteString("]}")
	files := map[string][]byte{"meta.conf": []byte(MetaConf), "meta": []byte(MetaConf)}
	for _, a := range []struct {
		archive, member string
		b               []byte
	}{
		{"packagesite.pkg", "packagesite.yaml", site.Bytes()}, {"data.pkg", "data", data.Bytes()},
	} {
		sig, err := k.Sign(a.b)
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		zw, _ := zstd.NewWriter(&out, zstd.WithEncoderConcurrency(1))
		tw := tar.NewWriter(zw)
		for _, m := range []struct {
			name string
			b    []byte
		}{{"signature", sig}, {a.member, a.b}} {
			if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.b)), Uname: "root", Gname: "wheel", Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}); err != nil {
				return nil, err
			}
			tw.Write(m.b)
		}
		if err := tw.Close(); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		files[a.archive] = out.Bytes()
	}
	return files, nil
}
