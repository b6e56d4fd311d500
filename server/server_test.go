package server

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/rs/zerolog"

	"github.com/mlab/mlab/eval"
	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
	"github.com/mlab/mlab/sandbox/local"
	"github.com/mlab/mlab/tasks"
)

// fixture writes a task whose eval reads score.txt.
func fixture(tb testing.TB) *tasks.Task { return fixtureWith(tb, nil) }

// localProvider is a local sandbox backend in a temporary folder.
func localProvider(tb testing.TB) *local.Provider {
	tb.Helper()
	p, err := local.New(context.Background(), local.Options{Root: tb.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// connect serves opts over in-memory pipes with the stdio transport and
// returns a go-sdk client session to it.
func connect(tb testing.TB, opts Options) (*Server, *mcp.ClientSession) {
	tb.Helper()
	ctx := context.Background()
	if opts.Task == nil {
		opts.Task = fixture(tb)
	}
	if opts.Provider == nil {
		opts.Provider = localProvider(tb)
	}
	opts.Scorer = &eval.Scorer{Provider: opts.Provider, Python: "/usr/bin/python3"}
	opts.Baselines = &eval.Baselines{Scorer: opts.Scorer, CacheDir: tb.TempDir()}
	opts.RunsDir = tb.TempDir()
	opts.Logger = zerolog.Nop()
	srv, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	served := make(chan struct{})
	go func() {
		srv.ServeStdio(ctx, c2sR, s2cW)
		s2cW.Close()
		close(served)
	}()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: s2cR, Writer: c2sW}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c2sW.Close()
		<-served
	})
	return srv, cs
}

func callText(tb testing.TB, cs *mcp.ClientSession, name string, args map[string]any) (string, bool) {
	tb.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return res.Content[0].(*mcp.TextContent).Text, res.IsError
}

func TestBudgets(t *testing.T) {
	tests := []struct {
		name    string
		budgets tasks.Budgets
		calls   int
		want    string
	}{
		{"steps", tasks.Budgets{MaxSteps: 2}, 2, "step budget is spent (2 of 2"},
		{"time", tasks.Budgets{MaxTime: tasks.Duration(300 * time.Millisecond)}, 1, "time budget is spent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, cs := connect(t, Options{Budgets: tc.budgets})
			for range tc.calls {
				if text, isErr := callText(t, cs, "list_files", nil); isErr {
					t.Fatalf("call within budget failed: %s", text)
				}
			}
			time.Sleep(400 * time.Millisecond)
			if text, isErr := callText(t, cs, "read_file", map[string]any{"file_name": "small.txt"}); !isErr || !strings.Contains(text, tc.want) {
				t.Fatalf("over budget: %q (isError %v), want %q", text, isErr, tc.want)
			}
			// final_answer is always allowed.
			if text, isErr := callText(t, cs, "final_answer", map[string]any{"final_answer": "x"}); isErr || !strings.Contains(text, "submission") {
				t.Fatalf("final_answer over budget: %q", text)
			}
		})
	}
}

func TestOneEpisodePerSession(t *testing.T) {
	srv, cs := connect(t, Options{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			callText(t, cs, "list_files", nil)
		}()
	}
	wg.Wait()
	n := srv.episodeCount()
	runs, _ := filepath.Glob(filepath.Join(srv.opts.RunsDir, "*"))
	if n != 1 || len(runs) != 1 {
		t.Errorf("8 concurrent first calls made %d episodes and %d run dirs, want 1", n, len(runs))
	}
}

// gatedProvider holds every Create until release is closed, and says on
// entered when one has begun.
type gatedProvider struct {
	sandbox.Provider
	entered chan sandbox.Spec
	release chan struct{}
	made    chan sandbox.Sandbox
}

func (p *gatedProvider) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	p.entered <- spec
	<-p.release
	sb, err := p.Provider.Create(ctx, spec)
	if err == nil {
		p.made <- sb
	}
	return sb, err
}

// A client that goes away while its sandbox is still being made must not
// leave that sandbox behind until the idle timeout.
func TestSessionEndsWhileSandboxIsMade(t *testing.T) {
	p := &gatedProvider{Provider: localProvider(t), entered: make(chan sandbox.Spec, 1), release: make(chan struct{}), made: make(chan sandbox.Sandbox, 1)}
	runs := t.TempDir()
	g := testGateway(t, p, runs)
	hs := httptest.NewServer(g)
	defer hs.Close()

	s, err := dialRaw(hs.Client(), hs.URL+"/tasks/t/mcp")
	if err != nil {
		t.Fatal(err)
	}
	called := make(chan error, 1)
	go func() { called <- s.call(callBody(mlabCalls[0])) }()
	<-p.entered
	resp, err := s.send(http.MethodDelete, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	close(p.release)
	sb := <-p.made
	if err := <-called; err == nil {
		t.Error("the call of an ended session succeeded")
	}
	if _, err := os.Stat(sb.Workspace()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("sandbox workspace still there: %v", err)
	}
	dirs, _ := filepath.Glob(filepath.Join(runs, "*"))
	if len(dirs) != 1 {
		t.Fatalf("run dirs: %v", dirs)
	}
	r, err := runlog.ReadResult(dirs[0])
	if err != nil || r.Status != runlog.StatusAborted {
		t.Errorf("result %+v (%v), want aborted", r, err)
	}
	if n := g.endpoints["t"].srv.episodeCount(); n != 0 {
		t.Errorf("%d episodes left", n)
	}
}
