package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestHostileTimeoutOverflow: timeout_s values whose conversion to a
// time.Duration overflows (4611686018427387904 s wraps to 0, 9223372037 s to
// a negative duration) used to turn the timeout off: with
// --max-exec-timeout 3s an 8 s script ran to the end. They are refused.
func TestHostileTimeoutOverflow(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := start(t, backend, "fixture", "--max-exec-timeout", "3s")
		h.mustOK(t, "write_file", map[string]any{"file_name": "slow.py",
			"content": "import time\ntime.sleep(8)\nprint('ran to the end')\n"}, "wrote")
		for _, timeout := range []int64{9223372037, 4611686018427387904, math.MaxInt64} {
			text, isErr := h.call(t, "execute_script", map[string]any{"script_name": "slow.py", "timeout_s": timeout})
			if !isErr || !strings.Contains(text, "exceeds this task's limit of 3 seconds") || strings.Contains(text, "ran to the end") {
				t.Errorf("timeout_s %d: %q (isError %v), want a refusal", timeout, text, isErr)
			}
		}
	})
}

// TestHostileTraceCapped: refused write_file calls with 20 MiB of content
// each leave a trace of bounded size, which says how much was cut.
func TestHostileTraceCapped(t *testing.T) {
	h := start(t, "local", "fixture")
	content := strings.Repeat("x", 20<<20)
	for range 3 {
		h.mustFail(t, "write_file", map[string]any{"file_name": "big.txt", "content": content}, "at most")
	}
	h.mustOK(t, "list_files", map[string]any{}, "train.py")
	trace := filepath.Join(h.runDir(t), "trace.jsonl")
	fi, err := os.Stat(trace)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 256<<10 {
		t.Fatalf("trace.jsonl is %d bytes after three 20 MiB calls", fi.Size())
	}
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	sc.Scan()
	var step struct {
		Tool      string
		Elided    map[string]struct{ Bytes, Kept int } `json:"arguments_elided"`
		Arguments map[string]string
	}
	if err := json.Unmarshal(sc.Bytes(), &step); err != nil {
		t.Fatal(err)
	}
	if step.Tool != "write_file" || step.Arguments["file_name"] != "big.txt" || step.Elided["content"].Bytes != len(content) {
		t.Errorf("first step %+v, want write_file of big.txt with %d bytes of content elided", step.Elided, len(content))
	}
}

// TestHostileHTTPEdge: through mlab serve, a 400 MiB POST is refused with
// 413 unread; a 401 closes its connection; an address that opens more
// silent connections than --max-conns-per-client allows has the rest closed
// at once, while a client with the token is served.
func TestHostileHTTPEdge(t *testing.T) {
	const token = "a-long-enough-test-token"
	s := startHTTP(t, "local", "http", "", "--token", token, "--max-conns-per-client", "4")
	addr := strings.TrimPrefix(s.base, "http://")
	raw := func(req string) (*http.Response, net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, req)
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%.40q: %v", req, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, c, br
	}
	closed := func(c net.Conn, br *bufio.Reader) bool {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := br.ReadByte()
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}

	resp, c, br := raw(fmt.Sprintf("POST /mcp HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, token, 400<<20))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !closed(c, br) {
		t.Errorf("400 MiB POST: status %d, want 413 and a closed connection", resp.StatusCode)
	}
	resp, c, br = raw(fmt.Sprintf("GET /mcp HTTP/1.1\r\nHost: %s\r\n\r\n", addr))
	if resp.StatusCode != http.StatusUnauthorized || !closed(c, br) {
		t.Errorf("no token: status %d, want 401 and a closed connection", resp.StatusCode)
	}

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	var silent []net.Conn
	for range 12 {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Skipf("cannot connect from 127.0.0.2: %v", err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	// The connections over the cap are closed as soon as they are
	// accepted; those under it wait for their headers.
	refused := 0
	for _, c := range silent {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if !(errors.As(err, &ne) && ne.Timeout()) {
			refused++
		}
	}
	if refused != 8 {
		t.Errorf("%d of 12 silent connections from one address were closed, want 8", refused)
	}
	h, err := s.connect(t, "/tasks/fixture/mcp", token)
	if err != nil {
		t.Fatalf("connect with the token during the flood: %v", err)
	}
	h.mustOK(t, "list_files", map[string]any{}, "train.py")
	if _, err := h.cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "list_files", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
}

func TestFlagBounds(t *testing.T) {
	valid := func() (*common, *serveFlags) {
		return &common{workspaceMiB: 2048, cpus: 2}, &serveFlags{memoryMiB: 8192, maxRequestMiB: 49}
	}
	tests := []struct {
		name    string
		change  func(c *common, sf *serveFlags)
		wantErr string
	}{
		{"defaults", func(*common, *serveFlags) {}, ""},
		{"memory overflows when shifted", func(_ *common, sf *serveFlags) { sf.memoryMiB = 1 << 44 }, "--memory 17592186044416: too large"},
		{"negative memory", func(_ *common, sf *serveFlags) { sf.memoryMiB = -1 }, "--memory -1: must not be negative"},
		{"request size overflows", func(_ *common, sf *serveFlags) { sf.maxRequestMiB = math.MaxInt64 }, "--max-request-size"},
		{"workspace overflows", func(c *common, _ *serveFlags) { c.workspaceMiB = math.MaxInt64 }, "--workspace-size"},
		{"NaN cpus", func(c *common, _ *serveFlags) { c.cpus = math.NaN() }, "--cpus NaN"},
		{"infinite cpus", func(c *common, _ *serveFlags) { c.cpus = math.Inf(1) }, "--cpus +Inf"},
		{"negative pids", func(_ *common, sf *serveFlags) { sf.pids = -5 }, "--pids -5"},
		{"negative timeout", func(_ *common, sf *serveFlags) { sf.maxExec = -time.Second }, "--max-exec-timeout -1s"},
		{"default above the limit", func(_ *common, sf *serveFlags) { sf.execTimeout, sf.maxExec = 2*time.Hour, time.Hour }, "exceeds --max-exec-timeout"},
		{"negative connection cap", func(_ *common, sf *serveFlags) { sf.maxConnsPerClient = -1 }, "--max-conns-per-client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, sf := valid()
			tc.change(c, sf)
			err := errors.Join(c.validate(), sf.validate())
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("validate = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
