package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/mlab/mlab/tasks"
	"github.com/mlab/mlab/tools"
)

// adminPrefix is where the gateway's admin API lives: an orchestrator
// creates episodes there and hands each agent its own endpoint,
// /episodes/<id>/mcp, whose tools need no handle. It takes the same bearer
// token as MCP (on loopback without one, like MCP), and an episode created
// there belongs to that token.
const adminPrefix = "/admin/"

// CreateEpisodeRequest is the body of POST /admin/episodes.
type CreateEpisodeRequest struct {
	Task string `json:"task"`
}

// CreatedEpisode is the answer of POST /admin/episodes.
type CreatedEpisode struct {
	tools.Started
	// MCP and SSE are the episode's own endpoints, as paths on this server.
	MCP string `json:"mcp_path"`
	SSE string `json:"sse_path"`
}

// admin serves the admin API:
//
//	POST   /admin/episodes       {"task": T}  create an episode (201, CreatedEpisode)
//	GET    /admin/episodes/<id>               its status (StatusReport)
//	DELETE /admin/episodes/<id>               end it (aborted unless submitted)
func (g *Gateway) admin(w http.ResponseWriter, r *http.Request) {
	rest, _ := strings.CutPrefix(r.URL.Path, adminPrefix)
	switch {
	case rest == "episodes" && r.Method == http.MethodPost:
		g.adminCreate(w, r)
	case strings.HasPrefix(rest, "episodes/") && (r.Method == http.MethodGet || r.Method == http.MethodDelete):
		id := strings.TrimPrefix(rest, "episodes/")
		e, err := g.opts.registry.lookup(id, tokenOf(r))
		if err != nil {
			writeJSONError(w, http.StatusNotFound, err)
			return
		}
		if r.Method == http.MethodDelete {
			e.ep.Close("closed through the admin API")
		}
		writeJSON(w, http.StatusOK, statusOf(e.ep))
	case rest == "episodes" || strings.HasPrefix(rest, "episodes/"):
		w.Header().Set("Allow", "POST on /admin/episodes; GET, DELETE on /admin/episodes/<id>")
		writeJSONError(w, http.StatusMethodNotAllowed, errors.New("method not allowed"))
	default:
		http.NotFound(w, r)
	}
}

func (g *Gateway) adminCreate(w http.ResponseWriter, r *http.Request) {
	var req CreateEpisodeRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSONError(w, http.StatusBadRequest, errors.New(`body must be a JSON object {"task": "<name>"}: `+err.Error()))
		return
	}
	def, err := g.endpoint("")
	if err != nil {
		writeJSONError(w, http.StatusServiceUnavailable, err)
		return
	}
	srv := def.srv
	name := req.Task
	if name == "" && srv.opts.Task != nil {
		name = srv.opts.Task.Name
	}
	if name == "" {
		writeJSONError(w, http.StatusBadRequest, errors.New(`"task" is required`))
		return
	}
	task, err := srv.opts.Catalog.Load(r.Context(), name)
	if errors.Is(err, tasks.ErrNotFound) {
		writeJSONError(w, http.StatusNotFound, err)
		return
	} else if err != nil {
		writeJSONError(w, http.StatusBadRequest, err)
		return
	}
	ep, err := srv.create(r.Context(), createSpec{task: task, agent: r.Header.Get("User-Agent")})
	if err != nil {
		writeJSONError(w, http.StatusServiceUnavailable, err)
		return
	}
	path := episodeScope(ep.ID())
	writeJSON(w, http.StatusCreated, CreatedEpisode{Started: startedOf(ep, srv.opts.IdleTimeout), MCP: path + "/mcp", SSE: path + "/sse"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
