package httpapi_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/buildledger/buildledger/httpapi"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/builder"
	"github.com/buildledger/buildledger/vmm/solo5"
)

// builder-web's JSON answers (robur-coop/builder-web, lib/views.ml, and the
// clients that read them: populate-local.sh, albatross, mollymawk) as
// shapes: every member builder-web sends must be there with builder-web's
// JSON type; members this ledger adds are allowed. A shape is
//   - a string naming a JSON type: "string", "bool", "int", "object", or a
//     string that must be a "uuid", an RFC 3339 "time" or a SHA-256 "hex";
//     with "|null" it may also be null;
//   - obj: an object with these members ("?name": optional member);
//   - arr: an array of elements of one shape;
//   - dict: an object whose every member has one shape;
//   - orNull: null or the shape.
type (
	obj    map[string]any
	arr    struct{ elem any }
	dict   struct{ elem any }
	orNull struct{ shape any }
)

var (
	bwLatest = obj{"uuid": "uuid", "solo5_manifest": "object|null", "solo5_abi": "object|null"}
	bwJob    = obj{"name": "string", "synopsis": "string|null", "latest": bwLatest}
	// Builds.make_json: the front page and /all-builds.
	bwIndex = obj{"jobs": arr{bwJob}, "jobs_by_section": dict{arr{bwJob}}}
	// Job.make_json: /job/J and /job/J/failed.
	bwJobPage = obj{"builds": arr{obj{"uuid": "uuid",
		"main_binary": orNull{obj{"filename": "string", "sha256": "hex", "size": "int"}}}}}
	// Job_build.make_json: /job/J/build/U.
	bwBuild = obj{"job": "string", "uuid": "uuid", "platform": "string", "start_time": "time", "finish_time": "time",
		"main_binary": "bool", "?solo5_manifest": "object|null", "?solo5_abi": "object|null"}
	// compare_builds_json: /compare/L/R.
	bwSide = obj{"job": "string", "uuid": "uuid", "platform": "string", "start_time": "time", "finish_time": "time",
		"main_binary": "bool", "main_binary_size": "int|null"}
	bwPackage     = obj{"name": "string", "version": "string"}
	bwVersionDiff = obj{"name": "string", "version_left": "string", "version_right": "string"}
	bwListDiff    = obj{"left_packages": arr{bwPackage}, "right_packages": arr{bwPackage}, "different_versions": arr{bwVersionDiff}}
	bwDuniverse   = obj{"name": "string", "value": "string"}
	bwOpamDiff    = obj{
		"opam_diff":     arr{obj{"package_version": "string", "effectively_equal": "bool", "diff": "string"}},
		"version_diff":  arr{bwVersionDiff},
		"only_in_left":  arr{bwPackage},
		"only_in_right": arr{bwPackage},
		"duniverse_diff": obj{"left": arr{bwDuniverse}, "right": arr{bwDuniverse},
			"detailed_diff": arr{obj{"name": "string"}}},
	}
	bwCompare = obj{"left": bwSide, "right": bwSide, "env_diff": bwListDiff, "package_diff": bwListDiff, "opam_diff": bwOpamDiff}
)

// conform checks v (decoded with UseNumber) against shape and returns what
// does not fit; filled records the paths of arrays and dicts that had
// elements, so a test can insist that element shapes were checked.
func conform(path string, v, shape any, filled map[string]bool) []string {
	bad := func(want string) []string { return []string{fmt.Sprintf("%s: want %s, got %#v", path, want, v)} }
	switch sh := shape.(type) {
	case orNull:
		if v == nil {
			return nil
		}
		return conform(path, v, sh.shape, filled)
	case obj:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("an object")
		}
		var errs []string
		for name, s := range sh {
			optional := strings.HasPrefix(name, "?")
			name = strings.TrimPrefix(name, "?")
			mv, ok := m[name]
			if !ok {
				if !optional {
					errs = append(errs, fmt.Sprintf("%s: member %q missing", path, name))
				}
				continue
			}
			errs = append(errs, conform(path+"."+name, mv, s, filled)...)
		}
		return errs
	case arr:
		l, ok := v.([]any)
		if !ok {
			return bad("an array")
		}
		var errs []string
		for _, e := range l {
			filled[path] = true
			errs = append(errs, conform(path+"[]", e, sh.elem, filled)...)
		}
		return errs
	case dict:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("an object")
		}
		var errs []string
		for _, e := range m {
			filled[path] = true
			errs = append(errs, conform(path+"{}", e, sh.elem, filled)...)
		}
		return errs
	case string:
		typ, nullable := strings.CutSuffix(sh, "|null")
		if v == nil {
			if nullable {
				return nil
			}
			return bad(sh)
		}
		s, isString := v.(string)
		switch typ {
		case "object":
			if _, ok := v.(map[string]any); !ok {
				return bad(sh)
			}
		case "bool":
			if _, ok := v.(bool); !ok {
				return bad(sh)
			}
		case "int":
			if n, ok := v.(json.Number); !ok || strings.ContainsAny(n.String(), ".eE") {
				return bad(sh)
			}
		case "string":
			if !isString {
				return bad(sh)
			}
		case "uuid":
			if _, err := uuid.Parse(s); !isString || err != nil || len(s) != 36 {
				return bad(sh)
			}
		case "time":
			if _, err := time.Parse(time.RFC3339, s); !isString || err != nil {
				return bad(sh)
			}
		case "hex":
			if b, err := hex.DecodeString(s); !isString || err != nil || len(b) != 32 {
				return bad(sh)
			}
		default:
			panic("unknown shape " + sh)
		}
		return nil
	}
	panic(fmt.Sprintf("unknown shape %#v", shape))
}

func conformJSON(body string, shape any) ([]string, map[string]bool) {
	d := json.NewDecoder(strings.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return []string{err.Error()}, nil
	}
	filled := map[string]bool{}
	return conform("$", v, shape, filled), filled
}

// checkShape asks path for JSON, as builder-web's clients do, and fails t
// unless the answer has builder-web's shape and the arrays named in
// nonEmpty had elements to check.
func checkShape(t *testing.T, base, path string, shape any, nonEmpty ...string) string {
	t.Helper()
	resp, body := get(t, base+path, "application/json")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%s: %d %s %.300s", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	errs, filled := conformJSON(body, shape)
	for _, e := range errs {
		t.Errorf("%s: not builder-web's shape: %s", path, e)
	}
	for _, p := range nonEmpty {
		if !filled[p] {
			t.Errorf("%s: %s is empty, so its elements were not checked: %.500s", path, p, body)
		}
	}
	return body
}

// TestShapeCheckerFails shows the shape check fails on what builder-web's
// clients would not read: the job list and build page of before (path
// instead of filename, the main binary as an object, latest as an array),
// a missing member and a wrong type.
func TestShapeCheckerFails(t *testing.T) {
	id, sum := uuid.New().String(), strings.Repeat("ab", 32)
	for _, c := range []struct {
		name, body string
		shape      any
	}{
		{"path for filename", `{"builds":[{"uuid":"` + id + `","main_binary":{"path":"bin/x","sha256":"` + sum + `","size":1}}]}`, bwJobPage},
		{"size as string", `{"builds":[{"uuid":"` + id + `","main_binary":{"filename":"x","sha256":"` + sum + `","size":"1"}}]}`, bwJobPage},
		{"main binary object", `{"job":"j","uuid":"` + id + `","platform":"p","start_time":"2026-01-01T00:00:00Z","finish_time":"2026-01-01T00:00:00Z","main_binary":{}}`, bwBuild},
		{"latest array", `{"jobs":[{"name":"j","synopsis":null,"latest":[]}],"jobs_by_section":{}}`, bwIndex},
		{"no jobs_by_section", `{"jobs":[]}`, bwIndex},
		{"time not RFC 3339", `{"job":"j","uuid":"` + id + `","platform":"p","start_time":"2026-01-01 00:00","finish_time":"2026-01-01T00:00:00Z","main_binary":true}`, bwBuild},
	} {
		if errs, _ := conformJSON(c.body, c.shape); len(errs) == 0 {
			t.Errorf("%s: passed the shape check", c.name)
		}
	}
	ok := `{"builds":[{"uuid":"` + id + `","main_binary":null,"extra":1},{"uuid":"` + id + `","main_binary":{"filename":"x","sha256":"` + sum + `","size":1,"path":"bin/x"}}],"more":[]}`
	if errs, _ := conformJSON(ok, bwJobPage); len(errs) != 0 {
		t.Errorf("extra members are refused: %v", errs)
	}
}

// solo5Binary returns a small ELF file with the solo5 notes of a
// unikernel needing devs, built for target (1 hvt, 2 spt): a manifest note
// written by the VMM's writer and an ABI note (solo5's abi1_note).
func solo5Binary(t *testing.T, target uint32, devs ...solo5.Device) []byte {
	t.Helper()
	mft, err := solo5.AppendManifestNote(nil, &solo5.Manifest{Version: 1, Devices: devs})
	if err != nil {
		t.Fatal(err)
	}
	abi := binary.LittleEndian.AppendUint32(nil, 6)         // namesz: "Solo5\0"
	abi = binary.LittleEndian.AppendUint32(abi, 16)         // descsz
	abi = binary.LittleEndian.AppendUint32(abi, 0x31494241) // "ABI1"
	abi = append(abi, "Solo5\x00\x00\x00"...)
	for _, v := range []uint32{target, 2, 0, 0} {
		abi = binary.LittleEndian.AppendUint32(abi, v)
	}
	strtab := "\x00.shstrtab\x00.note.solo5.manifest\x00.note.solo5.abi\x00"
	var body bytes.Buffer
	body.Write(make([]byte, 64)) // the ELF header, written last
	place := func(b []byte) uint64 {
		for body.Len()%8 != 0 {
			body.WriteByte(0)
		}
		off := uint64(body.Len())
		body.Write(b)
		return off
	}
	mftOff, abiOff, strOff := place(mft), place(abi), place([]byte(strtab))
	shoff := place(nil)
	for _, sh := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(strtab)), Addralign: 1},
		{Name: uint32(strings.Index(strtab, ".note.solo5.manifest")), Type: uint32(elf.SHT_NOTE), Flags: uint64(elf.SHF_ALLOC), Off: mftOff, Size: uint64(len(mft)), Addralign: 8},
		{Name: uint32(strings.Index(strtab, ".note.solo5.abi")), Type: uint32(elf.SHT_NOTE), Flags: uint64(elf.SHF_ALLOC), Off: abiOff, Size: uint64(len(abi)), Addralign: 4},
	} {
		binary.Write(&body, binary.LittleEndian, sh)
	}
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shoff, Ehsize: 64, Shentsize: 64, Shnum: 4, Shstrndx: 1}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	var hb bytes.Buffer
	binary.Write(&hb, binary.LittleEndian, h)
	out := body.Bytes()
	copy(out, hb.Bytes())
	return out
}

// switchVariant is the real opam switch of ledger/orb/testdata changed so
// that every list of builder-web's opam_diff has an element: a package
// removed and one added, a version changed, an opam file changed (a new
// commit) and the duniverse changed (a hash), shrunk (ocaml-git) and grown
// (ocaml-dns).
func switchVariant(t *testing.T) (string, string) {
	t.Helper()
	b, err := os.ReadFile("../ledger/orb/testdata/unipi-full.opam-switch")
	if err != nil {
		t.Fatal(err)
	}
	a := string(b)
	r := strings.NewReplacer(
		`  "cmdliner.1.3.0"`+"\n", `  "fmt.0.9.0"`+"\n",
		`"mirage.4.8.1"`, `"mirage.4.8.2"`,
		`unipi.git#6074dce1118813830d71939b53182e4e349d9872`, `unipi.git#9e7c6be9ff907a76cc0b57aaf89691052be1ceb3`,
		`f1f836f99eee3692f09e2e8c662248b483b7ffc050fec94dbca3a0aac36098b2`, `b860dcd6c8a1f8b46287cced9041dff02cee737443e210471948d33296c87009`,
		`"https://github.com/mirage/ocaml-git/releases/download/3.17.0/git-3.17.0.tbz"`, `"https://github.com/mirage/ocaml-dns/releases/download/v9.1.0/dns-9.1.0.tbz"`,
		`"ocaml-git"`, `"ocaml-dns"`,
	)
	v := r.Replace(a)
	if v == a {
		t.Fatal("the opam switch sample changed: the replacements no longer apply")
	}
	return a, v
}

// TestBuilderWebJSON checks each JSON answer builder-web's clients read
// against builder-web's shape, with data that fills every list.
func TestBuilderWebJSON(t *testing.T) {
	l, _, srv := readServer(t, httpapi.Config{})
	t0 := time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)
	ok, failed := ledger.Result{Kind: ledger.ResultExited}, ledger.Result{Kind: ledger.ResultExited, Code: 1}
	swA, swB := switchVariant(t)
	a := storedBuild(t, l, "unipi", "debian-12", map[string]string{
		"bin/unipi.hvt": "A", "opam-switch": swA,
		"build-environment": "OS=linux\nSOURCE_DATE_EPOCH=1\nGONE=x\n", "system-packages": "gcc=12.2\nmake=4.3\nold-lib=1\n"}, t0, ok)
	unikernel := solo5Binary(t, 1, solo5.Device{Name: "service", Type: solo5.NetBasic}, solo5.Device{Name: "storage", Type: solo5.BlockBasic})
	b := storedBuild(t, l, "unipi", "debian-12", map[string]string{
		"bin/unipi.hvt": string(unikernel), "opam-switch": swB,
		"build-environment": "OS=linux\nSOURCE_DATE_EPOCH=2\nNEW=y\n", "system-packages": "gcc=12.3\nmake=4.3\nnew-lib=2\n"}, t0.Add(time.Hour), ok)
	bad := storedBuild(t, l, "unipi", "freebsd-14", map[string]string{"build-environment": "OS=freebsd\n"}, t0.Add(2*time.Hour), failed)
	storedBuild(t, l, "never-built", "debian-12", map[string]string{"build-environment": "OS=linux\n"}, t0, failed)

	for _, p := range []string{"/", "/all-builds"} {
		body := checkShape(t, srv.URL, p, bwIndex, "$.jobs", "$.jobs_by_section")
		var v struct {
			Jobs []struct {
				Name   string `json:"name"`
				Latest struct {
					UUID uuid.UUID `json:"uuid"`
				} `json:"latest"`
			} `json:"jobs"`
			BySection map[string][]json.RawMessage `json:"jobs_by_section"`
		}
		json.Unmarshal([]byte(body), &v)
		// builder-web lists jobs with a successful build, with the newest.
		if len(v.Jobs) != 1 || v.Jobs[0].Name != "unipi" || v.Jobs[0].Latest.UUID != b.UUID || len(v.BySection["Uncategorized"]) != 1 {
			t.Errorf("%s: %s", p, body)
		}
		// What a deployer reads (mollymawk: solo5_abi.target, the devices).
		if !strings.Contains(body, `"solo5_abi":{"target":"hvt","type":"solo5.abi","version":2}`) ||
			!strings.Contains(body, `"solo5_manifest":{"type":"solo5.manifest","version":1,"devices":[{"name":"service","type":"NET_BASIC"},{"name":"storage","type":"BLOCK_BASIC"}]}`) {
			t.Errorf("%s: solo5 notes of the latest build: %s", p, body)
		}
	}
	// The build page shows them to people.
	if _, page := get(t, srv.URL+"/job/unipi/build/"+b.UUID.String(), "text/html"); !strings.Contains(page, "solo5 hvt (ABI version 2); devices: service (NET_BASIC), storage (BLOCK_BASIC)") {
		t.Errorf("build page lacks the solo5 target and devices:\n%s", page)
	}
	body := checkShape(t, srv.URL, "/job/unipi", bwJobPage, "$.builds")
	if !strings.Contains(body, `"filename":"unipi.hvt"`) {
		t.Errorf("job page: main binary file name missing: %s", body)
	}
	body = checkShape(t, srv.URL, "/job/unipi/failed", bwJobPage, "$.builds")
	if !strings.Contains(body, `"main_binary":null`) || !strings.Contains(body, bad.UUID.String()) {
		t.Errorf("failed builds: %s", body)
	}
	for _, c := range []struct {
		b    *ledger.BuildRecorded
		main bool
	}{{a, true}, {bad, false}} {
		body = checkShape(t, srv.URL, "/job/unipi/build/"+c.b.UUID.String(), bwBuild)
		if !strings.Contains(body, fmt.Sprintf(`"main_binary":%t`, c.main)) {
			t.Errorf("build page of %s: main_binary is not %t: %s", c.b.UUID, c.main, body)
		}
	}
	// A unikernel's build page has its notes; another binary has none.
	if body = checkShape(t, srv.URL, "/job/unipi/build/"+b.UUID.String(), bwBuild); !strings.Contains(body, `"solo5_abi":{"target":"hvt"`) ||
		!strings.Contains(body, `"solo5_manifest":{"type":"solo5.manifest"`) {
		t.Errorf("unikernel build page: %.1000s", body)
	}
	if body = checkShape(t, srv.URL, "/job/unipi/build/"+a.UUID.String(), bwBuild); strings.Contains(body, "solo5") {
		t.Errorf("build page of a binary without notes: %.1000s", body)
	}
	body = checkShape(t, srv.URL, "/compare/"+a.UUID.String()+"/"+b.UUID.String(), bwCompare,
		"$.env_diff.left_packages", "$.env_diff.right_packages", "$.env_diff.different_versions",
		"$.package_diff.left_packages", "$.package_diff.right_packages", "$.package_diff.different_versions",
		"$.opam_diff.opam_diff", "$.opam_diff.version_diff", "$.opam_diff.only_in_left", "$.opam_diff.only_in_right",
		"$.opam_diff.duniverse_diff.left", "$.opam_diff.duniverse_diff.right", "$.opam_diff.duniverse_diff.detailed_diff")
	for _, want := range []string{`{"name":"GONE","version":"x"}`, `{"name":"SOURCE_DATE_EPOCH","version_left":"1","version_right":"2"}`,
		`{"name":"gcc","version_left":"12.2","version_right":"12.3"}`, `{"name":"mirage","version_left":"4.8.1","version_right":"4.8.2"}`,
		`"only_in_left":[{"name":"cmdliner","version":"1.3.0"}]`, `"main_binary_size":1`} {
		if !strings.Contains(body, want) {
			t.Errorf("compare lacks %s: %.2000s", want, body)
		}
	}
	body = checkShape(t, srv.URL, "/compare/"+a.UUID.String()+"/"+bad.UUID.String(), bwCompare)
	if !strings.Contains(body, `"main_binary":false,"main_binary_size":null`) {
		t.Errorf("compare with a failed build: %.1000s", body)
	}
}

// TestBuilderWebRoutes: /robots.txt, /all-builds paged, and the trailing
// slash forms redirected as builder-web does (301 to the path without).
func TestBuilderWebRoutes(t *testing.T) {
	l, _, srv := readServer(t, httpapi.Config{})
	t0 := time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)
	ok := ledger.Result{Kind: ledger.ResultExited}
	b := storedBuild(t, l, "alpha", "debian-12", map[string]string{"bin/alpha": "a"}, t0, ok)
	storedBuild(t, l, "beta", "debian-12", map[string]string{"bin/beta": "b"}, t0, ok)

	resp, body := get(t, srv.URL+"/robots.txt", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(body, "User-agent: *") || !strings.Contains(body, "Disallow: /compare/") || !strings.Contains(body, "/exec") {
		t.Errorf("robots.txt: %d %q", resp.StatusCode, body)
	}

	_, body = get(t, srv.URL+"/all-builds?count=1", "application/json")
	var page struct {
		Jobs []struct{ Name string } `json:"jobs"`
		Next string                  `json:"next"`
	}
	if json.Unmarshal([]byte(body), &page) != nil || len(page.Jobs) != 1 || page.Jobs[0].Name != "alpha" || page.Next == "" {
		t.Fatalf("all-builds page 1: %s", body)
	}
	_, body = get(t, srv.URL+page.Next, "application/json")
	page.Next = ""
	if json.Unmarshal([]byte(body), &page) != nil || len(page.Jobs) != 1 || page.Jobs[0].Name != "beta" || page.Next != "" {
		t.Fatalf("all-builds page 2: %s", body)
	}
	if resp, body := get(t, srv.URL+"/all-builds", ""); resp.StatusCode != 200 || !strings.Contains(body, `href="/job/beta"`) {
		t.Errorf("all-builds html: %d", resp.StatusCode)
	}

	build := "/job/alpha/build/" + b.UUID.String()
	for from, to := range map[string]string{
		"/job/alpha/":              "/job/alpha",
		"/job/alpha/failed/":       "/job/alpha/failed",
		"/job/alpha/?platform=x":   "/job/alpha?platform=x",
		build + "/":                build,
		build + "/console/":        build + "/console",
		"/job/alpha/build/latest/": "/job/alpha/build/latest",
		"/all-builds/":             "/all-builds",
		"/compare/a/b/":            "/compare/a/b",
	} {
		resp, _ := get(t, srv.URL+from, "")
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != to {
			t.Errorf("GET %s: %d to %q, want 301 to %q", from, resp.StatusCode, resp.Header.Get("Location"), to)
		}
	}
	// Followed, the slash forms answer what builder-web's do.
	if resp, err := http.Get(srv.URL + build + "/"); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET %s/ followed: %v %v", build, resp, err)
	} else {
		resp.Body.Close()
	}
	// Never a redirect to another host (the router itself sends "//x/" to
	// "/x/"), nor for a POST.
	for _, p := range []string{"//evil.example/", "///evil.example/", "/%2Fevil.example/", "/%5Cevil.example/", "/\\evil.example/"} {
		resp, _ := get(t, srv.URL+p, "")
		if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") || strings.Contains(loc, "://") {
			t.Errorf("GET %s: %d to %q", p, resp.StatusCode, loc)
		}
	}
	if resp, body := post(t, srv.URL+"/job/alpha/", "", "", nil, nil); resp.StatusCode == http.StatusMovedPermanently {
		t.Errorf("POST with a slash redirected: %d %s", resp.StatusCode, body)
	}
}

// TestMirrorLikePopulateLocal mirrors one ledger into another exactly as
// builder-web's populate-local.sh does with curl: list the jobs (GET /,
// Accept: application/json), list each job's builds (GET /job/J), fetch
// each build's /exec and POST it to the second ledger's /upload with
// curl --data-binary's Content-Type and the credentials in the URL. Every
// exec the mirror then serves is the source's byte for byte.
func TestMirrorLikePopulateLocal(t *testing.T) {
	src, srcSrv := uploadServer(t, 1<<20)
	_, dstSrv := uploadServer(t, 1<<20)
	var want []uuid.UUID
	for i, job := range []string{"hello", "other", "hello", "third", "other"} {
		ex := sampleExec(job)
		ex.Started = ex.Started.Add(time.Duration(i) * time.Hour)
		ex.Finished = ex.Started.Add(13 * time.Second)
		ex.Output[0].Data = append(ex.Output[0].Data, byte(i))
		if i == 3 {
			ex.Result = builder.Result{Kind: builder.ResultSignalled, Code: 9}
		}
		der, err := ex.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if resp, body := post(t, srcSrv.URL+"/upload", "farm", "farm-password", der, nil); resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload to the source: %d %s", resp.StatusCode, body)
		}
		if i != 3 {
			want = append(want, ex.UUID)
		}
	}
	if src.Size() == 0 {
		t.Fatal("nothing recorded")
	}

	// curl_json: curl --silent --fail --location --header "Accept: application/json".
	curlJSON := func(u string, v any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", u, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
	}
	fetch := func(u string) []byte {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
		}
		return b
	}
	dst, _ := url.Parse(dstSrv.URL)
	dst.User = url.UserPassword("farm", "farm-password") // http://user:pass@host, as local_instance
	var jobs struct {
		Jobs []struct {
			Name string `json:"name"`
		} `json:"jobs"`
	}
	curlJSON(srcSrv.URL+"/", &jobs)
	var mirrored []uuid.UUID
	exec := map[uuid.UUID][]byte{}
	jobOf := map[uuid.UUID]string{}
	for _, j := range jobs.Jobs {
		var builds struct {
			Builds []struct {
				UUID uuid.UUID `json:"uuid"`
			} `json:"builds"`
		}
		curlJSON(srcSrv.URL+"/job/"+j.Name, &builds)
		for _, b := range builds.Builds {
			e := fetch(srcSrv.URL + "/job/" + j.Name + "/build/" + b.UUID.String() + "/exec")
			// curl --data-binary "@file" URL
			req, _ := http.NewRequest(http.MethodPost, dst.String()+"/upload", bytes.NewReader(e))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("User-Agent", "curl/8.5.0")
			req.Header.Set("Accept", "*/*")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("upload of %s to the mirror: %d %s", b.UUID, resp.StatusCode, body)
			}
			mirrored = append(mirrored, b.UUID)
			exec[b.UUID], jobOf[b.UUID] = e, j.Name
		}
	}
	sortUUIDs := func(l []uuid.UUID) {
		slices.SortFunc(l, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	}
	sortUUIDs(want)
	sortUUIDs(mirrored)
	if !slices.Equal(want, mirrored) {
		t.Fatalf("mirrored %v, want every successful build %v", mirrored, want)
	}
	for id, e := range exec {
		got := fetch(dstSrv.URL + "/job/" + jobOf[id] + "/build/" + id.String() + "/exec")
		if !bytes.Equal(got, e) {
			t.Errorf("exec of %s: the mirror's %d bytes differ from the source's %d", id, len(got), len(e))
		}
	}
}

// TestSolo5NotesBounded: a binary whose ELF headers claim that the whole
// 48 MiB file is the section name table (an upload made to exhaust the
// server) has no notes, and looking for them allocates a bounded amount,
// not what the headers claim.
func TestSolo5NotesBounded(t *testing.T) {
	l, _, srv := readServer(t, httpapi.Config{})
	bin := solo5Binary(t, 1, solo5.Device{Name: "service", Type: solo5.NetBasic})
	// .shstrtab made to cover a 48 MiB file from its start.
	bin = append(bin, make([]byte, 48<<20)...)
	shoff := binary.LittleEndian.Uint64(bin[40:])
	binary.LittleEndian.PutUint64(bin[shoff+64+24:], 0)
	binary.LittleEndian.PutUint64(bin[shoff+64+32:], uint64(len(bin)))
	b := storedBuild(t, l, "crafted", "debian-12", map[string]string{"bin/crafted.hvt": string(bin)}, time.Now(), ledger.Result{Kind: ledger.ResultExited})
	var body string
	alloc := allocatedDuring(func() { body = checkShape(t, srv.URL, "/job/crafted/build/"+b.UUID.String(), bwBuild) })
	if strings.Contains(body, "solo5") {
		t.Errorf("notes read from a crafted binary: %.500s", body)
	}
	if alloc > 32<<20 {
		t.Errorf("reading the notes of a crafted binary allocated %d MiB", alloc>>20)
	}
	checkShape(t, srv.URL, "/", bwIndex, "$.jobs")
}
