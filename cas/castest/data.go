package castest

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
)

// splitmix64 output for position k of stream seed: every 8-byte word of a
// random stream is computed from its index, so streams can be read in any
// pieces and still be identical.
func word(seed, k uint64) uint64 {
	z := seed + (k+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// RandReader returns a reader of n pseudo-random (incompressible) bytes
// determined by seed, generated on the fly at several GB/s without holding
// them in memory.
func RandReader(seed uint64, n int64) io.Reader { return &randReader{seed: seed, n: n} }

type randReader struct {
	seed   uint64
	pos, n int64
}

func (r *randReader) Read(p []byte) (int, error) {
	if r.pos >= r.n {
		return 0, io.EOF
	}
	if rem := r.n - r.pos; int64(len(p)) > rem {
		p = p[:rem]
	}
	fillRand(p, r.seed, r.pos)
	r.pos += int64(len(p))
	return len(p), nil
}

// fillRand fills p with the stream bytes starting at offset off.
func fillRand(p []byte, seed uint64, off int64) {
	var tmp [8]byte
	i := 0
	if o := int(off % 8); o != 0 {
		binary.LittleEndian.PutUint64(tmp[:], word(seed, uint64(off/8)))
		i = copy(p, tmp[o:])
	}
	k := uint64((off + int64(i)) / 8)
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], word(seed, k))
		k++
	}
	if i < len(p) {
		binary.LittleEndian.PutUint64(tmp[:], word(seed, k))
		copy(p[i:], tmp[:])
	}
}

// RandBytes returns the first n bytes of RandReader(seed, n).
func RandBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	fillRand(b, seed, 0)
	return b
}

var syllables = strings.Fields("lib ssl core net util xml gtk qt py perl ocaml dune base std http json yaml zlib bz lz ma curl git tls rsa aes math lin alg img png jpeg font conf dbus sys log gpg key tool kit pkg dev doc data bin run time zone glib cairo pango x11 wayland mesa llvm clang gcc rust go node java sql lite pq redis")

func name(r *rand.Rand) string {
	n := 1 + r.IntN(3)
	var b strings.Builder
	for i := range n {
		if i > 0 && r.IntN(3) == 0 {
			b.WriteByte('-')
		}
		b.WriteString(syllables[r.IntN(len(syllables))])
	}
	if r.IntN(4) == 0 {
		fmt.Fprintf(&b, "%d", r.IntN(30))
	}
	return b.String()
}

func version(r *rand.Rand) string {
	v := fmt.Sprintf("%d.%d.%d", r.IntN(12), r.IntN(40), r.IntN(30))
	if r.IntN(2) == 0 {
		v += fmt.Sprintf("-%d", 1+r.IntN(9))
	}
	if r.IntN(5) == 0 {
		v += fmt.Sprintf("+deb%du%d", 10+r.IntN(3), 1+r.IntN(5))
	}
	return v
}

// Text returns about n bytes of compressible text (package-list-like lines,
// many repeated words with varying numbers) determined by seed.
func Text(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 0, n+128)
	for len(b) < n {
		b = fmt.Appendf(b, "%s=%s\n", name(r), version(r))
	}
	return b[:n]
}

// Packages is a list of name=version lines like a build's system-packages
// file, kept sorted by name.
type Packages struct {
	r     *rand.Rand
	lines []string
}

// NewPackages returns a package list of about size bytes.
func NewPackages(seed uint64, size int) *Packages {
	p := &Packages{r: rand.New(rand.NewPCG(seed, 2))}
	seen := map[string]bool{}
	for n := 0; n < size; {
		nm := name(p.r)
		if seen[nm] {
			continue
		}
		seen[nm] = true
		l := nm + "=" + version(p.r)
		p.lines = append(p.lines, l)
		n += len(l) + 1
	}
	slices.Sort(p.lines)
	return p
}

// Bytes renders the list.
func (p *Packages) Bytes() []byte {
	return []byte(strings.Join(p.lines, "\n") + "\n")
}

// Change makes a day's worth of edits: n version bumps, and with some luck a
// package added or removed.
func (p *Packages) Change(n int) {
	for range n {
		i := p.r.IntN(len(p.lines))
		nm, _, _ := strings.Cut(p.lines[i], "=")
		p.lines[i] = nm + "=" + version(p.r)
	}
	switch p.r.IntN(4) {
	case 0:
		p.lines = append(p.lines, name(p.r)+"-extra="+version(p.r))
		slices.Sort(p.lines)
	case 1:
		i := p.r.IntN(len(p.lines))
		p.lines = slices.Delete(p.lines, i, i+1)
	}
}

// Switch is an opam switch export (opam switch export --full): the
// installed package list followed by each package's definition, with
// source URLs and checksums.
type Switch struct {
	r    *rand.Rand
	pkgs []opamPkg
}

type opamPkg struct {
	name, version string
	deps          []string
	sha256        string
	sha512        string
}

// NewSwitch returns a switch export of about size bytes.
func NewSwitch(seed uint64, size int) *Switch {
	s := &Switch{r: rand.New(rand.NewPCG(seed, 3))}
	seen := map[string]bool{}
	for n := 0; n < size; {
		nm := name(s.r)
		if seen[nm] {
			continue
		}
		seen[nm] = true
		p := opamPkg{name: nm}
		s.bump(&p)
		for range s.r.IntN(6) {
			p.deps = append(p.deps, name(s.r))
		}
		s.pkgs = append(s.pkgs, p)
		n += 700 + 30*len(p.deps)
	}
	slices.SortFunc(s.pkgs, func(a, b opamPkg) int { return strings.Compare(a.name, b.name) })
	return s
}

func (s *Switch) bump(p *opamPkg) {
	p.version = version(s.r)
	p.sha256 = fmt.Sprintf("%016x%016x%016x%016x", s.r.Uint64(), s.r.Uint64(), s.r.Uint64(), s.r.Uint64())
	p.sha512 = p.sha256 + fmt.Sprintf("%016x%016x%016x%016x", s.r.Uint64(), s.r.Uint64(), s.r.Uint64(), s.r.Uint64())
}

// Change bumps n packages' versions (with new source URLs and checksums).
func (s *Switch) Change(n int) {
	for range n {
		s.bump(&s.pkgs[s.r.IntN(len(s.pkgs))])
	}
}

// Bytes renders the export.
func (s *Switch) Bytes() []byte {
	var b strings.Builder
	b.WriteString("opam-version: \"2.0\"\ncompiler: [\"ocaml-base-compiler.4.14.1\"]\nroots: [\"dune.3.11.0\" \"ocamlfind.1.9.6\"]\ninstalled: [\n")
	for _, p := range s.pkgs {
		fmt.Fprintf(&b, "  \"%s.%s\"\n", p.name, p.version)
	}
	b.WriteString("]\n")
	for _, p := range s.pkgs {
		fmt.Fprintf(&b, "package \"%s\" {\n  opam-version: \"2.0\"\n  version: \"%s\"\n", p.name, p.version)
		fmt.Fprintf(&b, "  synopsis: \"The %s library\"\n  maintainer: \"%s maintainers <%s@example.org>\"\n", p.name, p.name, p.name)
		fmt.Fprintf(&b, "  license: \"MIT\"\n  homepage: \"https://github.com/ocaml/%s\"\n  depends: [\n    \"ocaml\" {>= \"4.08\"}\n    \"dune\" {>= \"3.0\"}\n", p.name)
		for _, d := range p.deps {
			fmt.Fprintf(&b, "    \"%s\"\n", d)
		}
		b.WriteString("  ]\n  build: [\n    [\"dune\" \"subst\"] {dev}\n    [\"dune\" \"build\" \"-p\" name \"-j\" jobs \"@install\" \"@runtest\" {with-test}]\n  ]\n")
		fmt.Fprintf(&b, "  dev-repo: \"git+https://github.com/ocaml/%s.git\"\n  url {\n    src: \"https://github.com/ocaml/%s/releases/download/%s/%s-%s.tbz\"\n", p.name, p.name, p.version, p.name, p.version)
		fmt.Fprintf(&b, "    checksum: [\n      \"sha256=%s\"\n      \"sha512=%s\"\n    ]\n  }\n}\n", p.sha256, p.sha512)
	}
	return []byte(b.String())
}
