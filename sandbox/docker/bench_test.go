package docker

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/mlab/mlab/sandbox"
)

// BenchmarkSandbox compares mlab's docker backend with raw Docker API calls
// in the same run: ready (Provider.Create: workspace, quota, copy, create,
// start) against raw_create_start, and Exec of a trivial command against
// raw_exec (exec create, attach, read to EOF, inspect). The ratios are the
// backend's overhead.
func BenchmarkSandbox(b *testing.B) {
	p, cli := newProvider(b, Options{})
	// The raw baseline creates the very same container (same image, lock-down
	// and limits, a plain bind-mounted folder), so the ratio is what the
	// backend adds: quota mount, copy, chown, labels, bookkeeping.
	b.Run("raw_create_start", func(b *testing.B) {
		cfg, host := p.containerConfig(sandbox.Spec{}, sandbox.Limits{}.WithDefaults(), b.TempDir())
		for i := 0; i < b.N; i++ {
			ctx := context.Background()
			c, err := cli.ContainerCreate(ctx, cfg, host, nil, nil, "")
			if err != nil {
				b.Fatal(err)
			}
			if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			b.StartTimer()
		}
	})
	b.Run("ready", func(b *testing.B) {
		files := b.TempDir()
		for i := 0; i < b.N; i++ {
			sb, err := p.Create(context.Background(), sandbox.Spec{Session: "bench", Run: "bench", Files: files})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			sb.Close()
			b.StartTimer()
		}
	})
	sb, err := p.Create(context.Background(), sandbox.Spec{Session: "bench", Run: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	id := sb.(*Sandbox).ID()
	b.Run("raw_exec", func(b *testing.B) {
		for b.Loop() {
			rawExec(b, cli, id)
		}
	})
	b.Run("exec", func(b *testing.B) {
		for b.Loop() {
			res, err := sb.Exec(context.Background(), sandbox.ExecRequest{Args: []string{"true"}})
			if err != nil || res.ExitCode != 0 {
				b.Fatalf("%+v %v", res, err)
			}
		}
	})
	// On a loaded machine two runs in a row see different loads; this one
	// alternates the two and reports the ratio of their medians.
	b.Run("interleaved", func(b *testing.B) {
		var raw, ours []time.Duration
		for b.Loop() {
			t0 := time.Now()
			rawExec(b, cli, id)
			t1 := time.Now()
			if _, err := sb.Exec(context.Background(), sandbox.ExecRequest{Args: []string{"true"}}); err != nil {
				b.Fatal(err)
			}
			raw, ours = append(raw, t1.Sub(t0)), append(ours, time.Since(t1))
		}
		median := func(d []time.Duration) float64 {
			slices.Sort(d)
			return float64(d[len(d)/2])
		}
		b.ReportMetric(median(raw)/1e6, "raw-ms")
		b.ReportMetric(median(ours)/1e6, "exec-ms")
		b.ReportMetric(median(ours)/median(raw), "ratio")
	})
}

func rawExec(b *testing.B, cli *client.Client, id string) {
	ctx := context.Background()
	e, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: []string{"true"}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := cli.ContainerExecAttach(ctx, e.ID, container.ExecAttachOptions{})
	if err != nil {
		b.Fatal(err)
	}
	stdcopy.StdCopy(io.Discard, io.Discard, conn.Reader)
	conn.Close()
	if info, err := cli.ContainerExecInspect(ctx, e.ID); err != nil || info.ExitCode != 0 {
		b.Fatalf("%+v %v", info, err)
	}
}
