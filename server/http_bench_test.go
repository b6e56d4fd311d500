package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"

	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/sandbox/local"
	"github.com/mlab/mlab/tasks"
)

// BenchmarkHTTPCalls measures cheap tool calls (list_files and read_file of
// a small file, alternating) over streamable HTTP with 1, 8 and 64
// concurrent sessions on the local backend, beside the same client calling a
// bare mcp-go server whose one tool does nothing, in the same run. It reports
// calls/s, the p50/p99 latency a client sees and the p50/p99 time the server
// spends on a request (srv_p50_ms, srv_p99_ms).
func BenchmarkHTTPCalls(b *testing.B) {
	mlabTimes, bareTimes := &serverTimes{}, &serverTimes{}
	mlab := httptest.NewServer(mlabTimes.wrap(benchGateway(b)))
	defer mlab.Close()
	bare := httptest.NewServer(bareTimes.wrap(bareServer()))
	defer bare.Close()
	for _, sessions := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("bare/sessions=%d", sessions), func(b *testing.B) {
			runCalls(b, bare.URL+"/mcp", sessions, bareTimes, []sdk.CallToolParams{{Name: "noop", Arguments: map[string]any{}}})
		})
		b.Run(fmt.Sprintf("mlab/sessions=%d", sessions), func(b *testing.B) {
			runCalls(b, mlab.URL+"/tasks/t/mcp", sessions, mlabTimes, []sdk.CallToolParams{
				{Name: "list_files", Arguments: map[string]any{}},
				{Name: "read_file", Arguments: map[string]any{"file_name": "small.txt"}},
			})
		})
	}
}

func benchGateway(b *testing.B) *Gateway {
	task := fixture(b)
	p, err := local.New(context.Background(), local.Options{Root: b.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	scorer := &eval.Scorer{Provider: p, Python: "/usr/bin/python3"}
	g, err := NewGateway(Options{
		Catalog:   tasks.NewCatalog(nil, taskRoot(task), b.TempDir()),
		Provider:  p,
		Scorer:    scorer,
		Baselines: &eval.Baselines{Scorer: scorer, CacheDir: b.TempDir()},
		RunsDir:   b.TempDir(),
		Budgets:   tasks.Budgets{MaxSteps: 1 << 30},
		Metrics:   NewMetrics(nil),
		Logger:    zerolog.Nop(),
	}, HTTPOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close(context.Background()) })
	return g
}

// taskRoot is the folder holding a task folder.
func taskRoot(t *tasks.Task) string { return t.Dir[:len(t.Dir)-len(t.Name)-1] }

// bareServer is the floor: mcp-go's streamable HTTP with a no-op tool, on
// the same protocol revisions mlab serves.
func bareServer() http.Handler {
	s := mcpserver.NewMCPServer("bare", "1")
	s.AddTool(mcp.NewTool("noop"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("ok"), nil
	})
	return mcpserver.NewStreamableHTTPServer(s,
		mcpserver.WithStreamableHTTPProtocolVersions(mcp.ProtocolVersion20251125, mcp.ProtocolVersion20250618, mcp.ProtocolVersion20250326))
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

// runCalls spreads b.N calls over sessions concurrent clients.
func runCalls(b *testing.B, url string, sessions int, server *serverTimes, calls []sdk.CallToolParams) {
	ctx := context.Background()
	// Each session keeps its connection between calls, as separate agents
	// would; the default pool keeps only 2 idle ones per host and would
	// redial for almost every call.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * sessions}}
	defer hc.CloseIdleConnections()
	clients := make([]*sdk.ClientSession, sessions)
	for i := range clients {
		c := sdk.NewClient(&sdk.Implementation{Name: "bench", Version: "1"}, nil)
		cs, err := c.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: url, HTTPClient: hc, MaxRetries: -1}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		// The first call starts the episode and its sandbox: not measured.
		if _, err := cs.CallTool(ctx, &calls[0]); err != nil {
			b.Fatal(err)
		}
		clients[i] = cs
	}
	latencies := make([][]time.Duration, sessions)
	server.reset()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, cs := range clients {
		n := b.N / sessions
		if i < b.N%sessions {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				t0 := time.Now()
				res, err := cs.CallTool(ctx, &calls[j%len(calls)])
				if err != nil || res.IsError {
					b.Errorf("call: %v %+v", err, res)
					return
				}
				latencies[i] = append(latencies[i], time.Since(t0))
			}
		}()
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
