package server

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	tokenA = "token-a-0123456789abcdef"
	tokenB = "token-b-0123456789abcdef"
)

// status sends one request and returns its status code.
func status(t *testing.T, c withToken, method, url, id, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	if id != "" {
		req.Header.Set("Mcp-Session-Id", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	// A GET that was accepted is an event stream: its status is enough.
	resp.Body.Close()
	return resp.StatusCode
}

var listFiles = string(callBody(sdk.CallToolParams{Name: "list_files", Arguments: map[string]any{}}))

// TestHostileSessionIDs: a session id works only for the token that
// created it, at the endpoint that created it, until it is deleted; an id
// this server never handed out works nowhere; and ids stay out of the log
// at info level.
func TestHostileSessionIDs(t *testing.T) {
	e := startEdge(t, HTTPOptions{Token: tokenA, Tokens: []string{tokenB}}, ConnLimits{}, nil)
	a, b := withToken{tokenA}, withToken{tokenB}
	task := e.url("/tasks/t/mcp")
	s, err := dialRaw(a, task)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.call([]byte(listFiles)); err != nil {
		t.Fatalf("owner's call: %v", err)
	}
	forged := "mcp-session-" + uuid.NewString()

	for _, tc := range []struct {
		name            string
		c               withToken
		method, url, id string
		want            int
	}{
		{"never-initialised id", a, http.MethodPost, task, forged, http.StatusNotFound},
		{"never-initialised id, stream", a, http.MethodGet, task, forged, http.StatusNotFound},
		{"never-initialised id, delete", a, http.MethodDelete, task, forged, http.StatusNotFound},
		{"no id, stream", a, http.MethodGet, task, "", http.StatusBadRequest},
		{"no id, call", a, http.MethodPost, task, "", http.StatusNotFound},
		{"another token's session", b, http.MethodPost, task, s.id, http.StatusNotFound},
		{"another token's session, stream", b, http.MethodGet, task, s.id, http.StatusNotFound},
		{"another token's session, delete", b, http.MethodDelete, task, s.id, http.StatusNotFound},
		{"another endpoint's session", a, http.MethodPost, e.url("/mcp"), s.id, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := status(t, tc.c, tc.method, tc.url, tc.id, listFiles); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
	// None of that touched the owner's session.
	if err := s.call([]byte(listFiles)); err != nil {
		t.Fatalf("owner's call after the others' attempts: %v", err)
	}

	// Deleted, it cannot come back: not through a call, nor a stream (which
	// mcp-go would otherwise register afresh under the old id).
	if got := status(t, a, http.MethodDelete, task, s.id, ""); got != http.StatusOK {
		t.Fatalf("owner's DELETE: status %d", got)
	}
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		if got := status(t, a, method, task, s.id, listFiles); got != http.StatusNotFound {
			t.Errorf("%s of a deleted session: status %d, want 404", method, got)
		}
	}
	if n := e.g.sessions.count(); n != 0 {
		t.Errorf("%d session ids left after the only one was deleted", n)
	}

	logs := e.logs.String()
	if !strings.Contains(logs, "http request") {
		t.Fatalf("no request log at info level:\n%s", logs)
	}
	if strings.Contains(logs, s.id) || strings.Contains(logs, forged) {
		t.Errorf("session ids in the info log:\n%s", logs)
	}
}

// TestHostileSSESessionIDs: the SSE transport's message endpoint takes only
// its stream's token, and forgets the id when the stream ends.
func TestHostileSSESessionIDs(t *testing.T) {
	e := startEdge(t, HTTPOptions{Token: tokenA, Tokens: []string{tokenB}}, ConnLimits{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url("/tasks/t/sse"), nil)
	req.Header.Set("Authorization", "Bearer "+tokenA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The first event names the message endpoint, with the session id.
	var endpoint string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			endpoint = v
			break
		}
	}
	if !strings.Contains(endpoint, "sessionId=") {
		t.Fatalf("no message endpoint in the stream: %q", endpoint)
	}
	msg := e.url(endpoint)
	init := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	if got := status(t, withToken{tokenB}, http.MethodPost, msg, "", init); got != http.StatusNotFound {
		t.Errorf("another token's POST to the stream's session: status %d, want 404", got)
	}
	if got := status(t, withToken{tokenA}, http.MethodPost, msg, "", init); got != http.StatusAccepted {
		t.Errorf("owner's POST: status %d, want 202", got)
	}
	cancel()
	io.Copy(io.Discard, resp.Body)
	deadline := time.Now().Add(30 * time.Second)
	for e.g.sessions.count() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d session ids left after the stream ended", e.g.sessions.count())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := status(t, withToken{tokenA}, http.MethodPost, msg, "", init); got != http.StatusNotFound {
		t.Errorf("POST to an ended stream's session: status %d, want 404", got)
	}
}

func TestSessionTable(t *testing.T) {
	s := newSessions()
	var a, b tokenHash
	b[0] = 1
	id := s.create(a, "t")
	tests := []struct {
		name  string
		tok   tokenHash
		scope string
		want  bool
	}{
		{"owner", a, "t", true},
		{"other token", b, "t", false},
		{"other scope", a, "", false},
	}
	for _, tc := range tests {
		if got := s.owns(id, tc.tok, tc.scope); got != tc.want {
			t.Errorf("%s: owns = %v, want %v", tc.name, got, tc.want)
		}
	}
	if s.remove(id, &b, "t") {
		t.Error("another token removed the session")
	}
	if !s.remove(id, &a, "t") || s.owns(id, a, "t") {
		t.Error("the owner could not remove its session")
	}
	if s.remove(id, &a, "t") {
		t.Error("a session was removed twice")
	}
	// The transport's idle sweeper has no request, hence no token.
	id = s.create(a, "t")
	mgr := sessionScope{s, "t"}.ResolveSessionIdManager(nil)
	if _, err := mgr.Validate(id); err == nil {
		t.Error("a manager without a request validated a session")
	}
	if _, err := mgr.Terminate(id); err != nil || s.count() != 0 {
		t.Errorf("the sweeper could not end a session: %v, %d left", err, s.count())
	}
}
