package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi/api"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/orb"
)

// The comparison's work is bounded per request, whatever was uploaded:
// each input file is parsed only if it has at most maxDiffInput bytes (a
// real build-environment or system-packages file has a few KiB, the
// opam-switch of a MirageOS unikernel a few hundred), each section's diff
// keeps at most maxDiffOutput bytes of text with each value cut at
// maxDiffValue bytes, and the result is cached by the input files' digests.
// Parsing an opam-switch holds about five times its size, so a comparison
// holds some tens of MiB at most, and Config.MaxHeavyReads of them run at
// once. TestCompareBounded proves the bound and the cache.
const (
	maxDiffInput  = 4 << 20
	maxDiffOutput = 256 << 10
	maxDiffValue  = 4 << 10
	// compareCacheSize is the number of cached comparisons: with cut
	// diffs, at most 3 × maxDiffOutput (plus bookkeeping) each.
	compareCacheSize = 64
)

// Comparison is the answer of /compare/{left}/{right}: what changed between
// two builds' inputs (builder-web's compare page). A section whose files are
// missing, do not parse or are too large to parse here carries an error
// message instead of a diff (a nil diff never means "the same").
//
// Its members are a superset of builder-web's compare_builds_json: "left"
// and "right", and "env_diff", "package_diff" and "opam_diff" in
// builder-web's shapes, derived from this ledger's own diffs ("environment",
// "system_packages", "opam"), which also say what could not be compared.
type Comparison struct {
	Left       CompareBuild `json:"left"`
	Right      CompareBuild `json:"right"`
	SameInputs bool         `json:"same_inputs"`
	SameOutput bool         `json:"same_main_binary"`
	InputDiff

	EnvDiff     ListDiff     `json:"env_diff"`
	PackageDiff ListDiff     `json:"package_diff"`
	OpamDiff    OpamListDiff `json:"opam_diff"`
}

// CompareBuild is one side of a comparison: builder-web's {"job", "uuid",
// "platform", "start_time", "finish_time", "main_binary": bool,
// "main_binary_size": int | null} with the build's summary added. The main
// binary itself is MainArtifact; the embedded BuildSummary's MainBinary is
// hidden by builder-web's "main_binary" and left nil.
type CompareBuild struct {
	BuildSummary
	MainBinary     bool                `json:"main_binary"`
	MainBinarySize *int64              `json:"main_binary_size"`
	MainArtifact   *api.MainBinaryView `json:"main_binary_artifact"`
}

func compareBuild(e ledger.BuildEntry) CompareBuild {
	c := CompareBuild{BuildSummary: summary(e)}
	if m := c.BuildSummary.MainBinary; m != nil {
		c.MainBinary, c.MainBinarySize, c.MainArtifact = true, &m.Size, m
	}
	c.BuildSummary.MainBinary = nil
	return c
}

// ListDiff is builder-web's diff of two lists of name=version pairs
// (system packages; environment variables, with the value as "version"):
// those only on the left, those only on the right, and those in both with
// other versions. An empty ListDiff also stands for a section that was not
// compared: this ledger's own member then carries an error.
type ListDiff struct {
	Left    []NameVersion `json:"left_packages"`
	Right   []NameVersion `json:"right_packages"`
	Changed []VersionDiff `json:"different_versions"`
}

// NameVersion is a package (or variable) of a builder-web diff.
type NameVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// VersionDiff is a package (or variable) whose version (or value) differs.
type VersionDiff struct {
	Name  string `json:"name"`
	Left  string `json:"version_left"`
	Right string `json:"version_right"`
}

// OpamListDiff is builder-web's diff of two opam switches.
type OpamListDiff struct {
	// OpamFiles are packages at the same version whose opam files differ.
	OpamFiles []OpamFileListDiff `json:"opam_diff"`
	Versions  []VersionDiff      `json:"version_diff"`
	Left      []NameVersion      `json:"only_in_left"`
	Right     []NameVersion      `json:"only_in_right"`
	Duniverse DuniverseListDiff  `json:"duniverse_diff"`
}

// OpamFileListDiff is one package whose opam file differs: "name.version",
// whether the files are the same but for formatting (never, here: such
// files are not listed), and the changed items, one "-"/"+" line each.
type OpamFileListDiff struct {
	PackageVersion   string `json:"package_version"`
	EffectivelyEqual bool   `json:"effectively_equal"`
	Diff             string `json:"diff"`
}

// DuniverseListDiff is builder-web's diff of the vendored sources of two
// MirageOS 4 builds: directories only on the left, only on the right, and
// in both but fetched differently.
type DuniverseListDiff struct {
	Left    []DuniverseEntry  `json:"left"`
	Right   []DuniverseEntry  `json:"right"`
	Changed []DuniverseDetail `json:"detailed_diff"`
}

// DuniverseEntry is a vendored directory and its URL.
type DuniverseEntry struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// DuniverseDetail is a directory fetched differently on each side.
type DuniverseDetail struct {
	Name     string `json:"name"`
	URLLeft  string `json:"url_left"`
	URLRight string `json:"url_right"`
}

// builderWebDiffs fills in builder-web's members from this ledger's diffs;
// lists are empty, never null.
func (c *Comparison) builderWebDiffs() {
	c.EnvDiff, c.PackageDiff = ListDiff{[]NameVersion{}, []NameVersion{}, []VersionDiff{}}, ListDiff{[]NameVersion{}, []NameVersion{}, []VersionDiff{}}
	c.OpamDiff = OpamListDiff{OpamFiles: []OpamFileListDiff{}, Versions: []VersionDiff{}, Left: []NameVersion{}, Right: []NameVersion{},
		Duniverse: DuniverseListDiff{Left: []DuniverseEntry{}, Right: []DuniverseEntry{}, Changed: []DuniverseDetail{}}}
	changes := func(cs []orb.Change) []VersionDiff {
		out := make([]VersionDiff, 0, len(cs))
		for _, ch := range cs {
			out = append(out, VersionDiff{Name: ch.Name, Left: ch.Old, Right: ch.New})
		}
		return out
	}
	if d := c.Env; d != nil {
		for _, v := range d.Removed {
			c.EnvDiff.Left = append(c.EnvDiff.Left, NameVersion{v.Name, v.Value})
		}
		for _, v := range d.Added {
			c.EnvDiff.Right = append(c.EnvDiff.Right, NameVersion{v.Name, v.Value})
		}
		c.EnvDiff.Changed = changes(d.Changed)
	}
	if d := c.Packages; d != nil {
		for _, p := range d.Removed {
			c.PackageDiff.Left = append(c.PackageDiff.Left, NameVersion{p.Name, p.Version})
		}
		for _, p := range d.Added {
			c.PackageDiff.Right = append(c.PackageDiff.Right, NameVersion{p.Name, p.Version})
		}
		c.PackageDiff.Changed = changes(d.Changed)
	}
	if d := c.Opam; d != nil {
		o := &c.OpamDiff
		for _, p := range d.Removed {
			o.Left = append(o.Left, NameVersion{p.Name, p.Version})
		}
		for _, p := range d.Added {
			o.Right = append(o.Right, NameVersion{p.Name, p.Version})
		}
		o.Versions = changes(d.VersionChanged)
		for _, f := range d.OpamFileChanged {
			var b strings.Builder
			for _, ch := range f.Changes {
				if ch.Old != "" {
					fmt.Fprintf(&b, "- %s\n", ch.Old)
				}
				if ch.New != "" {
					fmt.Fprintf(&b, "+ %s\n", ch.New)
				}
			}
			o.OpamFiles = append(o.OpamFiles, OpamFileListDiff{PackageVersion: f.Name + "." + f.Version, Diff: b.String()})
		}
		for _, dir := range d.Duniverse.Removed {
			o.Duniverse.Left = append(o.Duniverse.Left, DuniverseEntry{dir.Dir, dir.URL})
		}
		for _, dir := range d.Duniverse.Added {
			o.Duniverse.Right = append(o.Duniverse.Right, DuniverseEntry{dir.Dir, dir.URL})
		}
		for _, ch := range d.Duniverse.Changed {
			o.Duniverse.Changed = append(o.Duniverse.Changed, DuniverseDetail{Name: ch.Dir, URLLeft: ch.Old.URL, URLRight: ch.New.URL})
		}
	}
}

// InputDiff is the part of a comparison that depends only on the two
// builds' input files (build-environment, system-packages, opam-switch),
// so it is computed once per pair of files and cached by their digests.
type InputDiff struct {
	Env          *orb.EnvironmentDiff `json:"environment"`
	EnvError     string               `json:"env_error,omitempty"`
	Packages     *orb.PackagesDiff    `json:"system_packages"`
	PackageError string               `json:"package_error,omitempty"`
	Opam         *orb.SwitchDiff      `json:"opam"`
	OpamError    string               `json:"opam_error,omitempty"`
	// TooLarge lists the files that were not compared because one side is
	// larger than the server parses for a comparison, with both sides'
	// digests and sizes: equal digests would have been reported as the
	// same, so these differ.
	TooLarge []TooLargeInput `json:"too_large,omitempty"`
	// EnvOmitted, PackagesOmitted and OpamOmitted count the differences
	// left out of a long diff (see Truncated).
	EnvOmitted      int `json:"env_omitted,omitempty"`
	PackagesOmitted int `json:"packages_omitted,omitempty"`
	OpamOmitted     int `json:"opam_omitted,omitempty"`
	// Truncated says a diff was cut: each section shows about the first
	// DiffLimit bytes of differences, and values longer than ValueLimit
	// bytes are shortened.
	Truncated  bool `json:"truncated,omitempty"`
	DiffLimit  int  `json:"diff_limit,omitempty"`
	ValueLimit int  `json:"value_limit,omitempty"`

	// transient marks a result that depends on more than the files (a
	// read error, a cancelled request): it is answered but not cached.
	transient bool
}

// InputFile is one side's copy of an input file; nil where the build has
// none.
type InputFile struct {
	SHA256 cas.Digest `json:"sha256"`
	Size   int64      `json:"size"`
}

// TooLargeInput is an input file a comparison did not parse.
type TooLargeInput struct {
	File  string     `json:"file"`
	Left  *InputFile `json:"left"`
	Right *InputFile `json:"right"`
	// Limit is the largest file, in bytes, a comparison parses.
	Limit int64 `json:"limit"`
}

func (s *Server) compare(w http.ResponseWriter, r *http.Request) {
	var builds [2]ledger.BuildEntry
	for i, name := range []string{"left", "right"} {
		id, err := uuid.Parse(mux.Vars(r)[name])
		if err != nil {
			s.fail(w, r, badRequest("%s %q is not a build UUID", name, mux.Vars(r)[name]))
			return
		}
		if builds[i], err = s.cfg.Ledger.Build(id); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	l, rt := builds[0].Event, builds[1].Event
	c := Comparison{Left: compareBuild(builds[0]), Right: compareBuild(builds[1]), SameInputs: ledger.SameInputs(l, rt)}
	c.SameOutput = c.Left.MainArtifact != nil && c.Right.MainArtifact != nil && c.Left.MainArtifact.SHA256 == c.Right.MainArtifact.SHA256

	d, err := s.inputDiff(r.Context(), l.Inputs, rt.Inputs)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c.InputDiff = *d
	c.builderWebDiffs()
	s.render(w, r, "compare", c)
}

// flight is a comparison being computed; requests for the same one wait
// for it instead of computing it again.
type flight struct {
	done chan struct{}
	d    *InputDiff
	err  error
}

// inputDiff returns the comparison of two builds' input files: from the
// cache, from a request computing the same comparison right now, or
// computed in a heavy-read slot (503 when none is free) and cached.
func (s *Server) inputDiff(ctx context.Context, l, r ledger.Inputs) (*InputDiff, error) {
	key := compareKeyOf(l, r)
	for {
		if d, ok := s.limits.compares.Get(key); ok {
			s.limits.compareHits.Add(1)
			return d, nil
		}
		s.limits.flightMu.Lock()
		f, ok := s.limits.flights[key]
		if !ok {
			f = &flight{done: make(chan struct{}), err: errors.New("httpapi: the comparison failed")}
			s.limits.flights[key] = f
		}
		s.limits.flightMu.Unlock()
		if !ok {
			return s.computeDiff(ctx, key, f, l, r)
		}
		if s.limits.onWait != nil {
			s.limits.onWait()
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err == nil && !f.d.transient {
			s.limits.compareHits.Add(1)
			return f.d, nil
		}
		var busy *Error
		if errors.As(f.err, &busy) {
			return nil, f.err
		}
		// The other request failed (or was cancelled while reading):
		// compute it here.
	}
}

// computeDiff computes the comparison f stands for and hands it to the
// requests waiting for f.
func (s *Server) computeDiff(ctx context.Context, key compareKey, f *flight, l, r ledger.Inputs) (*InputDiff, error) {
	defer func() {
		s.limits.flightMu.Lock()
		delete(s.limits.flights, key)
		s.limits.flightMu.Unlock()
		close(f.done)
	}()
	release, err := s.heavyRead()
	if err != nil {
		f.err = err
		return nil, err
	}
	defer release() // also if a parser panics
	if s.limits.onCompute != nil {
		s.limits.onCompute()
	}
	s.limits.diffsRun.Add(1)
	d := s.diffInputs(ctx, l, r)
	if !d.transient {
		s.limits.compares.Add(key, d)
	}
	f.d, f.err = d, nil
	return d, nil
}

// compareKey names a comparison by its input files: left then right
// build-environment, system-packages and opam-switch (zero for none).
type compareKey [6]cas.Digest

func compareKeyOf(l, r ledger.Inputs) compareKey {
	var k compareKey
	for i, d := range []*cas.Digest{l.BuildEnvironment, l.SystemPackages, l.OpamSwitch, r.BuildEnvironment, r.SystemPackages, r.OpamSwitch} {
		if d != nil {
			k[i] = *d
		}
	}
	return k
}

// diffInputs compares the input files section by section; each section's
// parsed files are dropped before the next is read.
func (s *Server) diffInputs(ctx context.Context, l, r ledger.Inputs) *InputDiff {
	d := &InputDiff{}
	// system-packages lines are read by the family the build-environment
	// names, so the environments are parsed when the package lists differ.
	pkgsDiffer := !sameFile(l.SystemPackages, r.SystemPackages)
	var envs [2]orb.Environment
	envs, d.Env, d.EnvError, d.EnvOmitted = diffSection(s, ctx, d, orb.EnvironmentFile, l.BuildEnvironment, r.BuildEnvironment, pkgsDiffer,
		func(_ int, data []byte) (orb.Environment, error) { return orb.ParseEnvironment(data) }, orb.DiffEnvironments, cutEnvironmentDiff)
	_, d.Packages, d.PackageError, d.PackagesOmitted = diffSection(s, ctx, d, orb.PackagesFile, l.SystemPackages, r.SystemPackages, false,
		func(side int, data []byte) (orb.Packages, error) {
			return orb.ParseSystemPackages(data, envs[side].Family())
		},
		orb.DiffPackages, cutPackagesDiff)
	_, d.Opam, d.OpamError, d.OpamOmitted = diffSection(s, ctx, d, orb.SwitchFile, l.OpamSwitch, r.OpamSwitch, false,
		func(_ int, data []byte) (*orb.Switch, error) {
			if data == nil {
				return &orb.Switch{}, nil
			}
			return orb.ParseSwitch(data)
		}, orb.DiffSwitches, cutSwitchDiff)
	if d.EnvOmitted+d.PackagesOmitted+d.OpamOmitted > 0 || d.Truncated {
		d.Truncated, d.DiffLimit, d.ValueLimit = true, maxDiffOutput, maxDiffValue
	}
	return d
}

// sameFile reports whether two builds have the same copy of an input file
// (or neither has one).
func sameFile(a, b *cas.Digest) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// diffSection compares one input file of the two builds. The same file on
// both sides is the same without reading it (it is read once if the caller
// needs the parsed values); a build without the file compares as an empty
// one. It returns the parsed files (zero unless both parsed or needed),
// the diff cut to maxDiffOutput or the reason there is none, and how many
// differences were left out.
func diffSection[T, D any](s *Server, ctx context.Context, out *InputDiff, name string, left, right *cas.Digest, needVals bool,
	parse func(side int, data []byte) (T, error), diff func(a, b T) D, cut func(*D, *budget)) (vals [2]T, _ *D, errMsg string, omitted int) {
	files := [2]*cas.Digest{left, right}
	same := sameFile(left, right)
	if same && !needVals {
		files = [2]*cas.Digest{}
	} else if same {
		files[1] = nil // read once, below
	}
	var readers [2]*cas.Reader
	var sizes [2]int64
	defer func() {
		for _, rd := range readers {
			if rd != nil {
				rd.Close()
			}
		}
	}()
	for i, f := range files {
		if f == nil {
			continue
		}
		rd, err := s.cfg.Ledger.Store().Open(ctx, *f)
		if err != nil {
			out.transient = true
			s.cfg.Logger.Error("compare: opening an input file", "file", name, "sha256", f.String(), "err", err)
			return vals, nil, name + " could not be read; the operator has been told", 0
		}
		readers[i], sizes[i] = rd, rd.Size()
	}
	if sizes[0] > maxDiffInput || sizes[1] > maxDiffInput {
		if same {
			// Too large to parse, but the same file: the diff is empty and
			// only the parsed values are missing.
			var zero [2]T
			for i := range 2 {
				zero[i], _ = parse(i, nil)
			}
			d := diff(zero[0], zero[1])
			return vals, &d, "", 0
		}
		tl := TooLargeInput{File: name, Limit: maxDiffInput}
		for i, f := range files {
			if f != nil {
				p := &InputFile{SHA256: *f, Size: sizes[i]}
				if i == 0 {
					tl.Left = p
				} else {
					tl.Right = p
				}
			}
		}
		out.TooLarge = append(out.TooLarge, tl)
		return vals, nil, fmt.Sprintf("%s is too large to compare here (this server parses up to %d MiB per file): left %s, right %s. "+
			"The two files differ; both are stored in full and can be downloaded from the builds' pages",
			name, maxDiffInput>>20, describeInput(tl.Left), describeInput(tl.Right)), 0
	}
	for i := range 2 {
		if same && i == 1 {
			vals[1] = vals[0]
			break
		}
		var data []byte
		if readers[i] != nil {
			var err error
			data, err = readAllSized(readers[i], sizes[i])
			readers[i].Close()
			readers[i] = nil
			if err != nil {
				out.transient = true
				s.cfg.Logger.Error("compare: reading an input file", "file", name, "sha256", files[i].String(), "err", err)
				return vals, nil, name + " could not be read; the operator has been told", 0
			}
		}
		v, err := parse(i, data)
		if err != nil {
			var zero [2]T
			side := "left"
			if i == 1 {
				side = "right"
			}
			return zero, nil, fmt.Sprintf("%s of the %s build: %v", name, side, err), 0
		}
		vals[i] = v
	}
	d := diff(vals[0], vals[1])
	b := &budget{left: maxDiffOutput}
	cut(&d, b)
	if b.cutValues {
		out.Truncated = true
	}
	return vals, &d, "", b.omitted
}

// readAllSized reads a blob of known size; the final read checks the whole
// blob's digest.
func readAllSized(rd *cas.Reader, size int64) ([]byte, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(rd, data); err != nil {
		return nil, err
	}
	if n, err := rd.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("blob %s is longer than its record says", rd.Digest())
		}
		return nil, err
	}
	return data, nil
}

func describeInput(f *InputFile) string {
	if f == nil {
		return "none"
	}
	return fmt.Sprintf("%d bytes (SHA-256 %s)", f.Size, f.SHA256)
}

// budget keeps a diff to about maxDiffOutput bytes of text: entries are
// kept in order while they fit; the callers count the rest as omitted (a
// difference is one entry, or one change of an opam file).
type budget struct {
	left      int
	omitted   int
	cutValues bool
}

// take reports whether an entry of n bytes fits. Once one does not, none
// after it does, so a cut diff is a prefix of each list.
func (b *budget) take(n int) bool {
	if n > b.left {
		b.left = -1
		return false
	}
	b.left -= n
	return true
}

// value cuts one shown value to maxDiffValue bytes.
func (b *budget) value(s string) string {
	if len(s) <= maxDiffValue {
		return s
	}
	b.cutValues = true
	cut := maxDiffValue
	for cut > 0 && s[cut]&0xc0 == 0x80 { // not inside a UTF-8 sequence
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d more bytes)", len(s)-cut)
}

// entryOverhead is what an entry costs beyond its text (JSON punctuation,
// an HTML table row).
const entryOverhead = 32

// cutList keeps the entries of list that fit in b, after shortening them.
func cutList[T any](b *budget, list []T, shorten func(T) (T, int)) []T {
	out := list[:0]
	for i, x := range list {
		x, n := shorten(x)
		if !b.take(n + entryOverhead) {
			b.omitted += len(list) - i
			return out
		}
		out = append(out, x)
	}
	return out
}

func cutChange(b *budget) func(orb.Change) (orb.Change, int) {
	return func(c orb.Change) (orb.Change, int) {
		c.Name, c.Old, c.New = b.value(c.Name), b.value(c.Old), b.value(c.New)
		return c, len(c.Name) + len(c.Old) + len(c.New)
	}
}

func cutEnvironmentDiff(d *orb.EnvironmentDiff, b *budget) {
	v := func(x orb.Var) (orb.Var, int) {
		x.Name, x.Value = b.value(x.Name), b.value(x.Value)
		return x, len(x.Name) + len(x.Value)
	}
	d.Removed = cutList(b, d.Removed, v)
	d.Added = cutList(b, d.Added, v)
	d.Changed = cutList(b, d.Changed, cutChange(b))
}

func cutPackagesDiff(d *orb.PackagesDiff, b *budget) {
	p := func(x orb.Package) (orb.Package, int) {
		x.Name, x.Version = b.value(x.Name), b.value(x.Version)
		return x, len(x.Name) + len(x.Version)
	}
	d.Removed = cutList(b, d.Removed, p)
	d.Added = cutList(b, d.Added, p)
	d.Changed = cutList(b, d.Changed, cutChange(b))
}

func cutSwitchDiff(d *orb.SwitchDiff, b *budget) {
	pv := func(x orb.PackageVersion) (orb.PackageVersion, int) {
		x.Name, x.Version = b.value(x.Name), b.value(x.Version)
		return x, len(x.Name) + len(x.Version)
	}
	d.Removed = cutList(b, d.Removed, pv)
	d.Added = cutList(b, d.Added, pv)
	d.VersionChanged = cutList(b, d.VersionChanged, cutChange(b))
	// The changes of one opam file share the budget: a file whose changes
	// do not all fit shows those that do.
	files := d.OpamFileChanged[:0]
	for _, f := range d.OpamFileChanged {
		f.Name, f.Version = b.value(f.Name), b.value(f.Version)
		if !b.take(len(f.Name) + len(f.Version) + entryOverhead) {
			b.omitted += len(f.Changes)
			continue
		}
		if f.Changes = cutList(b, f.Changes, cutChange(b)); len(f.Changes) > 0 {
			files = append(files, f)
		}
	}
	d.OpamFileChanged = files
	dir := func(x orb.DuniverseDir) (orb.DuniverseDir, int) {
		x.Dir, x.URL = b.value(x.Dir), b.value(x.URL)
		n := len(x.Dir) + len(x.URL)
		hs := make([]string, 0, len(x.Hashes))
		for _, h := range x.Hashes {
			h = b.value(h)
			hs = append(hs, h)
			n += len(h)
		}
		x.Hashes = hs
		return x, n
	}
	d.Duniverse.Removed = cutList(b, d.Duniverse.Removed, dir)
	d.Duniverse.Added = cutList(b, d.Duniverse.Added, dir)
	d.Duniverse.Changed = cutList(b, d.Duniverse.Changed, func(c orb.DuniverseChange) (orb.DuniverseChange, int) {
		old, n1 := dir(c.Old)
		nw, n2 := dir(c.New)
		c.Dir, c.Old, c.New = b.value(c.Dir), old, nw
		return c, len(c.Dir) + n1 + n2
	})
}
