package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/tools"
)

// bearerRT adds a bearer token to every request.
type bearerRT struct{ token string }

func (b bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.token != "" {
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// dial connects a go-sdk client to url with token, speaking protocol
// revision version ("" for the client's default, 2026-07-28).
func dialAt(t *testing.T, url, token, version string) (*sdk.ClientSession, error) {
	t.Helper()
	c := sdk.NewClient(&sdk.Implementation{Name: "handles-test", Version: "1"}, nil)
	cs, err := c.Connect(t.Context(), &sdk.StreamableClientTransport{
		Endpoint: url, HTTPClient: &http.Client{Transport: bearerRT{token}}, MaxRetries: -1,
	}, &sdk.ClientSessionOptions{ProtocolVersion: version})
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

func mustDial(t *testing.T, url, token, version string) *sdk.ClientSession {
	t.Helper()
	cs, err := dialAt(t, url, token, version)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	return cs
}

// toolCall calls a tool; a protocol error fails the test: every refusal
// must be a tool error the agent can read.
func toolCall(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) (string, bool, *sdk.CallToolResult) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s(%v): protocol error: %v", name, args, err)
	}
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n"), res.IsError, res
}

func expectOK(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any, want string) *sdk.CallToolResult {
	t.Helper()
	text, isErr, res := toolCall(t, cs, name, args)
	if isErr || !strings.Contains(text, want) {
		t.Fatalf("%s(%v) = %q (isError %v), want success containing %q", name, args, text, isErr, want)
	}
	return res
}

func expectErr(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any, want string) {
	t.Helper()
	text, isErr, _ := toolCall(t, cs, name, args)
	if !isErr || !strings.Contains(text, want) {
		t.Fatalf("%s(%v) = %q (isError %v), want an error containing %q", name, args, text, isErr, want)
	}
}

// startEpisode calls start_task and returns the episode_id from its
// structured content.
func startEpisode(t *testing.T, cs *sdk.ClientSession, task string) string {
	t.Helper()
	res := expectOK(t, cs, "start_task", map[string]any{"task": task}, "episode_id")
	raw, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		EpisodeID string `json:"episode_id"`
	}
	if err := json.Unmarshal(raw, &st); err != nil || len(st.EpisodeID) < 32 {
		t.Fatalf("start_task structured content %s: no episode_id of 128 bits or more", raw)
	}
	return st.EpisodeID
}

// status reads episode_status's structured content.
func episodeStatus(t *testing.T, cs *sdk.ClientSession, id string) tools.Status {
	t.Helper()
	args := map[string]any{}
	if id != "" {
		args["episode_id"] = id
	}
	res := expectOK(t, cs, "episode_status", args, "episode")
	raw, _ := json.Marshal(res.StructuredContent)
	var rep tools.Status
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("episode_status structured content %s: %v", raw, err)
	}
	return rep
}

// TestHandlesModern: clients of protocol 2026-07-28 (the go-sdk default)
// have no MCP session; each start_task gives a distinct, isolated episode
// reached by its handle, which works only with the token that made it.
func TestHandlesModern(t *testing.T) {
	e := startEdge(t, HTTPOptions{Token: tokenA, Tokens: []string{tokenB}}, ConnLimits{}, nil)
	a := mustDial(t, e.url("/mcp"), tokenA, "")
	b := mustDial(t, e.url("/mcp"), tokenA, "")
	if v := a.InitializeResult().ProtocolVersion; v != "2026-07-28" {
		t.Fatalf("the go-sdk client negotiated %q, want 2026-07-28: the server must serve it", v)
	}
	idA, idB := startEpisode(t, a, "t"), startEpisode(t, b, "t")
	if idA == idB {
		t.Fatalf("two start_task calls gave the same episode %s", idA)
	}
	expectErr(t, a, "list_files", map[string]any{}, "episode_id is required")
	expectOK(t, a, "write_file", map[string]any{"episode_id": idA, "file_name": "score.txt", "content": "0.9"}, "wrote")
	// B's workspace is its own.
	expectErr(t, b, "read_file", map[string]any{"episode_id": idB, "file_name": "score.txt"}, "does not exist")
	// A handle is the episode wherever its token goes: B's connection may
	// act on A's episode with A's handle, since both hold token A.
	expectOK(t, b, "read_file", map[string]any{"episode_id": idA, "file_name": "score.txt"}, "0.9")
	// Another token cannot use it, and learns nothing about it.
	c := mustDial(t, e.url("/mcp"), tokenB, "")
	expectErr(t, c, "read_file", map[string]any{"episode_id": idA, "file_name": "score.txt"}, "unknown episode")
	expectErr(t, c, "episode_status", map[string]any{"episode_id": idA}, "unknown episode")
	expectErr(t, c, "final_answer", map[string]any{"episode_id": idA, "final_answer": "steal"}, "unknown episode")
	expectErr(t, a, "list_files", map[string]any{"episode_id": "0123456789abcdef0123456789abcdef"}, "unknown episode")

	if st := episodeStatus(t, a, idA); st.Status != runlog.StatusRunning || st.StepsUsed != 2 {
		t.Errorf("status of A: %+v, want running after 2 steps (C's refused calls are not A's)", st)
	}
	expectOK(t, a, "final_answer", map[string]any{"episode_id": idA, "final_answer": "done"}, "score = 0.9")
	expectErr(t, a, "list_files", map[string]any{"episode_id": idA}, "this episode is over")
	if st := episodeStatus(t, a, idA); st.Status != runlog.StatusScored || st.Result == nil || st.Result.Score == nil || *st.Result.Score != 0.9 {
		t.Errorf("status of A after final_answer: %+v, want scored 0.9", st)
	}
	// The status resource says the same, to the same token only.
	uri := "mlab://episodes/" + idA + "/status"
	if rr, err := a.ReadResource(t.Context(), &sdk.ReadResourceParams{URI: uri}); err != nil || !strings.Contains(rr.Contents[0].Text, `"status": "scored"`) {
		t.Errorf("status resource: %+v, %v, want scored", rr, err)
	}
	if _, err := c.ReadResource(t.Context(), &sdk.ReadResourceParams{URI: uri}); err == nil || !strings.Contains(err.Error(), "unknown episode") {
		t.Errorf("status resource with token B: %v, want unknown episode", err)
	}
	// B is untouched and still running.
	if st := episodeStatus(t, b, idB); st.Status != runlog.StatusRunning {
		t.Errorf("status of B: %+v, want running", st)
	}
}

// TestHandlesLegacy: a 2025-revision client keeps working without handles,
// its session bound to the episode it started, and sees its handle too.
func TestHandlesLegacy(t *testing.T) {
	e := startEdge(t, HTTPOptions{Token: tokenA}, ConnLimits{}, nil)
	cs := mustDial(t, e.url("/mcp"), tokenA, "2025-11-25")
	if v := cs.InitializeResult().ProtocolVersion; v != "2025-11-25" {
		t.Fatalf("negotiated %q, want 2025-11-25", v)
	}
	id := startEpisode(t, cs, "t")
	expectOK(t, cs, "write_file", map[string]any{"file_name": "score.txt", "content": "0.7"}, "wrote")
	expectOK(t, cs, "read_file", map[string]any{"episode_id": id, "file_name": "score.txt"}, "0.7")
	if st := episodeStatus(t, cs, ""); st.EpisodeID != id {
		t.Errorf("status without a handle: %+v, want episode %s", st, id)
	}
	expectOK(t, cs, "final_answer", map[string]any{"final_answer": "done"}, "score = 0.7")
}

// TestDropDuringEval: a client that gives up while its submission is being
// scored still gets its run scored, and reads the result afterwards.
func TestDropDuringEval(t *testing.T) {
	for _, version := range []string{"", "2025-11-25"} {
		name := version
		if name == "" {
			name = "2026-07-28"
		}
		t.Run(name, func(t *testing.T) {
			gate := &execGate{Provider: localProvider(t), prefix: "eval-", entered: make(chan struct{}, 1), release: make(chan struct{})}
			g := lifecycleGateway(t, fixture(t), gate, nil)
			hs := httpServe(t, g)
			cs := mustDial(t, hs+"/mcp", "", version)
			id := startEpisode(t, cs, "t")
			expectOK(t, cs, "write_file", map[string]any{"episode_id": id, "file_name": "score.txt", "content": "0.8"}, "wrote")
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				_, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "final_answer", Arguments: map[string]any{"episode_id": id, "final_answer": "x"}})
				done <- err
			}()
			select {
			case <-gate.entered:
			case <-time.After(time.Minute):
				t.Fatal("the eval did not start within a minute")
			}
			// The client gives up and goes away while the eval runs.
			cancel()
			if err := <-done; err == nil {
				t.Fatal("final_answer returned although its client cancelled it")
			}
			cs.Close()
			close(gate.release)

			other := mustDial(t, hs+"/mcp", "", "")
			deadline := time.Now().Add(2 * time.Minute)
			for {
				st := episodeStatus(t, other, id)
				if st.Status == runlog.StatusScored {
					if st.Result == nil || st.Result.Score == nil || *st.Result.Score != 0.8 {
						t.Fatalf("status %+v, want score 0.8", st)
					}
					break
				}
				if st.Status != statusScoring || time.Now().After(deadline) {
					t.Fatalf("status %+v, want scoring until scored", st)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// httpServe serves g on a loopback port and returns its base URL.
func httpServe(t *testing.T, g *Gateway) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := NewHTTPServer(g)
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String()
}

// TestEpisodeEndpoint: an orchestrator creates an episode through the admin
// API and hands its own URL to an agent, whose tools need no handle there.
func TestEpisodeEndpoint(t *testing.T) {
	e := startEdge(t, HTTPOptions{Token: tokenA, Tokens: []string{tokenB}}, ConnLimits{}, nil)
	admin := func(token, method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, e.url(path), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, raw
	}
	if code, raw := admin(tokenA, http.MethodPost, "/admin/episodes", `{"task": "nope"}`); code != http.StatusNotFound {
		t.Errorf("create of an unknown task: %d %s, want 404", code, raw)
	}
	if code, raw := admin(tokenA, http.MethodPost, "/admin/episodes", `{"tsk": "t"}`); code != http.StatusBadRequest {
		t.Errorf("create with a misspelt field: %d %s, want 400", code, raw)
	}
	code, raw := admin(tokenA, http.MethodPost, "/admin/episodes", `{"task": "t"}`)
	var created CreatedEpisode
	if code != http.StatusCreated || json.Unmarshal(raw, &created) != nil || created.MCP != "/episodes/"+created.EpisodeID+"/mcp" {
		t.Fatalf("create: %d %s", code, raw)
	}
	for _, version := range []string{"", "2025-11-25"} {
		cs := mustDial(t, e.url(created.MCP), tokenA, version)
		expectOK(t, cs, "list_files", map[string]any{}, "train.py")
		expectErr(t, cs, "list_files", map[string]any{"episode_id": "0123456789abcdef0123456789abcdef"}, "serves episode "+created.EpisodeID+" only")
		expectErr(t, cs, "start_task", map[string]any{"task": "t"}, "needs no start_task")
	}
	// Another token reaches neither the endpoint nor the admin record.
	if _, err := dialAt(t, e.url(created.MCP), tokenB, ""); err == nil {
		t.Error("token B connected to token A's episode endpoint")
	}
	if code, _ := admin(tokenB, http.MethodGet, "/admin/episodes/"+created.EpisodeID, ""); code != http.StatusNotFound {
		t.Errorf("token B's status request: %d, want 404", code)
	}
	code, raw = admin(tokenA, http.MethodGet, "/admin/episodes/"+created.EpisodeID, "")
	var rep tools.Status
	if code != http.StatusOK || json.Unmarshal(raw, &rep) != nil || rep.Status != runlog.StatusRunning || rep.StepsUsed != 2 {
		t.Errorf("status: %d %s, want running after 2 steps (one list_files per client; refusals are no steps)", code, raw)
	}
	code, raw = admin(tokenA, http.MethodDelete, "/admin/episodes/"+created.EpisodeID, "")
	if code != http.StatusOK || json.Unmarshal(raw, &rep) != nil || rep.Status != runlog.StatusAborted {
		t.Errorf("close: %d %s, want aborted", code, raw)
	}
	r, err := runlog.ReadResult(filepath.Join(e.g.opts.RunsDir, rep.RunID))
	if err != nil || r.Status != runlog.StatusAborted || !strings.Contains(r.Error, "admin API") {
		t.Errorf("result.json %+v (%v), want aborted through the admin API", r, err)
	}
}

// TestHandleExpires: an episode held only by its handle expires after the
// idle timeout, freeing its sandbox; its handle then says why.
func TestHandleExpires(t *testing.T) {
	g := lifecycleGateway(t, fixture(t), localProvider(t), func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
	hs := httpServe(t, g)
	cs := mustDial(t, hs+"/mcp", "", "")
	id := startEpisode(t, cs, "t")
	deadline := time.Now().Add(time.Minute)
	for {
		st := episodeStatus(t, cs, id)
		if st.Status == runlog.StatusAborted {
			break
		}
		if st.Status != runlog.StatusRunning || time.Now().After(deadline) {
			t.Fatalf("status %+v, want running until it expires, then aborted", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	expectErr(t, cs, "list_files", map[string]any{"episode_id": id}, "idle for longer than 300ms")
	for deadline := time.Now().Add(time.Minute); g.opts.registry.held(g.endpoints[""].srv) != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the expired episode still holds its sandbox after a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
