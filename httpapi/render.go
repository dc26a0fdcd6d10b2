package httpapi

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/buildledger/buildledger/attest"
	"github.com/buildledger/buildledger/ledger/tree"
	"github.com/gorilla/mux"
)

//go:embed templates/*.html
var templateFiles embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"time":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"duration": func(a, b time.Time) string { return b.Sub(a).Round(time.Second).String() },
	"short":    func(s string) string { return s[:min(len(s), 16)] },
	"isLink":   func(predicateType string) bool { return predicateType == attest.LinkPredicateType },
	// pathEscape escapes each segment of an artifact path for a URL
	// ("#", "?" and "%" included), keeping its slashes.
	"pathEscape": func(p string) template.URL { return template.URL(escapePath(p)) },
}).ParseFS(templateFiles, "templates/*.html"))

// renderHTML answers with the named HTML page.
func (s *Server) renderHTML(w http.ResponseWriter, r *http.Request, page string, data any) {
	b, err := s.executeTemplate(page, data)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b)
}

func (s *Server) executeTemplate(page string, data any) ([]byte, error) {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, page+".html", data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// render answers with JSON when asked (Accept: application/json), else
// with the named HTML page over the same data.
func (s *Server) render(w http.ResponseWriter, r *http.Request, page string, data any) {
	w.Header().Set("Vary", "Accept")
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, data)
		return
	}
	s.renderHTML(w, r, page, data)
}

func leafHash(data []byte) [32]byte { return tree.LeafHash(data) }

//go:embed static/*
var staticFiles embed.FS

// static serves the pages' scripts (static/), which are part of this
// program: they change only with it.
func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	b, err := staticFiles.ReadFile("static/" + name)
	if err != nil || strings.Contains(name, "/") {
		s.fail(w, r, &Error{Status: http.StatusNotFound, Msg: "no such file: /static/" + name})
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(b)
}
