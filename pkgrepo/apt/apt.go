// Package apt writes the signed index files of a Debian repository
// (https://wiki.debian.org/DebianRepository/Format, a "flat" layout per
// suite): for each suite, dists/SUITE/main/binary-ARCH/Packages (and
// Packages.gz) listing the packages with their pool file name, size and
// SHA-256, and dists/SUITE/Release with the SHA-256 of each index,
// clear-signed as InRelease and signed as Release.gpg with an OpenPGP key
// (ProtonMail/go-crypto), which apt verifies with signed-by.
package apt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/klauspost/compress/gzip"

	"github.com/buildledger/buildledger/pkgrepo/deb"
)

// Package is a package of a suite: its control file (as rewritten for
// the repository) and its file in the pool.
type Package struct {
	Control  *deb.Control
	Filename string // pool/…, relative to the repository's root
	Size     int64
	SHA256   [32]byte
}

// Key is the repository's OpenPGP signing key.
type Key struct {
	entity *openpgp.Entity
}

// NewKey makes an Ed25519 signing key named name.
func NewKey(name string) (*Key, error) {
	e, err := openpgp.NewEntity(name, "package repository", "", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		return nil, err
	}
	return &Key{entity: e}, nil
}

// ReadKey reads a key MarshalPrivate wrote.
func ReadKey(armored []byte) (*Key, error) {
	es, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
	if err != nil || len(es) != 1 || es[0].PrivateKey == nil {
		return nil, fmt.Errorf("apt: not an armored OpenPGP private key: %v", err)
	}
	return &Key{entity: es[0]}, nil
}

// MarshalPrivate writes the private key, armored (keep it secret).
func (k *Key) MarshalPrivate() ([]byte, error) {
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := k.entity.SerializePrivate(w, nil); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Public writes the public key, armored: what apt's signed-by names.
func (k *Key) Public() ([]byte, error) {
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := k.entity.Serialize(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Suite is the index files of one suite, by path below the repository's
// root.
type Suite map[string][]byte

// BuildSuite writes the index files of suite for packages (each listed in
// binary-ARCH of its Architecture; "all" packages in every arch of
// archs), signed with k at date. With byHash, Release says
// "Acquire-By-Hash: yes": apt then fetches each index by its SHA-256
// (dists/SUITE/main/binary-ARCH/by-hash/SHA256/HEX), so a client reading
// while the suite is republished never mixes an old Release with a new
// index; the server must then keep serving older indexes by hash.
func BuildSuite(suite string, archs []string, packages []Package, k *Key, date time.Time, byHash bool) (Suite, error) {
	files := Suite{}
	byArch := map[string][]Package{}
	for _, a := range archs {
		byArch[a] = nil
	}
	for _, p := range packages {
		a := p.Control.Get("Architecture")
		if a == "all" {
			for _, x := range archs {
				byArch[x] = append(byArch[x], p)
			}
			continue
		}
		if _, ok := byArch[a]; !ok {
			return nil, fmt.Errorf("apt: package %s is for %s, which suite %s does not list", p.Control.Get("Package"), a, suite)
		}
		byArch[a] = append(byArch[a], p)
	}
	gzipped := map[[32]byte][]byte{}
	var release bytes.Buffer
	yesNo := map[bool]string{true: "yes", false: "no"}[byHash]
	fmt.Fprintf(&release, "Origin: buildledger\nLabel: buildledger\nSuite: %s\nCodename: %s\nDate: %s\nArchitectures: %s\nComponents: main\nAcquire-By-Hash: %s\nSHA256:\n",
		suite, suite, date.UTC().Format(time.RFC1123Z), strings.Join(archs, " "), yesNo)
	for _, a := range slices.Sorted(func(yield func(string) bool) {
		for a := range byArch {
			if !yield(a) {
				return
			}
		}
	}) {
		ps := byArch[a]
		type keyed struct {
			name, version string
			p             *Package
		}
		sorted := make([]keyed, len(ps))
		size := 0
		for i := range ps {
			sorted[i] = keyed{ps[i].Control.Get("Package"), ps[i].Control.Get("Version"), &ps[i]}
			size += 160 + len(ps[i].Filename)
			for _, f := range ps[i].Control.Fields {
				size += len(f.Name) + len(f.Value) + 3
			}
		}
		slices.SortFunc(sorted, func(x, y keyed) int {
			if c := strings.Compare(x.name, y.name); c != 0 {
				return c
			}
			return strings.Compare(x.version, y.version)
		})
		var idx bytes.Buffer
		idx.Grow(size)
		var cuts []int // where a gzip member ends (see gzipMembers)
		for _, k := range sorted {
			if memberEnds(k.name, k.version) {
				cuts = append(cuts, idx.Len())
			}
			p := k.p
			for _, f := range p.Control.Fields {
				switch strings.ToLower(f.Name) {
				case "filename", "size", "md5sum", "sha1", "sha256", "sha512":
					continue // the repository's own
				}
				idx.WriteString(f.Name)
				idx.WriteString(": ")
				idx.WriteString(f.Value)
				idx.WriteByte('\n')
			}
			idx.WriteString("Filename: ")
			idx.WriteString(p.Filename)
			idx.WriteString("\nSize: ")
			idx.WriteString(strconv.FormatInt(p.Size, 10))
			idx.WriteString("\nSHA256: ")
			idx.WriteString(hex.EncodeToString(p.SHA256[:]))
			idx.WriteString("\n\n")
		}
		// Architectures with the same list (only "all" packages) share
		// one compression.
		sum := sha256.Sum256(idx.Bytes())
		gz, ok := gzipped[sum]
		if !ok {
			gz = gzipMembers(idx.Bytes(), cuts)
			gzipped[sum] = gz
		}
		for _, f := range []struct {
			name string
			data []byte
		}{{"main/binary-" + a + "/Packages", idx.Bytes()}, {"main/binary-" + a + "/Packages.gz", gz}} {
			files["dists/"+suite+"/"+f.name] = f.data
			sum := sha256.Sum256(f.data)
			fmt.Fprintf(&release, " %x %d %s\n", sum, len(f.data), f.name)
		}
	}
	files["dists/"+suite+"/Release"] = release.Bytes()
	cfg := &packet.Config{DefaultHash: 0}
	var in bytes.Buffer
	w, err := clearsign.Encode(&in, k.entity.PrivateKey, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(release.Bytes()); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	files["dists/"+suite+"/InRelease"] = in.Bytes()
	var sig bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&sig, k.entity, bytes.NewReader(release.Bytes()), cfg); err != nil {
		return nil, err
	}
	files["dists/"+suite+"/Release.gpg"] = sig.Bytes()
	return files, nil
}

// memberEnds says whether a gzip member of Packages.gz ends before the
// stanza of this package: after about 64 stanzas, at places that depend
// on the packages alone, not on their position.
func memberEnds(name, version string) bool {
	h := fnv.New32a()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(version))
	return h.Sum32()%64 == 0
}

// gzipMembers compresses b as a gzip file of several members (RFC 1952
// allows any number; zlib, and so apt, reads them as one stream), one per
// stretch between cuts. Adding a package changes one member, and the rest
// stay the same bytes, which the content store's chunking then stores
// once: a repository republished for every new build does not keep a
// whole new Packages.gz each time.
func gzipMembers(b []byte, cuts []int) []byte {
	var out bytes.Buffer
	start := 0
	for _, end := range append(cuts, len(b)) {
		if end <= start && !(end == len(b) && out.Len() == 0) {
			continue
		}
		zw, _ := gzip.NewWriterLevel(&out, gzip.DefaultCompression)
		zw.Write(b[start:end])
		zw.Close()
		start = end
	}
	return out.Bytes()
}

// PoolName is a package's file name in the pool:
// pool/main/P/PACKAGE/PACKAGE_VERSION_ARCH.deb, the version without its
// epoch, as Debian's archive names files (the repository version ends in
// the original's SHA-256, so names stay unique).
func PoolName(c *deb.Control) string {
	name := c.Get("Package")
	first := name[:1]
	if strings.HasPrefix(name, "lib") && len(name) > 3 {
		first = name[:4]
	}
	v := c.Get("Version")
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	return fmt.Sprintf("pool/main/%s/%s/%s_%s_%s.deb", first, name, name, v, c.Get("Architecture"))
}
