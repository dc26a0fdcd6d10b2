package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/pkgrepo/publish"
)

// The Debian package repositories (package pkgrepo/publish) under /apt:
// /apt/dists/SUITE/… (Release, InRelease, Release.gpg, Packages,
// Packages.gz, and every index by hash), /apt/pool/… (the published .debs,
// from the content store), /apt/key.asc (the signing key for apt's
// signed-by), /apt/package/SHA256 (which build a served .deb comes from),
// and /apt itself, which says how to use them.
func (s *Server) aptRoutes(get func(string, http.HandlerFunc)) {
	get("/apt", s.aptIndex)
	get("/apt/key.asc", s.aptKey)
	get("/apt/package/{sha256}", s.aptProvenance)
	get("/apt/{path:(?:dists|pool)/.+}", s.aptFile)
	get("/freebsd", s.freebsdIndex)
	get("/freebsd/pkg.pub", s.freebsdKey)
	get("/freebsd/{repo}/{path:.+}", s.freebsdFile)
}

func (s *Server) freebsdIndex(w http.ResponseWriter, r *http.Request) {
	p := s.packages(w, r)
	if p == nil {
		return
	}
	base := "http://" + r.Host + "/freebsd"
	repos := p.Repos()
	if wantsJSON(r) {
		type repo struct {
			Name     string `json:"name"`
			Packages int    `json:"packages"`
			LogSize  uint64 `json:"log_size"`
			URL      string `json:"url"`
		}
		out := []repo{}
		for _, name := range repos {
			info, _ := p.Suite(publish.FreeBSDPrefix + name)
			out = append(out, repo{name, info.Packages, info.LogSize, base + "/" + name})
		}
		writeJSON(w, http.StatusOK, map[string]any{"repositories": out, "key": base + "/pkg.pub", "applied_log_size": p.Applied()})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	fmt.Fprintf(&b, "FreeBSD package repositories of this ledger, published from its log up to entry %d.\n\n", p.Applied())
	fmt.Fprintf(&b, "Each platform's repository offers the newest build of each package, under the version\n"+
		"VERSION[.0.g0000000].BUILDTIME.SHA256 (SHA256: the original package's digest); its\n"+
		"-reproduced repository offers the newest build enough registered rebuilders reproduced\n"+
		"byte for byte. /apt/package/SHA256 names the build a served package comes from.\n\n")
	if len(repos) == 0 {
		fmt.Fprintf(&b, "No repository is published yet: no build's main binary is a .pkg.\n")
		w.Write([]byte(b.String()))
		return
	}
	fmt.Fprintf(&b, "To use one (as root):\n\n  mkdir -p /usr/local/etc/pkg/keys /usr/local/etc/pkg/repos\n"+
		"  fetch -o /usr/local/etc/pkg/keys/buildledger.pub %s/pkg.pub\n"+
		"  cat > /usr/local/etc/pkg/repos/buildledger.conf <<EOF\n"+
		"  buildledger: { url: \"%s/%s/${ABI}\", signature_type: \"pubkey\",\n"+
		"                 pubkey: \"/usr/local/etc/pkg/keys/buildledger.pub\", enabled: yes }\n  EOF\n  pkg update\n\n(pkg puts the machine's ABI, e.g. FreeBSD:14:amd64, in place of ${ABI}; pkg 2.x reads\nthese catalogues' signatures.) Repositories:\n\n", base, base, platformOf(repos))
	for _, name := range repos {
		info, _ := p.Suite(publish.FreeBSDPrefix + name)
		fmt.Fprintf(&b, "  %-32s %6d packages   %s/%s\n", name, info.Packages, base, name)
	}
	w.Write([]byte(b.String()))
}

// platformOf is the platform of the first repository that is not a
// reproduced one ("PLATFORM/ABI"), for the example.
func platformOf(repos []string) string {
	for _, r := range repos {
		if p, _, _ := strings.Cut(r, "/"); !strings.HasSuffix(p, publish.ReproducedSuffix) {
			return p
		}
	}
	p, _, _ := strings.Cut(repos[0], "/")
	return p
}

func (s *Server) freebsdKey(w http.ResponseWriter, r *http.Request) {
	p := s.packages(w, r)
	if p == nil {
		return
	}
	pub, err := p.PkgPublicKey()
	if errors.Is(err, publish.ErrNotFound) {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: "this server publishes no FreeBSD repositories"})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(pub)
}

func (s *Server) freebsdFile(w http.ResponseWriter, r *http.Request) {
	p := s.packages(w, r)
	if p == nil {
		return
	}
	v := mux.Vars(r)
	d, modified, err := p.Lookup(publish.FreeBSDPrefix + v["repo"] + "/" + v["path"])
	if errors.Is(err, publish.ErrNotFound) {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: "no such file in the FreeBSD package repositories: " + v["repo"] + "/" + v["path"] + " (/freebsd lists them)"})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	_, file, _ := strings.Cut(v["path"], "/") // after the ABI
	switch {
	case strings.HasPrefix(file, "All/"):
		s.serveBlobAs(w, r, d, "application/octet-stream", "public, max-age=31536000, immutable", modified)
	case strings.HasPrefix(file, "meta"):
		s.serveBlobAs(w, r, d, "text/plain; charset=utf-8", "no-cache", modified)
	default:
		s.serveBlobAs(w, r, d, "application/octet-stream", "no-cache", modified)
	}
}

func (s *Server) packages(w http.ResponseWriter, r *http.Request) *publish.Publisher {
	if s.cfg.Packages == nil {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: "this server publishes no package repositories (ledger serve --apt=false)"})
	}
	return s.cfg.Packages
}

func (s *Server) aptIndex(w http.ResponseWriter, r *http.Request) {
	p := s.packages(w, r)
	if p == nil {
		return
	}
	type suite struct {
		Name     string `json:"name"`
		Packages int    `json:"packages"`
		LogSize  uint64 `json:"log_size"`
		Source   string `json:"sources_list"`
	}
	base := "http://" + r.Host + "/apt"
	var suites []suite
	for _, name := range p.Suites() {
		info, _ := p.Suite(name)
		suites = append(suites, suite{name, info.Packages, info.LogSize,
			fmt.Sprintf("deb [signed-by=/etc/apt/keyrings/buildledger.asc] %s %s main", base, name)})
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]any{"suites": suites, "key": base + "/key.asc", "applied_log_size": p.Applied()})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	fmt.Fprintf(&b, "Debian package repositories of this ledger, published from its log up to entry %d.\n\n", p.Applied())
	fmt.Fprintf(&b, "Each platform's suite lists every distinct .deb its builds produced, under the version\n"+
		"VERSION[-0-g0000000]-BUILDTIME-SHA256 (SHA256: the original package's digest); its\n"+
		"-reproduced suite lists only the packages whose exact bytes enough registered\n"+
		"rebuilders reproduced. /apt/package/SHA256 names the build a served .deb comes from.\n\n")
	fmt.Fprintf(&b, "To use one (as root):\n\n  mkdir -p /etc/apt/keyrings\n  curl -fsS %s/key.asc -o /etc/apt/keyrings/buildledger.asc\n", base)
	if len(suites) == 0 {
		fmt.Fprintf(&b, "\nNo suite is published yet: no build's main binary is a .deb.\n")
	} else {
		fmt.Fprintf(&b, "  echo '%s' > /etc/apt/sources.list.d/buildledger.list\n  apt-get update\n\nSuites:\n\n", suites[0].Source)
		for _, su := range suites {
			fmt.Fprintf(&b, "  %-32s %6d packages   %s\n", su.Name, su.Packages, su.Source)
		}
	}
	w.Write([]byte(b.String()))
}

func (s *Server) aptKey(w http.ResponseWriter, r *http.Request) {
	p := s.packages(w, r)
	if p == nil {
		return
	}
	w.Header().Set("Content-Type", "application/pgp-keys")
	w.Write(p.PublicKey())
}

func (s *Server) aptProvenance(w http.ResponseWriter, r *http.Request) {
	p := s.packages(w, r)
	if p == nil {
		return
	}
	d, err := cas.ParseDigest(mux.Vars(r)["sha256"])
	if err != nil {
		s.fail(w, r, badRequest("%v", err))
		return
	}
	rec, err := p.Provenance(d)
	if errors.Is(err, publish.ErrNotFound) {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: "no published package has SHA-256 " + d.String() + " (for an original build output, ask /hash)"})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (s *Server) aptFile(w http.ResponseWriter, r *http.Request) {
	p := s.packages(w, r)
	if p == nil {
		return
	}
	path := mux.Vars(r)["path"]
	d, modified, err := p.Lookup(path)
	if errors.Is(err, publish.ErrNotFound) {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: "no such file in the package repositories: " + path + " (/apt lists the suites)"})
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctype := "application/octet-stream"
	switch {
	case strings.HasSuffix(path, ".deb"):
		ctype = "application/vnd.debian.binary-package"
	case strings.HasSuffix(path, ".gz"):
		ctype = "application/gzip"
	case strings.HasSuffix(path, "/Release.gpg"):
		ctype = "application/pgp-signature"
	case strings.HasSuffix(path, "/Packages"), strings.HasSuffix(path, "/Release"), strings.HasSuffix(path, "/InRelease"):
		ctype = "text/plain; charset=utf-8"
	}
	// A pool file or an index by hash never changes; the others do.
	if strings.HasPrefix(path, "pool/") || strings.Contains(path, "/by-hash/") {
		s.serveBlobAs(w, r, d, ctype, "public, max-age=31536000, immutable", modified)
		return
	}
	s.serveBlobAs(w, r, d, ctype, "no-cache", modified)
}
