package local

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/runlog"
	"github.com/mlab/mlab/sandbox"
)

// BenchmarkFork measures forking an episode's workspace against copying it,
// in the same run, for a workspace of one 200 MB file and one of 2,000
// small files. Each iteration does, in an order that rotates so that
// neither always runs after the other has warmed or dirtied a cache:
//
//   - storage: runlog.CreateFrom of the parent's snapshot and LinkTree of
//     it, the fork's whole cost on disk;
//   - fork: the same plus creating a jailed sandbox with the tree as its
//     Base, the fork as an episode gets it;
//   - copy: sandbox.CopyDir of the parent's workspace into a fresh
//     directory, a plain recursive copy;
//   - sandbox-copy: creating a jailed sandbox with the workspace as its
//     Files, which is what a fork would cost without Base.
//
// It reports the median of each in milliseconds and the ratios copy/fork
// and sandbox-copy/fork, plus the fork's first snapshot (first-snapshot):
// a new run log has no stat cache, so it hashes every file once.
func BenchmarkFork(b *testing.B) {
	if _, err := probeBwrap(context.Background()); err != nil {
		b.Skipf("bubblewrap not usable on this host: %v", err)
	}
	for _, shape := range []struct {
		name  string
		files int
		size  int
	}{
		{"one 200MB file", 1, 200 << 20},
		{"2000 small files", 2000, 2 << 10},
	} {
		b.Run(shape.name, func(b *testing.B) {
			benchFork(b, shape.files, shape.size)
		})
	}
}

func benchFork(b *testing.B, files, size int) {
	ctx := context.Background()
	tmp := b.TempDir()
	ws := filepath.Join(tmp, "parent-ws")
	rng := rand.NewChaCha8([32]byte{1})
	for i := range files {
		data := make([]byte, size)
		_, _ = rng.Read(data)
		p := filepath.Join(ws, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%04d.bin", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	runs := filepath.Join(tmp, "runs")
	parent, err := runlog.Create(runs, "parent")
	if err != nil {
		b.Fatal(err)
	}
	defer parent.Close()
	snap, err := parent.Snapshot(ctx, ws, runlog.StepSnapshot(1))
	if err != nil {
		b.Fatal(err)
	}
	p, err := New(ctx, Options{Root: filepath.Join(tmp, "sandboxes"), Isolation: IsolationBwrap, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}

	n := 0
	fork := func(withSandbox bool, snapshotted *[]time.Duration) time.Duration {
		n++
		start := time.Now()
		child, err := runlog.CreateFrom(runs, fmt.Sprintf("child-%d", n), parent.Dir(), snap)
		if err != nil {
			b.Fatal(err)
		}
		lower := filepath.Join(child.Dir(), "lower")
		modes, err := child.LinkTree(ctx, runlog.ForkSnapshot, lower)
		if err != nil {
			b.Fatal(err)
		}
		var sb sandbox.Sandbox
		if withSandbox {
			if sb, err = p.Create(ctx, sandbox.Spec{Base: &sandbox.Base{Dir: lower, Modes: modes}}); err != nil {
				b.Fatal(err)
			}
		}
		took := time.Since(start)
		if sb != nil {
			if !isOverlay(b, sb.Workspace()) {
				b.Fatal("the fork was copied, not mounted copy-on-write: this measures nothing")
			}
			start := time.Now()
			if _, err := child.Snapshot(ctx, sb.Workspace(), runlog.StepSnapshot(1)); err != nil {
				b.Fatal(err)
			}
			*snapshotted = append(*snapshotted, time.Since(start))
			if err := sb.Close(); err != nil {
				b.Fatal(err)
			}
		}
		child.Close()
		if err := os.RemoveAll(child.Dir()); err != nil {
			b.Fatal(err)
		}
		return took
	}
	plainCopy := func() time.Duration {
		dst := filepath.Join(tmp, "copy")
		start := time.Now()
		if err := sandbox.CopyDir(ctx, ws, dst); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		if err := os.RemoveAll(dst); err != nil {
			b.Fatal(err)
		}
		return took
	}
	sandboxCopy := func() time.Duration {
		start := time.Now()
		sb, err := p.Create(ctx, sandbox.Spec{Files: ws})
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		if err := sb.Close(); err != nil {
			b.Fatal(err)
		}
		return took
	}

	var tStorage, tFork, tCopy, tSandboxCopy, tSnapshot []time.Duration
	steps := []func(){
		func() { tStorage = append(tStorage, fork(false, nil)) },
		func() { tFork = append(tFork, fork(true, &tSnapshot)) },
		func() { tCopy = append(tCopy, plainCopy()) },
		func() { tSandboxCopy = append(tSandboxCopy, sandboxCopy()) },
	}
	for _, step := range steps { // warm the page cache and the jail's binaries
		step()
	}
	tStorage, tFork, tCopy, tSandboxCopy, tSnapshot = nil, nil, nil, nil, nil
	for i := 0; b.Loop(); i++ {
		for j := range steps {
			steps[(i+j)%len(steps)]()
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	mStorage, mFork, mCopy, mSandboxCopy := median(tStorage), median(tFork), median(tCopy), median(tSandboxCopy)
	b.ReportMetric(ms(mStorage), "storage-ms")
	b.ReportMetric(ms(mFork), "fork-ms")
	b.ReportMetric(ms(mCopy), "copy-ms")
	b.ReportMetric(ms(mSandboxCopy), "sandbox-copy-ms")
	b.ReportMetric(ms(median(tSnapshot)), "first-snapshot-ms")
	b.ReportMetric(float64(mCopy)/float64(mStorage), "copy/storage")
	b.ReportMetric(float64(mSandboxCopy)/float64(mFork), "sandbox-copy/fork")
}
