package scheduler

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/buildledger/buildledger/farm/proto"
)

// MaxStreams bounds the live consoles streamed at once; more are answered
// 503 with Retry-After, so anonymous viewers cannot exhaust the scheduler.
const MaxStreams = 64

// NewConsole returns the scheduler's web pages: the running jobs, queues
// and schedule at /, and a running job's console at /job/UUID, streamed
// live with server-sent events from /job/UUID/events. ledger, if set, is
// the ledger's base URL: a finished job's page links to its build there.
func NewConsole(s *Scheduler, ledger string) http.Handler {
	w := &web{s: s, ledger: strings.TrimSuffix(ledger, "/"), streams: make(chan struct{}, MaxStreams)}
	r := mux.NewRouter()
	r.HandleFunc("/", w.index).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/job/{uuid}", w.job).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/job/{uuid}/events", w.events).Methods(http.MethodGet)
	return r
}

type web struct {
	s       *Scheduler
	ledger  string
	streams chan struct{}
}

var pages = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><link rel="icon" href="data:,"><style>body{font-family:system-ui,sans-serif;overflow-wrap:anywhere}pre{white-space:pre-wrap}</style>
<title>Build farm</title></head><body>
<h1>Build farm</h1>
<h2>Running</h2>
{{if .Running}}<ul>{{range .Running}}<li><a href="/job/{{.UUID}}">{{.Name}} on {{.Platform}}</a>, started {{.Started}}</li>{{end}}</ul>{{else}}<p>No job is running.</p>{{end}}
<h2>Queues</h2>
{{if .Queues}}<ul>{{range .Queues}}<li>{{.Platform}}: {{if .Jobs}}{{range $i, $j := .Jobs}}{{if $i}}, {{end}}{{$j}}{{end}}{{else}}empty{{end}}</li>{{end}}</ul>{{else}}<p>No platform has asked for jobs yet.</p>{{end}}
<h2>Schedule</h2>
{{if .Schedule}}<ul>{{range .Schedule}}<li>{{.}}</li>{{end}}</ul>{{else}}<p>Nothing is scheduled.</p>{{end}}
</body></html>
`))

var jobPage = template.Must(template.New("job").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><link rel="icon" href="data:,"><style>body{font-family:system-ui,sans-serif;overflow-wrap:anywhere}pre{white-space:pre-wrap}</style>
<title>{{.Name}} on {{.Platform}}</title></head><body>
<p><a href="/">Build farm</a></p>
<h1>{{.Name}} on {{.Platform}}</h1>
<p>Build {{.UUID}}, started {{.Started}}. <span id="status">Running; the console follows live.</span></p>
<pre id="console"></pre>
<script>
(function () {
  var con = document.getElementById("console"), status = document.getElementById("status");
  var es = new EventSource("/job/{{.UUID}}/events");
  function secs(ns) { return (ns / 1e9).toFixed(3) + "s "; }
  es.addEventListener("line", function (e) {
    var l = JSON.parse(e.data);
    con.appendChild(document.createTextNode(secs(l.delta_ns) + l.text + "\n"));
  });
  es.addEventListener("end", function (e) {
    var l = JSON.parse(e.data);
    es.close();
    status.textContent = "Finished: " + l.text + ". ";
    {{if .Build}}var a = document.createElement("a");
    a.href = {{.Build}}; a.textContent = "The build in the ledger";
    status.appendChild(a);{{end}}
  });
  es.onerror = function () { if (es.readyState === EventSource.CLOSED) status.textContent = "The console stream closed."; };
})();
</script>
</body></html>
`))

func (w *web) index(rw http.ResponseWriter, r *http.Request) {
	in := w.s.Info()
	type running struct{ UUID, Name, Platform, Started string }
	type queue struct {
		Platform string
		Jobs     []string
	}
	var d struct {
		Running  []running
		Queues   []queue
		Schedule []string
	}
	for _, x := range in.Running {
		p := "no-platform"
		if x.Job.Platform != nil {
			p = *x.Job.Platform
		}
		d.Running = append(d.Running, running{x.UUID.String(), x.Job.Name, p, x.Started.T.UTC().Format(time.RFC3339)})
	}
	for _, q := range in.Queues {
		qq := queue{Platform: q.Platform}
		for _, j := range q.Jobs {
			if j.Orb != nil {
				qq.Jobs = append(qq.Jobs, j.Orb.Name)
			} else {
				qq.Jobs = append(qq.Jobs, j.Script.Name)
			}
		}
		d.Queues = append(d.Queues, qq)
	}
	for _, it := range in.Schedule {
		name, what := "", ""
		if it.Job.Orb != nil {
			name, what = it.Job.Orb.Name, "orb build of "+it.Job.Orb.OpamPackage
		} else {
			name, what = it.Job.Script.Name, "script"
		}
		next := "never"
		if it.Period != proto.Never {
			next = it.Next.T.UTC().Format(time.RFC3339)
		}
		d.Schedule = append(d.Schedule, fmt.Sprintf("%s (%s), %s, next %s", name, what, it.Period, next))
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pages.Execute(rw, d)
}

func (w *web) running(rw http.ResponseWriter, r *http.Request) (*run, bool) {
	id, err := uuid.Parse(mux.Vars(r)["uuid"])
	if err != nil {
		http.Error(rw, "not a UUID: "+err.Error(), http.StatusBadRequest)
		return nil, false
	}
	w.s.mu.Lock()
	x, ok := w.s.running[id]
	w.s.mu.Unlock()
	if !ok {
		msg := fmt.Sprintf("build %s is not running here", id)
		if w.ledger != "" {
			msg += "; finished builds are in the ledger, " + w.ledger + "/"
		}
		http.Error(rw, msg, http.StatusNotFound)
		return nil, false
	}
	return x, true
}

func (w *web) job(rw http.ResponseWriter, r *http.Request) {
	x, ok := w.running(rw, r)
	if !ok {
		return
	}
	p := "no-platform"
	if x.job.Platform != nil {
		p = *x.job.Platform
	}
	build := ""
	if w.ledger != "" {
		build = fmt.Sprintf("%s/job/%s/build/%s", w.ledger, x.job.Name, x.id)
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = jobPage.Execute(rw, map[string]string{"UUID": x.id.String(), "Name": x.job.Name, "Platform": p,
		"Started": x.started.UTC().Format(time.RFC3339), "Build": build})
}

type sseLine struct {
	DeltaNS int64  `json:"delta_ns"`
	Text    string `json:"text"`
	Skipped int    `json:"skipped,omitempty"`
}

// events streams a running job's console as server-sent events: "line"
// events with the lines so far and the live ones, then one "end" event.
func (w *web) events(rw http.ResponseWriter, r *http.Request) {
	x, ok := w.running(rw, r)
	if !ok {
		return
	}
	select {
	case w.streams <- struct{}{}:
		defer func() { <-w.streams }()
	default:
		rw.Header().Set("Retry-After", "10")
		http.Error(rw, fmt.Sprintf("%d consoles are streaming already; try again shortly", MaxStreams), http.StatusServiceUnavailable)
		return
	}
	past, events, cancel := x.con.observe()
	defer cancel()
	fl, _ := rw.(http.Flusher)
	rc := http.NewResponseController(rw)
	rw.Header().Set("Content-Type", "text/event-stream")
	rw.Header().Set("Cache-Control", "no-store")
	send := func(kind string, l sseLine) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		b, _ := json.Marshal(l)
		_, err := fmt.Fprintf(rw, "event: %s\ndata: %s\n\n", kind, b)
		return err == nil
	}
	for _, l := range past {
		if !send("line", sseLine{DeltaNS: int64(l.Delta), Text: l.Text}) {
			return
		}
	}
	if fl != nil {
		fl.Flush()
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-events:
			if !ok {
				return
			}
			kind := "line"
			if e.End {
				kind = "end"
			}
			if !send(kind, sseLine{DeltaNS: int64(e.Delta), Text: e.Text, Skipped: e.Skipped}) {
				return
			}
			if fl != nil {
				fl.Flush()
			}
			if e.End {
				return
			}
		}
	}
}
