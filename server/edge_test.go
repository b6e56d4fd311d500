package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"

	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/tasks"
)

// edgeServer is a Gateway served over TCP the way mlab serve does it.
type edgeServer struct {
	g    *Gateway
	hs   *http.Server
	ln   *limitListener
	addr string
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startEdge serves the fixture task at /tasks/t/ and the lobby at /mcp,
// logging at info level. tune may change the http.Server before it starts.
func startEdge(t *testing.T, hopts HTTPOptions, limits ConnLimits, tune func(*http.Server)) *edgeServer {
	t.Helper()
	task := fixture(t)
	p := localProvider(t)
	scorer := &eval.Scorer{Provider: p, Python: "/usr/bin/python3"}
	logs := &syncBuffer{}
	log := zerolog.New(logs).Level(zerolog.InfoLevel)
	g, err := NewGateway(Options{
		Catalog:   tasks.NewCatalog(nil, taskRoot(task), t.TempDir()),
		Provider:  p,
		Scorer:    scorer,
		Baselines: &eval.Baselines{Scorer: scorer, CacheDir: t.TempDir()},
		RunsDir:   t.TempDir(),
		Logger:    log,
	}, hopts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lln := LimitListener(ln, limits, log).(*limitListener)
	hs := NewHTTPServer(g)
	if tune != nil {
		tune(hs)
	}
	go hs.Serve(lln)
	t.Cleanup(func() {
		g.Close(context.Background())
		hs.Close()
	})
	return &edgeServer{g: g, hs: hs, ln: lln, addr: ln.Addr().String(), logs: logs}
}

func (e *edgeServer) url(path string) string { return "http://" + e.addr + path }

// withToken sends every request with a bearer token.
type withToken struct{ token string }

func (b withToken) Do(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return http.DefaultClient.Do(r)
}

// rawRequest writes req on a new connection and returns the response and
// the connection, for tests that look at the connection itself.
func rawRequest(t *testing.T, addr, req string) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, c, br
}

// closedByServer reports whether the server has closed c: the next read
// ends with EOF (or a reset) instead of a timeout.
func closedByServer(c net.Conn, br *bufio.Reader) bool {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := br.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestHostileBodyTooLarge: a body over the limit is refused with 413 before
// it is read, whether its length is declared or not, and the connection is
// closed instead of drained.
func TestHostileBodyTooLarge(t *testing.T) {
	e := startEdge(t, HTTPOptions{}, ConnLimits{}, nil)

	// 400 MiB declared, nothing sent: the answer comes without the body.
	resp, c, br := rawRequest(t, e.addr, fmt.Sprintf("POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", e.addr, 400<<20))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("400 MiB POST: status %d, want 413", resp.StatusCode)
	}
	if !closedByServer(c, br) {
		t.Error("the connection of a refused 400 MiB POST stays open")
	}

	// A chunked body of unknown length is cut at the limit.
	small := startEdge(t, HTTPOptions{MaxBodyBytes: 1 << 20}, ConnLimits{}, nil)
	conn, err := net.Dial("tcp", small.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", small.addr)
	var sent int64
	written := make(chan struct{})
	go func() {
		defer close(written)
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat(" ", 64<<10))
		for sent < 400<<20 {
			if _, err := io.WriteString(conn, chunk); err != nil {
				return
			}
			sent += 64 << 10
		}
	}()
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("chunked POST: %v", err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked POST over the limit: status %d, want 413", resp.StatusCode)
	}
	<-written
	// What the client got to send is the limit plus what the sockets'
	// buffers hold, nowhere near the 400 MiB it wanted to.
	if sent >= 64<<20 {
		t.Errorf("the client sent %d bytes of a chunked body over a 1 MiB limit", sent)
	}

	// A body under the limit goes through.
	s, err := dialRaw(withToken{}, small.url("/tasks/t/mcp"))
	if err != nil {
		t.Fatalf("initialize under the limit: %v", err)
	}
	if err := s.call(callBody(sdk.CallToolParams{Name: "list_files", Arguments: map[string]any{}})); err != nil {
		t.Fatalf("list_files: %v", err)
	}
}

// TestHostileUnauthorisedCloses: a 401, a 403 and /healthz answer with
// Connection: close and close the connection, so a client without the
// token cannot keep one open.
func TestHostileUnauthorisedCloses(t *testing.T) {
	e := startEdge(t, HTTPOptions{Token: "0123456789abcdef"}, ConnLimits{}, nil)
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"no token", "GET /mcp HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusUnauthorized},
		{"wrong token", "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrongwrongwrongwrong\r\nContent-Length: 5\r\n\r\nhello", http.StatusUnauthorized},
		{"foreign origin", "GET /mcp HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n", http.StatusForbidden},
		{"healthz", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, c, br := rawRequest(t, e.addr, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if !resp.Close {
				t.Errorf("response without Connection: close")
			}
			if !closedByServer(c, br) {
				t.Errorf("connection still open after the response")
			}
		})
	}
}

// TestHostileSilentConnections: one address that opens many connections
// and sends nothing gets only its share; the rest are closed at once, and a
// client elsewhere still gets answers. Closed connections give their slot
// back.
func TestHostileSilentConnections(t *testing.T) {
	const perClient = 4
	e := startEdge(t, HTTPOptions{}, ConnLimits{Total: 64, PerClient: perClient}, nil)
	// 127.0.0.2 is the flooding client; the test's client is 127.0.0.1.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	var conns []net.Conn
	for range 3 * perClient {
		c, err := d.Dial("tcp", e.addr)
		if err != nil {
			t.Skipf("cannot connect from 127.0.0.2: %v", err)
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.ln.refused.Load() < 2*perClient && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if !(errors.As(err, &ne) && ne.Timeout()) {
			closed++
		}
	}
	if closed != 2*perClient {
		t.Errorf("%d of %d silent connections were closed, want %d", closed, len(conns), 2*perClient)
	}
	// The flood holds its share, and a client elsewhere is served.
	resp, err := http.Get(e.url("/healthz"))
	if err != nil {
		t.Fatalf("healthz during the flood: %v", err)
	}
	resp.Body.Close()
	s, err := dialRaw(withToken{}, e.url("/tasks/t/mcp"))
	if err != nil {
		t.Fatalf("initialize during the flood: %v", err)
	}
	if err := s.call(callBody(sdk.CallToolParams{Name: "list_files", Arguments: map[string]any{}})); err != nil {
		t.Fatalf("list_files during the flood: %v", err)
	}
	for _, c := range conns {
		c.Close()
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		e.ln.mu.Lock()
		held := e.ln.perClient["127.0.0.2"]
		e.ln.mu.Unlock()
		if held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("127.0.0.2 still holds %d slots after closing its connections", held)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReadTimeoutSparesLongCalls: the server's read timeout bounds how long
// a client may take to send a request, not how long an authorised call
// runs, nor how long an event stream stays open.
func TestReadTimeoutSparesLongCalls(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	e := startEdge(t, HTTPOptions{}, ConnLimits{}, func(hs *http.Server) { hs.ReadTimeout = readTimeout })
	s, err := dialRaw(withToken{}, e.url("/tasks/t/mcp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.call(callBody(sdk.CallToolParams{Name: "write_file", Arguments: map[string]any{
		"file_name": "slow.py", "content": "import time\ntime.sleep(1.5)\nprint('done')\n"}})); err != nil {
		t.Fatal(err)
	}
	if err := s.call(callBody(sdk.CallToolParams{Name: "execute_script", Arguments: map[string]any{"script_name": "slow.py"}})); err != nil {
		t.Fatalf("a call longer than the read timeout: %v", err)
	}

	// A body that does not come is given up at the read timeout.
	resp, _, _ := rawRequest(t, e.addr, fmt.Sprintf("POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", e.addr))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a body that never arrives: status %d, want 400", resp.StatusCode)
	}
}
