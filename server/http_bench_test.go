package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"

	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/tasks"
)

// The calls the HTTP benchmarks make: cheap tools on mlab, alternating, and
// a tool that does nothing on the bare server.
var (
	mlabCalls = []sdk.CallToolParams{
		{Name: "list_files", Arguments: map[string]any{}},
		{Name: "read_file", Arguments: map[string]any{"file_name": "small.txt"}},
	}
	bareCalls = []sdk.CallToolParams{{Name: "noop", Arguments: map[string]any{}}}
)

// BenchmarkHTTPCalls measures cheap tool calls (list_files and read_file of
// a small file, alternating) over streamable HTTP with 1, 8 and 64
// concurrent sessions on the local backend, beside the same client calling a
// bare mcp-go server whose one tool does nothing, in the same run. It reports
// calls/s, the p50/p99 latency a client sees and the p50/p99 time the server
// spends on a request (srv_p50_ms, srv_p99_ms).
//
// Two clients drive it: the go-sdk, a full client as agents use, and raw, a
// minimal one that posts ready-made JSON-RPC requests and decodes the
// replies. Client and server share this machine's cores, and the go-sdk
// client costs more per call than either server, so raw shows better how
// many calls the server itself can take.
func BenchmarkHTTPCalls(b *testing.B) {
	mlabTimes, bareTimes := &serverTimes{}, &serverTimes{}
	mlab := httptest.NewServer(mlabTimes.wrap(benchGateway(b)))
	defer mlab.Close()
	bare := httptest.NewServer(bareTimes.wrap(bareServer()))
	defer bare.Close()
	for _, client := range []string{"sdk", "raw"} {
		for _, sessions := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/bare/sessions=%d", client, sessions), func(b *testing.B) {
				runCalls(b, client, bare.URL+"/mcp", sessions, bareTimes, bareCalls)
			})
			b.Run(fmt.Sprintf("%s/mlab/sessions=%d", client, sessions), func(b *testing.B) {
				runCalls(b, client, mlab.URL+"/tasks/t/mcp", sessions, mlabTimes, mlabCalls)
			})
		}
	}
}

// BenchmarkHandler measures the server alone: requests go straight to the
// handler, with no network and no client, so ns/op is the server's own cost
// of one call, beside the bare server's in the same run. floor/read_file is
// the bare server with a tool that does only the file I/O read_file cannot
// avoid: what any implementation would pay here.
func BenchmarkHandler(b *testing.B) {
	g := benchGateway(b)
	for _, c := range []struct {
		name string
		h    http.Handler
		url  string
		call sdk.CallToolParams
	}{
		{"bare/noop", bareServer(), "/mcp", bareCalls[0]},
		{"floor/read_file", floorServer(b), "/mcp", sdk.CallToolParams{Name: "read", Arguments: map[string]any{}}},
		{"mlab/list_files", g, "/tasks/t/mcp", mlabCalls[0]},
		{"mlab/read_file", g, "/tasks/t/mcp", mlabCalls[1]},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := dialRaw(&handlerClient{c.h}, c.url)
			if err != nil {
				b.Fatal(err)
			}
			body := callBody(c.call)
			if err := s.call(body); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := s.call(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchGateway(b *testing.B) *Gateway {
	return testGateway(b, localProvider(b), b.TempDir())
}

// testGateway serves the fixture task at /tasks/t/ with provider p,
// recording runs in runsDir, with budgets no test reaches.
func testGateway(tb testing.TB, p sandbox.Provider, runsDir string) *Gateway {
	task := fixture(tb)
	scorer := &eval.Scorer{Provider: p, Python: "/usr/bin/python3"}
	g, err := NewGateway(Options{
		Catalog:   tasks.NewCatalog(nil, taskRoot(task), tb.TempDir()),
		Provider:  p,
		Scorer:    scorer,
		Baselines: &eval.Baselines{Scorer: scorer, CacheDir: tb.TempDir()},
		RunsDir:   runsDir,
		Budgets:   tasks.Budgets{MaxSteps: 1 << 30},
		Metrics:   NewMetrics(nil),
		Logger:    zerolog.Nop(),
	}, HTTPOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Close(context.Background()) })
	return g
}

// taskRoot is the folder holding a task folder.
func taskRoot(t *tasks.Task) string { return t.Dir[:len(t.Dir)-len(t.Name)-1] }

// bareServer is the floor: mcp-go's streamable HTTP with a no-op tool, on
// the 2025 revisions the benchmark's clients speak.
func bareServer() http.Handler {
	s := mcpserver.NewMCPServer("bare", "1")
	s.AddTool(mcp.NewTool("noop"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("ok"), nil
	})
	return mcpserver.NewStreamableHTTPServer(s,
		mcpserver.WithStreamableHTTPProtocolVersions(mcp.ProtocolVersion20251125, mcp.ProtocolVersion20250618, mcp.ProtocolVersion20250326))
}

// floorServer is bareServer with a tool that opens a small file through an
// os.Root, stats, reads and closes it, and appends a trace line to a file.
func floorServer(b *testing.B) http.Handler {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "small.txt"), []byte("hello\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	trace, err := os.OpenFile(filepath.Join(dir, "trace.jsonl"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { root.Close(); trace.Close() })
	line := []byte(`{"step":1,"tool":"read_file","arguments":{"file_name":"small.txt"},"result":"hello"}` + "\n")
	s := mcpserver.NewMCPServer("floor", "1")
	s.AddTool(mcp.NewTool("read"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		f, err := root.OpenFile("small.txt", os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		buf := make([]byte, fi.Size())
		if _, err := f.ReadAt(buf, 0); err != nil {
			return nil, err
		}
		if _, err := trace.Write(line); err != nil {
			return nil, err
		}
		return mcp.NewToolResultText(string(buf)), nil
	})
	return mcpserver.NewStreamableHTTPServer(s, mcpserver.WithStreamableHTTPProtocolVersions(mcp.ProtocolVersion20251125))
}

// serverTimes records how long the server takes over each POST.
type serverTimes struct {
	mu    sync.Mutex
	times []time.Duration
}

func (s *serverTimes) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		if r.Method == http.MethodPost {
			s.mu.Lock()
			s.times = append(s.times, time.Since(start))
			s.mu.Unlock()
		}
	})
}

func (s *serverTimes) reset() {
	s.mu.Lock()
	s.times = s.times[:0]
	s.mu.Unlock()
}

// percentiles reports p50 and p99 of sorted durations in milliseconds.
func percentiles(b *testing.B, d []time.Duration, prefix string) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, prefix+"p50_ms")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, prefix+"p99_ms")
}

// runCalls spreads b.N calls over sessions concurrent clients of the kind
// named by client ("sdk" or "raw").
func runCalls(b *testing.B, client, url string, sessions int, server *serverTimes, calls []sdk.CallToolParams) {
	// Each session keeps its connection between calls, as separate agents
	// would; the default pool keeps only 2 idle ones per host and would
	// redial for almost every call.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * sessions}}
	defer hc.CloseIdleConnections()
	callers := make([]func(int) error, sessions)
	for i := range callers {
		call, closeSession, err := dial(client, hc, url, calls)
		if err != nil {
			b.Fatal(err)
		}
		defer closeSession()
		// The first call starts the episode and its sandbox: not measured.
		if err := call(0); err != nil {
			b.Fatal(err)
		}
		callers[i] = call
	}
	latencies := make([][]time.Duration, sessions)
	server.reset()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, call := range callers {
		n := b.N / sessions
		if i < b.N%sessions {
			n++
		}
		wg.Go(func() {
			for j := range n {
				t0 := time.Now()
				if err := call(j); err != nil {
					b.Errorf("call: %v", err)
					return
				}
				latencies[i] = append(latencies[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(latencies...)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "calls/s")
	percentiles(b, all, "")
	server.mu.Lock()
	percentiles(b, slices.Clone(server.times), "srv_")
	server.mu.Unlock()
}

// dial opens one session with the named client; call(j) makes the j-th
// call, cycling through calls, and fails on a tool error.
func dial(client string, hc *http.Client, url string, calls []sdk.CallToolParams) (call func(int) error, closeSession func(), err error) {
	ctx := context.Background()
	if client == "raw" {
		s, err := dialRaw(hc, url)
		if err != nil {
			return nil, nil, err
		}
		bodies := make([][]byte, len(calls))
		for i, c := range calls {
			bodies[i] = callBody(c)
		}
		return func(j int) error { return s.call(bodies[j%len(bodies)]) }, func() {}, nil
	}
	c := sdk.NewClient(&sdk.Implementation{Name: "bench", Version: "1"}, nil)
	// A 2025 revision, whose MCP session binds the episode, so that calls
	// carry no handle and the bare server is compared like for like.
	cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: url, HTTPClient: hc, MaxRetries: -1},
		&sdk.ClientSessionOptions{ProtocolVersion: mcp.ProtocolVersion20251125})
	if err != nil {
		return nil, nil, err
	}
	return func(j int) error {
		res, err := cs.CallTool(ctx, &calls[j%len(calls)])
		if err == nil && res.IsError {
			err = fmt.Errorf("tool error: %+v", res.Content)
		}
		return err
	}, func() { cs.Close() }, nil
}

// doer is what rawSession sends requests through: an http.Client, or a
// handler called directly.
type doer interface {
	Do(*http.Request) (*http.Response, error)
}

type handlerClient struct{ h http.Handler }

func (c *handlerClient) Do(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, r)
	return w.Result(), nil
}

// rawSession is a minimal streamable HTTP client: initialize, then POST
// tools/call requests prepared in advance and decode each reply, whether
// JSON or a short SSE stream.
type rawSession struct {
	c       doer
	url, id string
}

func dialRaw(c doer, url string) (*rawSession, error) {
	s := &rawSession{c: c, url: url}
	init := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	resp, err := s.post([]byte(init))
	if err != nil {
		return nil, err
	}
	s.id = resp.Header.Get("Mcp-Session-Id")
	if _, err := decodeReply(resp); err != nil {
		return nil, fmt.Errorf("initialize: %w", err)
	}
	if s.id == "" {
		return nil, errors.New("initialize: no session id")
	}
	resp, err = s.post([]byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("initialized: status %d", resp.StatusCode)
	}
	return s, nil
}

func callBody(c sdk.CallToolParams) []byte {
	b, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": c})
	if err != nil {
		panic(err)
	}
	return b
}

func (s *rawSession) post(body []byte) (*http.Response, error) {
	return s.send(http.MethodPost, body)
}

// send makes a request of the session, with the headers streamable HTTP
// asks for.
func (s *rawSession) send(method string, body []byte) (*http.Response, error) {
	req, err := http.NewRequest(method, s.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if s.id != "" {
		req.Header.Set("Mcp-Session-Id", s.id)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	return s.c.Do(req)
}

func (s *rawSession) call(body []byte) error {
	resp, err := s.post(body)
	if err != nil {
		return err
	}
	res, err := decodeReply(resp)
	if err != nil {
		return err
	}
	var r struct {
		IsError bool `json:"isError"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(res, &r); err != nil || len(r.Content) == 0 || r.IsError {
		return fmt.Errorf("bad tool result: %s", res)
	}
	return nil
}

// decodeReply reads a JSON-RPC response and returns its result.
func decodeReply(resp *http.Response) (json.RawMessage, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// The reply is the data of the last event.
		i := bytes.LastIndex(body, []byte("data: "))
		if i < 0 {
			return nil, fmt.Errorf("no data in event stream: %s", body)
		}
		body, _, _ = bytes.Cut(body[i+len("data: "):], []byte("\n"))
	}
	var msg struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		return nil, fmt.Errorf("decode reply %q: %w", body, err)
	}
	if msg.Error != nil {
		return nil, errors.New(msg.Error.Message)
	}
	return msg.Result, nil
}
