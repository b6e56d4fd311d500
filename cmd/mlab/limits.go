package main

import (
	"fmt"
	"math"
	"time"

	"github.com/mlab/mlab/server"
)

// Every number from the command line is checked before it is converted or
// multiplied: a MiB count shifted into bytes, or seconds into a Duration,
// wraps around silently when it is too large, and a wrapped limit is
// usually zero or negative, which reads as "no limit".

// mib converts a count of MiB from flag name into bytes; 0 stays 0 (the
// default).
func mib(name string, v int64) (int64, error) {
	if v < 0 {
		return 0, fmt.Errorf("--%s %d: must not be negative", name, v)
	}
	if v > math.MaxInt64>>20 {
		return 0, fmt.Errorf("--%s %d: too large (at most %d MiB)", name, v, int64(math.MaxInt64>>20))
	}
	return v << 20, nil
}

func nonNegative[T int | int64 | time.Duration](name string, v T) error {
	if v < 0 {
		return fmt.Errorf("--%s %v: must not be negative", name, v)
	}
	return nil
}

// maxCPUs bounds --cpus far above any machine yet far below where CPUs
// times 1e9 (docker's NanoCPUs) overflows an int64.
const maxCPUs = 1 << 16

// validate checks the flags every command shares.
func (c *common) validate() error {
	if _, err := mib("workspace-size", c.workspaceMiB); err != nil {
		return err
	}
	// NaN fails every comparison, so the test is written to catch it.
	if !(c.cpus >= 0 && c.cpus <= maxCPUs) {
		return fmt.Errorf("--cpus %v: want a number from 0 (the default) to %d", c.cpus, maxCPUs)
	}
	return nil
}

// validate checks the serve flags.
func (sf *serveFlags) validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{{"memory", sf.memoryMiB}, {"max-request-size", sf.maxRequestMiB}} {
		if _, err := mib(f.name, f.v); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"pids", sf.pids}, {"max-sessions", int64(sf.maxSessions)}, {"max-steps", int64(sf.maxSteps)},
		{"max-conns", int64(sf.maxConns)}, {"max-conns-per-client", int64(sf.maxConnsPerClient)}} {
		if err := nonNegative(f.name, f.v); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"idle-timeout", sf.idleTimeout}, {"shutdown-timeout", sf.shutdownTimeout}, {"max-time", sf.maxTime},
		{"exec-timeout", sf.execTimeout}, {"max-exec-timeout", sf.maxExec}, {"gpu-wait", sf.gpuWait},
		{"progress-every", sf.progressEvery}} {
		if err := nonNegative(f.name, f.v); err != nil {
			return err
		}
	}
	if sf.maxExec > 0 && sf.execTimeout > sf.maxExec {
		return fmt.Errorf("--exec-timeout %s exceeds --max-exec-timeout %s", sf.execTimeout, sf.maxExec)
	}
	return nil
}

// httpLimits are the serve flags' bounds on HTTP clients.
func (sf *serveFlags) httpLimits() (maxBody int64, conns server.ConnLimits) {
	maxBody, _ = mib("max-request-size", sf.maxRequestMiB) // checked by validate
	return maxBody, server.ConnLimits{Total: sf.maxConns, PerClient: sf.maxConnsPerClient}
}
