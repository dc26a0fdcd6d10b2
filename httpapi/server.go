package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/buildledger/buildledger/cas"
	"github.com/buildledger/buildledger/httpapi/auth"
	"github.com/buildledger/buildledger/internal/diskspace"
	"github.com/buildledger/buildledger/ledger"
	"github.com/buildledger/buildledger/ledger/attlog"
	"github.com/buildledger/buildledger/ledger/witnessing"
	"github.com/buildledger/buildledger/pkgrepo/publish"
)

// Config configures a Server. Ledger and VKey are required.
type Config struct {
	Ledger *ledger.Ledger
	// Witnessed, if set, returns the newest checkpoint witnesses cosigned
	// (package ledger/witnessing): /checkpoint serves it, with its
	// cosignatures, while it is the current one.
	Witnessed func() witnessing.Cosigned
	// WitnessedQuorum, if set, returns the newest checkpoint with a
	// quorum of cosignatures: /checkpoint/witnessed serves it.
	WitnessedQuorum func() witnessing.Cosigned
	// AttestationLog, if set, is the ledger's Rekor v2 style attestation
	// log: bundles then carry an entry with its inclusion proof, and
	// /trusted_root.json and /attestation-log/checkpoint are served.
	AttestationLog *attlog.Log
	// Packages, if set, publishes the Debian package repositories under
	// /apt (see aptroutes.go).
	Packages *publish.Publisher
	// VKey is the log's checkpoint verifier key (signed-note form).
	VKey string
	// Users authenticates uploads; nil refuses every upload.
	Users *auth.Store
	// MaxBody bounds request bodies (uploads). Default 512 MiB.
	MaxBody int64
	// Logger receives one line per failed request (never request bodies
	// or credentials). Default: slog.Default().
	Logger *slog.Logger
	// Primary, for a read replica, is its primary's URL: every write is
	// refused with a message naming it.
	Primary string
	// MaxHeavyReads bounds the requests doing work that grows with stored
	// data (comparisons) running at once; more are answered 503 with
	// Retry-After. Default 4.
	MaxHeavyReads int
	// ReadIdle and WriteIdle drop a connection whose request body stops
	// arriving, or whose client stops reading the response, for that long;
	// every read and write moves the deadline, so transfers of any size
	// complete while they keep moving. Default one minute each.
	ReadIdle, WriteIdle time.Duration
	// MaxStreams bounds the downloads of files of 1 MiB or more being sent
	// at once (each holds about 1.4 MiB while it is sent); more are
	// answered 503 with Retry-After. Default 256.
	MaxStreams int
	// MaxUploads bounds the uploads (POST /upload and the manual upload)
	// receiving their bodies at once; more are answered 503 with
	// Retry-After. Default 4.
	MaxUploads int
	// Logins limits uploader logins (see auth.Guard); zero: its defaults.
	Logins auth.Limits
	// ClientIPHeader, if set, names a header (X-Forwarded-For, X-Real-IP)
	// that the reverse proxy in front of the server sets: the client
	// address for login limits and the access log is its last address.
	// Unset, the connection's peer address is used; never set it without
	// such a proxy, since clients can send the header themselves.
	ClientIPHeader string
	// AccessLog, if set, receives one line per request (see ServeHTTP).
	AccessLog *slog.Logger
	// Replica, for a read replica, reports its progress to /readyz and
	// /metrics.
	Replica Follower
	// MaxReplicaLag is how many entries a replica may be behind its
	// primary and still be ready (/readyz). Default 1024.
	MaxReplicaLag uint64
	// CheckSpace, if set, is asked before every write request (any method
	// but GET and HEAD): an error wrapping diskspace.ErrFull answers 507
	// Insufficient Storage with Retry-After before the body is read; reads
	// are served as ever.
	CheckSpace func() error
}

// Server is the ledger's HTTP interface. It implements http.Handler.
type Server struct {
	cfg       Config
	cpJSON    atomic.Pointer[encodedCheckpoint] // see checkpointJSON
	router    *mux.Router
	verifiers sync.Map // cas.Digest → keyEntry
	limits    limits
	uploads   uploadSlots
	keyList   atomic.Pointer[keyListCache]

	logins  *auth.Guard // nil without Users
	metrics *metrics
	vizzes  *vizCache
	pages   *lru.Cache[string, []byte] // see pagecache.go
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Ledger == nil || cfg.VKey == "" {
		return nil, errors.New("httpapi: Config needs Ledger and VKey")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 512 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxReplicaLag == 0 {
		cfg.MaxReplicaLag = 1024
	}
	s := &Server{cfg: cfg, router: mux.NewRouter(), vizzes: newVizCache(), pages: newPageCache()}
	if err := s.initLimits(); err != nil {
		return nil, err
	}
	if cfg.Users != nil {
		s.logins = auth.NewGuard(cfg.Users, cfg.Logins)
	}
	s.metrics = newMetrics(s)
	s.routes()
	return s, nil
}

// serve routes r (ServeHTTP, in middleware.go, accounts for it).
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	w = s.idleDeadlines(w, r)
	if s.cfg.Primary != "" && r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.fail(w, r, &Error{Status: http.StatusForbidden, Msg: "this server is a read replica of " + s.cfg.Primary + "; send uploads, attestations and key changes there"})
		return
	}
	if s.cfg.CheckSpace != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := s.cfg.CheckSpace(); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.router.ServeHTTP(w, r)
}

func (s *Server) routes() {
	r := s.router
	r.StrictSlash(false)
	// mux tries routes in order: the reverse lookup, the hottest, first.
	r.HandleFunc("/hash", s.hash).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/checkpoint", s.checkpoint).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/checkpoint/witnessed", s.witnessedCheckpoint).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/log/key", s.logKey).Methods(http.MethodGet, http.MethodHead)
	events := func() tileSource { return eventLog{s.cfg.Ledger} }
	attestations := func() tileSource {
		if s.cfg.AttestationLog == nil {
			return nil
		}
		return s.cfg.AttestationLog
	}
	r.HandleFunc("/tile/entries/{n:.+}", s.entryBundle(events)).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/tile/{level:[0-9]+}/{n:.+}", s.tile(events)).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/attestation-log/tile/entries/{n:.+}", s.entryBundle(attestations)).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/attestation-log/tile/{level:[0-9]+}/{n:.+}", s.tile(attestations)).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/event/{index:[0-9]+}", s.event).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/proof/inclusion", s.inclusionProof).Methods(http.MethodGet)
	r.HandleFunc("/proof/consistency", s.consistencyProof).Methods(http.MethodGet)
	r.HandleFunc("/blob/{sha256}", s.blob).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/blobs", s.blobs).Methods(http.MethodGet)
	r.HandleFunc("/job/{job}/platform/{platform}/upload", s.manualUpload).Methods(http.MethodPost)
	r.HandleFunc("/upload", s.upload).Methods(http.MethodPost)
	r.HandleFunc("/attestations", s.submitAttestation).Methods(http.MethodPost)
	r.HandleFunc("/keys/{name}", s.addKey).Methods(http.MethodPost)
	r.HandleFunc("/keys/{name}/revoke", s.revokeKey).Methods(http.MethodPost)
	get := func(p string, h http.HandlerFunc) { r.HandleFunc(p, h).Methods(http.MethodGet, http.MethodHead) }
	get("/", s.index)
	get("/all-builds", s.index)
	get("/robots.txt", s.robots)
	get("/static/{name}", s.static)
	get("/log", s.logView)
	get("/failed-builds", s.failedBuilds)
	get("/job/{job}", s.job(false))
	get("/job/{job}/failed", s.job(true))
	get("/job/{job}/build/latest", s.latest)
	get("/job/{job}/build/latest/{rest:.+}", s.latest)
	get("/job/{job}/build/{uuid}", s.build)
	get("/job/{job}/build/{uuid}/main-binary", s.mainBinary)
	get("/job/{job}/build/{uuid}/console", s.console)
	get("/job/{job}/build/{uuid}/script", s.script)
	get("/job/{job}/build/{uuid}/f/{path:.+}", s.artifact)
	get("/job/{job}/build/{uuid}/exec", s.exportExec)
	get("/job/{job}/build/{uuid}/viztreemap", s.vizPage(vizTreemap))
	get("/job/{job}/build/{uuid}/vizdependencies", s.vizPage(vizDeps))
	get("/compare/{left}/{right}", s.compare)
	get("/attestations", s.listAttestations)
	get("/attestations/{sha256}", s.envelope)
	get("/trusted_root.json", s.trustedRoot)
	get("/attestation-log/checkpoint", s.attestationCheckpoint)
	get("/keys", s.listKeys)
	get("/build/{uuid}", s.buildByUUID)
	get("/metrics", s.serveMetrics)
	get("/healthz", s.healthz)
	get("/readyz", s.readyz)
	s.aptRoutes(get)
	r.Use(routeLabel)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if to, ok := withoutTrailingSlash(r); ok {
			// builder-web links and redirects /job/J/ to /job/J (301).
			http.Redirect(w, r, to, http.StatusMovedPermanently)
			return
		}
		s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: "no such page: " + r.URL.Path})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, &Error{Status: http.StatusMethodNotAllowed, Msg: r.Method + " is not allowed on " + r.URL.Path})
	})
}

// withoutTrailingSlash returns where a GET or HEAD of an unrouted path
// ending in "/" (/job/J/, /job/J/build/U/) is sent: the path without the
// slashes, with the query. A path that would then start with "//" or "/\"
// is not redirected, since a browser reads that as another host.
func withoutTrailingSlash(r *http.Request) (string, bool) {
	p := r.URL.EscapedPath()
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || len(p) < 2 || !strings.HasSuffix(p, "/") {
		return "", false
	}
	p = strings.TrimRight(p, "/")
	if p == "" || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "", false
	}
	if r.URL.RawQuery != "" {
		p += "?" + r.URL.RawQuery
	}
	return p, true
}

// statusClientClosed is the status recorded for a request whose client
// closed it before the answer.
const statusClientClosed = 499

// Error is an error with the status and message a client should see.
type Error struct {
	Status int
	Msg    string
	Err    error // the cause, logged, never sent
	// RetryAfter, if positive, is sent as Retry-After (whole seconds): the
	// answer to pushback (503 busy, 429 too many attempts, 507 disk full).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

func badRequest(format string, args ...any) error {
	return &Error{Status: http.StatusBadRequest, Msg: sprintf(format, args...)}
}

// errorAnswer is the one table from errors to HTTP statuses and the message
// shown. Messages of errors meant for submitters (not found, conflicts,
// invalid events) are passed on; anything else is an internal error whose
// text stays in the log.
//
// The third result is the Retry-After the answer carries (0 for none).
func errorAnswer(err error) (int, string, time.Duration) {
	var he *Error
	switch {
	case errors.As(err, &he):
		return he.Status, he.Msg, he.RetryAfter
	case errors.Is(err, ledger.ErrBackend):
		return http.StatusServiceUnavailable, "the transparency log backend has not confirmed the entry; it may still be recorded, " +
			"because the ledger sends it again before anything else. Retry in a few seconds: an exec record (POST /upload) or an attestation " +
			"sent again is answered with the recorded entry if it was; a manual upload gets a new UUID, so look for the build first", 5 * time.Second
	case errors.Is(err, ledger.ErrClosed):
		return http.StatusServiceUnavailable, "the ledger is shutting down; retry shortly", 10 * time.Second
	case errors.Is(err, diskspace.ErrReadOnly):
		// Waiting does not help here: no Retry-After.
		return http.StatusInsufficientStorage, "the ledger's disk is full and the server started read-only: nothing was recorded; reads still work. " +
			"Writes return once the operator frees space and restarts the server", 0
	case errors.Is(err, diskspace.ErrFull):
		return http.StatusInsufficientStorage, "the ledger's disk is full: nothing was recorded; reads still work. Retry later", time.Minute
	}
	status, msg := plainErrorStatus(err)
	return status, msg, 0
}

func plainErrorStatus(err error) (int, string) {
	var inv *ledger.InvalidEventError
	var integ *cas.IntegrityError
	switch {
	case errors.As(err, &inv):
		return http.StatusBadRequest, err.Error()
	case errors.As(err, &integ):
		return http.StatusInternalServerError, "stored data failed verification; the operator has been told"
	case errors.Is(err, fs.ErrNotExist):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, ledger.ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, ledger.ErrRejected):
		return http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, auth.ErrUnauthorized):
		return http.StatusUnauthorized, "wrong user name or password"
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, cas.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, ledger.ErrReadOnly):
		return http.StatusForbidden, "this server is a read replica; send writes to its primary"
	case errors.Is(err, ledger.ErrUnavailable):
		return http.StatusServiceUnavailable, "the ledger is not accepting writes after a storage failure; the operator has been told"
	}
	return http.StatusInternalServerError, "internal error"
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && errors.Is(err, r.Context().Err()) {
		// The client went away: nothing failed on this side, and nobody
		// reads the answer. 499 (as nginx counts it) keeps it apart from
		// server errors in the access log and on /metrics.
		w.WriteHeader(statusClientClosed)
		return
	}
	status, msg, retry := errorAnswer(err)
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	}
	var deliberate *Error
	busy := errors.As(err, &deliberate) && deliberate.Status == http.StatusServiceUnavailable && deliberate.RetryAfter > 0
	if status >= 500 && !errors.Is(err, auth.ErrBusy) && !busy { // busy logins are counted on /metrics; "busy, retry" answers are not failures
		s.cfg.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="buildledger", charset="UTF-8"`)
	}
	if wantsJSON(r) {
		writeJSON(w, status, map[string]any{"error": msg, "status": status})
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if wantsHTML(r) {
		var buf bytes.Buffer
		if templates.ExecuteTemplate(&buf, "error.html", map[string]any{"Status": status, "Text": http.StatusText(status), "Msg": msg}) == nil {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(status)
			w.Write(buf.Bytes())
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(msg + "\n"))
}

// wantsHTML reports whether the client (a browser) asked for HTML.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// wantsJSON reports whether the client asked for JSON (Accept:
// application/json); HTML (or plain text) is the default, as in builder-web.
func wantsJSON(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(part, ";")
		if strings.TrimSpace(mt) == "application/json" {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
