package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/buildledger/buildledger/httpapi/auth"
)

// ServeHTTP answers r and accounts for it: the request counter and
// duration histogram of /metrics, labelled with the route's template (never
// the raw path, whose values are unbounded), and, with Config.AccessLog,
// one access log line. TestMetrics and TestAccessLog.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := &requestInfo{}
	rec := &recorder{ResponseWriter: w}
	r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
	defer func() {
		status := rec.status
		if status == 0 {
			// A handler that wrote nothing, or panicked before writing
			// (net/http then closes the connection).
			status = http.StatusOK
			if p := recover(); p != nil {
				status = http.StatusInternalServerError
				defer panic(p)
			}
		}
		route := info.route
		if route == "" {
			route = "unmatched"
		}
		d := time.Since(start)
		s.metrics.observe(route, methodLabel(r.Method), status, d)
		if log := s.cfg.AccessLog; log != nil {
			// The path names jobs, builds and digests; the query string and
			// headers (credentials) are left out.
			log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.String("path", r.URL.EscapedPath()),
				slog.Int("status", status),
				slog.Int64("bytes", rec.bytes),
				slog.Duration("duration", d),
				slog.String("remote", s.clientAddr(r).String()))
		}
	}()
	s.serve(rec, r)
}

type requestInfoKey struct{}

// requestInfo is filled in while a request is routed.
type requestInfo struct {
	route string // the matched route's path template
}

// routeLabel is router middleware: it notes the matched route's template
// for ServeHTTP.
func routeLabel(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
			if rt := mux.CurrentRoute(r); rt != nil {
				if tpl, err := rt.GetPathTemplate(); err == nil {
					info.route = tpl
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// recorder notes the status and body size of a response. Unwrap lets
// http.ResponseController reach the connection (deadlines, flushing).
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// clientAddr is the address a request is accounted to (login limits, the
// access log): the connection's peer, or, with Config.ClientIPHeader, the
// last address in that header — the one the trusted proxy in front of the
// server wrote. An unparsable header falls back to the peer.
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	if h := s.cfg.ClientIPHeader; h != "" {
		if vals := r.Header.Values(h); len(vals) > 0 {
			last := vals[len(vals)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				return a.Unmap()
			}
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(r.RemoteAddr)
	return a.Unmap()
}

// authenticate checks an uploader's credentials through the login guard
// (see auth.Guard): 429 with Retry-After when the client's network (or
// the user name) has failed too often, 503 with Retry-After when every hashing slot stayed
// busy. TestLoginFlood.
func (s *Server) authenticate(r *http.Request, name, password string) (auth.User, error) {
	u, err := s.logins.Login(r.Context(), s.clientAddr(r), name, password)
	var pe *auth.PushbackError
	if errors.As(err, &pe) {
		if errors.Is(err, auth.ErrTooManyFailures) {
			return u, &Error{Status: http.StatusTooManyRequests, Err: err, RetryAfter: pe.RetryAfter,
				Msg: "too many failed logins; wait before trying again"}
		}
		return u, &Error{Status: http.StatusServiceUnavailable, Err: err, RetryAfter: pe.RetryAfter,
			Msg: "the server is busy checking other logins; retry shortly"}
	}
	return u, err
}
