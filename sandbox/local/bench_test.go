package local

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/sandbox"
)

// benchScript is a short script: the fixed cost of an exec dominates it.
const benchScript = "import sys\nprint('hello', sys.argv[0])\n"

// BenchmarkExec compares Exec in a jailed sandbox with a plain os/exec of the
// same script in the same run. The two alternate within each iteration, so
// load from other work on the machine hits both alike; exec/plain, the ratio
// of their median times, is what the issue bounds at 1.1.
func BenchmarkExec(b *testing.B) {
	if _, err := probeBwrap(context.Background()); err != nil {
		b.Skipf("bubblewrap not usable on this host: %v", err)
	}
	p, err := New(context.Background(), Options{Root: b.TempDir(), Isolation: IsolationBwrap, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	sb, err := p.Create(context.Background(), sandbox.Spec{})
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	if err := os.WriteFile(filepath.Join(sb.Workspace(), "s.py"), []byte(benchScript), 0o644); err != nil {
		b.Fatal(err)
	}
	plainDir := b.TempDir()
	if err := os.WriteFile(filepath.Join(plainDir, "s.py"), []byte(benchScript), 0o644); err != nil {
		b.Fatal(err)
	}
	plain := func() {
		var out bytes.Buffer
		cmd := exec.Command(python, "-u", "s.py")
		cmd.Dir, cmd.Stdout, cmd.Stderr = plainDir, &out, &out
		if err := cmd.Run(); err != nil || !bytes.HasPrefix(out.Bytes(), []byte("hello")) {
			b.Fatalf("plain exec: %v: %s", err, out.Bytes())
		}
	}
	jailed := func() {
		res, err := sb.Exec(context.Background(), sandbox.ExecRequest{Args: []string{python, "-u", "s.py"}})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("sandbox exec: %v: %+v", err, res)
		}
	}
	// Warm both paths (page cache, the jail's first fork).
	plain()
	jailed()
	var tPlain, tExec []time.Duration
	timed := func(f func(), into *[]time.Duration) {
		start := time.Now()
		f()
		*into = append(*into, time.Since(start))
	}
	for i := 0; b.Loop(); i++ {
		// Alternate which goes first, so that neither always runs right
		// after the other has warmed a cache.
		if i%2 == 0 {
			timed(plain, &tPlain)
			timed(jailed, &tExec)
		} else {
			timed(jailed, &tExec)
			timed(plain, &tPlain)
		}
	}
	// Medians: on a shared machine, a few runs that another process
	// delayed by tens of milliseconds would swamp a mean.
	mPlain, mExec := median(tPlain), median(tExec)
	b.ReportMetric(float64(mPlain.Microseconds()), "plain-us")
	b.ReportMetric(float64(mExec.Microseconds()), "exec-us")
	b.ReportMetric(float64(mExec)/float64(mPlain), "exec/plain")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
