package publish_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/internal/debtest"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/ledgertest"
	"github.com/buildledger/buildledger/pkgrepo/apt"
	"github.com/buildledger/buildledger/pkgrepo/deb"
	"github.com/buildledger/buildledger/pkgrepo/freebsd"
	"github.com/buildledger/buildledger/pkgrepo/publish"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// record logs a successful build of job on platform whose main binary,
// bin/NAME, has content b, started at started.
func record(t testing.TB, l *ledgertest.Ledger, job, platform, name string, b []byte, started time.Time) (*ledger.BuildRecorded, uint64) {
	t.Helper()
	ctx := context.Background()
	info, err := l.Store.PutBytes(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	main := "bin/" + name
	e := &ledger.BuildRecorded{Job: job, UUID: uuid.New(), Platform: platform, Started: started, Finished: started.Add(time.Minute),
		Result: ledger.Result{Kind: ledger.ResultExited}, Script: cas.Sum([]byte("script " + job)), Console: cas.Sum(nil),
		Artifacts: []ledger.Artifact{{Path: main, SHA256: info.Digest, Size: info.Size}}, MainBinary: &main}
	r, err := l.RecordBuild(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	return e, r.Index
}

func newPublisher(t testing.TB, l *ledgertest.Ledger, key *apt.Key, k int) *publish.Publisher {
	t.Helper()
	p, err := publish.New(publish.Config{Ledger: l.Ledger, DB: l.DB, Key: key, Reproduced: k, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sync(t testing.TB, p *publish.Publisher) {
	t.Helper()
	if err := p.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// file returns a published file's bytes.
func file(t testing.TB, l *ledgertest.Ledger, p *publish.Publisher, path string) []byte {
	t.Helper()
	d, _, err := p.Lookup(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := l.Store.Bytes(context.Background(), d, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stanzas returns the Package and Version of each stanza of a Packages
// file, "name=version".
func stanzas(b []byte) []string {
	var out []string
	for _, s := range strings.Split(strings.TrimSpace(string(b)), "\n\n") {
		if s == "" {
			continue
		}
		c, err := deb.ParseControl([]byte(s + "\n"))
		if err != nil {
			panic(err)
		}
		out = append(out, c.Get("Package")+"="+c.Get("Version"))
	}
	return out
}

func addKey(t testing.TB, l *ledgertest.Ledger, name string) *attest.Signer {
	t.Helper()
	s := ledgertest.NewSigner(t)
	if _, err := l.Append(context.Background(), &ledger.KeyAdded{Name: name, PublicKey: s.Verifier().PublicKeyDER()}); err != nil {
		t.Fatal(err)
	}
	return s
}

func attestBuild(t testing.TB, l *ledgertest.Ledger, s *attest.Signer, b *ledger.BuildRecorded, index uint64, v ledger.Verdict) {
	t.Helper()
	ev := ledgertest.Attest(t, l, s, ledgertest.Rebuild(b, index, v))
	if _, err := l.Append(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

// TestPublishing: the suites follow the log. A .deb main binary is
// published once per distinct output under its repository version (a
// rebuild with the same bytes adds nothing; one with other bytes adds a
// newer version); other main binaries are not, and a ".deb" that is none
// is recorded as skipped; the reproduced suite lists a package once k
// active keys reproduced its exact bytes and drops it when one is revoked;
// the served .deb is linked to its build; and state rebuilt from the log
// lists the same packages.
func TestPublishing(t *testing.T) {
	l := ledgertest.Open(t)
	key, err := apt.NewKey("test repository")
	if err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, l, key, 2)
	sync(t, p)
	if len(p.Suites()) != 0 {
		t.Fatalf("suites of an empty log: %v", p.Suites())
	}

	v1 := debtest.Build(t, "hello", "1.0", "amd64", "#!/bin/sh\necho one\n")
	b1, i1 := record(t, l, "hello", "debian-12", "hello_1.0_amd64.deb", v1, t0)
	record(t, l, "unikernel", "debian-12", "unikernel.hvt", []byte("not a package"), t0)
	record(t, l, "broken", "debian-12", "broken.deb", []byte("not a package either"), t0)
	sync(t, p)
	if got := p.Suites(); strings.Join(got, " ") != "debian-12 debian-12-reproduced" {
		t.Fatalf("suites: %v", got)
	}
	rv1 := deb.RepoVersion("1.0", t0, cas.Sum(v1))
	pk := file(t, l, p, "dists/debian-12/main/binary-amd64/Packages")
	if got := stanzas(pk); strings.Join(got, " ") != "hello="+rv1 {
		t.Fatalf("debian-12 lists %v, want hello=%s", got, rv1)
	}
	if got := stanzas(file(t, l, p, "dists/debian-12-reproduced/main/binary-amd64/Packages")); len(got) != 0 {
		t.Fatalf("the reproduced suite lists %v before any attestation", got)
	}
	// The Release names every index with its SHA-256, and by-hash finds it.
	release := string(file(t, l, p, "dists/debian-12/Release"))
	if !strings.Contains(release, "Acquire-By-Hash: yes") || !strings.Contains(release, cas.Sum(pk).String()) {
		t.Fatalf("Release:\n%s", release)
	}
	if got := file(t, l, p, "dists/debian-12/main/binary-amd64/by-hash/SHA256/"+cas.Sum(pk).String()); !bytes.Equal(got, pk) {
		t.Fatal("by-hash serves other bytes")
	}
	// The pool file is the rewritten package, linked to its build.
	c, _ := deb.ParseControl([]byte(strings.TrimSpace(string(pk)) + "\n"))
	served := file(t, l, p, c.Get("Filename"))
	sc, err := deb.ReadControl(bytes.NewReader(served))
	if err != nil || sc.Get("Version") != rv1 || cas.Sum(served).String() != c.Get("SHA256") {
		t.Fatalf("the pool file: %v, version %q", err, sc.Get("Version"))
	}
	rec, err := p.Provenance(cas.Sum(served))
	if err != nil || rec.Build != b1.UUID || rec.Index != i1 || rec.Original != cas.Sum(v1) || rec.Job != "hello" {
		t.Fatalf("provenance: %+v, %v", rec, err)
	}
	var again bytes.Buffer
	if err := deb.Rewrite(bytes.NewReader(v1), &again, rec.Version); err != nil || !bytes.Equal(again.Bytes(), served) {
		t.Fatalf("redoing the rewrite from the original does not give the served bytes: %v", err)
	}
	recs, err := p.Published("debian-12", cas.Digest{}, 10)
	if err != nil || len(recs) != 2 {
		t.Fatalf("published records: %v, %v", recs, err)
	}
	skipped := 0
	for _, r := range recs {
		if r.Skipped != "" {
			skipped++
			if r.Job != "broken" || !strings.Contains(r.Skipped, "not a Debian binary package") {
				t.Errorf("skipped record: %+v", r)
			}
		}
	}
	if skipped != 1 {
		t.Errorf("%d skipped records, want 1", skipped)
	}
	if _, _, err := p.Lookup("pool/main/h/hello/nothing.deb"); err != publish.ErrNotFound {
		t.Errorf("an unknown pool file: %v", err)
	}
	if _, _, err := p.Lookup("dists/debian-12/main/binary-amd64/by-hash/SHA256/" + strings.Repeat("0", 64)); err == nil {
		t.Error("an unknown hash is found")
	}

	// A platform named like a reproduced suite publishes nothing (it would
	// take debian-12's reproduced suite over).
	record(t, l, "evil", "debian-12-reproduced", "evil.deb", debtest.Build(t, "evil", "1.0", "all", "x"), t0)
	sync(t, p)
	if got := stanzas(file(t, l, p, "dists/debian-12-reproduced/main/binary-amd64/Packages")); len(got) != 0 {
		t.Fatalf("the reproduced suite lists %v", got)
	}
	if recs, _ := p.Published("debian-12-reproduced", cas.Digest{}, 10); len(recs) != 1 || !strings.Contains(recs[0].Skipped, "reproduced") {
		t.Fatalf("the record of a build on debian-12-reproduced: %+v", recs)
	}

	// The same output again (other inputs, later): nothing new. Other
	// bytes, later: a newer version.
	record(t, l, "hello", "debian-12", "hello_1.0_amd64.deb", v1, t0.Add(time.Hour))
	v2 := debtest.Build(t, "hello", "1.0", "amd64", "#!/bin/sh\necho two\n")
	b2, i2 := record(t, l, "hello", "debian-12", "hello_1.0_amd64.deb", v2, t0.Add(2*time.Hour))
	sync(t, p)
	rv2 := deb.RepoVersion("1.0", t0.Add(2*time.Hour), cas.Sum(v2))
	if got := stanzas(file(t, l, p, "dists/debian-12/main/binary-amd64/Packages")); strings.Join(got, " ") != "hello="+rv1+" hello="+rv2 {
		t.Fatalf("after a rebuild and a new output: %v", got)
	}

	// Reproduced: two active keys, for the exact bytes.
	ka, kb := addKey(t, l, "rebuilder-a"), addKey(t, l, "rebuilder-b")
	attestBuild(t, l, ka, b2, i2, ledger.VerdictReproduced)
	attestBuild(t, l, ka, b1, i1, ledger.VerdictReproduced)
	attestBuild(t, l, ka, b1, i1, ledger.VerdictReproduced) // one key counts once
	sync(t, p)
	if got := stanzas(file(t, l, p, "dists/debian-12-reproduced/main/binary-amd64/Packages")); len(got) != 0 {
		t.Fatalf("the reproduced suite lists %v after one key", got)
	}
	attestBuild(t, l, kb, b2, i2, ledger.VerdictReproduced)
	sync(t, p)
	if got := stanzas(file(t, l, p, "dists/debian-12-reproduced/main/binary-amd64/Packages")); strings.Join(got, " ") != "hello="+rv2 {
		t.Fatalf("the reproduced suite lists %v after two keys reproduced v2", got)
	}
	if _, err := l.Append(context.Background(), &ledger.KeyRevoked{KeyID: kb.KeyID(), Reason: "compromised"}); err != nil {
		t.Fatal(err)
	}
	sync(t, p)
	if got := stanzas(file(t, l, p, "dists/debian-12-reproduced/main/binary-amd64/Packages")); len(got) != 0 {
		t.Fatalf("the reproduced suite lists %v after a revocation", got)
	}
	before := file(t, l, p, "dists/debian-12/main/binary-amd64/Packages")

	// Rebuilt from the log: the same lists.
	if err := l.DB.DropPrefix([]byte("r/")); err != nil {
		t.Fatal(err)
	}
	p = newPublisher(t, l, key, 2)
	sync(t, p)
	if got := file(t, l, p, "dists/debian-12/main/binary-amd64/Packages"); !bytes.Equal(got, before) {
		t.Fatalf("rebuilt from the log, debian-12 lists\n%s\nnot\n%s", got, before)
	}
	if got := stanzas(file(t, l, p, "dists/debian-12-reproduced/main/binary-amd64/Packages")); len(got) != 0 {
		t.Fatalf("rebuilt from the log, the reproduced suite lists %v", got)
	}
	if p.Applied() != l.Size() {
		t.Fatalf("applied %d of %d", p.Applied(), l.Size())
	}
}

// TestPublishingRetries: a Sync stopped before it could read a package
// records nothing about it (it is published by the next one, not marked
// as no package), and a platform whose repositories cannot be written
// (the FreeBSD key is unreadable) neither stops the others nor is
// forgotten: it is published once the key is there.
func TestPublishingRetries(t *testing.T) {
	l := ledgertest.Open(t)
	key, err := apt.NewKey("test repository")
	if err != nil {
		t.Fatal(err)
	}
	fkey := testRSAKey(t)
	broken := true
	p, err := publish.New(publish.Config{Ledger: l.Ledger, DB: l.DB, Key: key, PkgKey: func(bool) (*freebsd.Key, error) {
		if broken {
			return nil, errors.New("pkg.key: unreadable")
		}
		return fkey, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	record(t, l, "hello", "debian-12", "hello.deb", debtest.Build(t, "hello", "1.0", "all", "x"), t0)
	record(t, l, "hello", "freebsd-14", "hello-1.0.pkg", freebsdPkg(t, "hello", "1.0", "x"), t0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Sync(ctx); err == nil {
		t.Fatal("a cancelled Sync succeeded")
	}
	if err := p.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "unreadable") {
		t.Fatalf("Sync with an unreadable key: %v", err)
	}
	if got := strings.Join(p.Suites(), " "); got != "debian-12 debian-12-reproduced" || len(p.Repos()) != 0 {
		t.Fatalf("suites %q, repositories %v", got, p.Repos())
	}
	for _, platform := range []string{"debian-12", "freebsd-14"} {
		if recs, _ := p.Published(platform, cas.Digest{}, 10); len(recs) != 1 || recs[0].Skipped != "" {
			t.Fatalf("%s: %+v", platform, recs)
		}
	}
	broken = false
	sync(t, p)
	if got := strings.Join(p.Repos(), " "); got != "freebsd-14-reproduced/"+abi+" freebsd-14/"+abi {
		t.Fatalf("repositories: %q", got)
	}
}
