// Package leakprobe tests, from inside a sandbox, that no script can read
// the binary of the process that made it. mlab's binary embeds every
// built-in task's hidden scripts and answers, so its bytes must stay out of
// every sandbox. A test binary that imports this package carries Marker, as
// mlab carries the answers; the probe looks for it in every file a script
// can reach that might be the binary. It is for tests only.
package leakprobe

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Marker is compiled into every binary that imports this package.
const Marker = "mlab-binary-marker-7f3a91c2e5"

// ControlFile is written into the workspace: a slice of the test binary
// around Marker, which the probe must find.
const ControlFile = "leakprobe-control.bin"

// script tries every way a script has to a binary's bytes: files bound over
// single paths, the workspace, the /proc links of every process it can see,
// the bin folders and the paths it is given after the marker. It prints each
// file that holds the marker, which it gets reversed so that its own command
// line never matches.
const script = `import os, sys
marker = sys.argv[1][::-1].encode()
cands = sys.argv[2:] + ['/.mlab-init'] + os.listdir('.')
for line in open('/proc/self/mountinfo'):
    cands.append(line.split()[4])
for pid in os.listdir('/proc'):
    if not pid.isdigit():
        continue
    cands.append('/proc/%s/exe' % pid)
    for sub in ('fd', 'map_files'):
        try:
            cands += ['/proc/%s/%s/%s' % (pid, sub, f) for f in os.listdir('/proc/%s/%s' % (pid, sub))]
        except OSError:
            pass
for d in os.environ.get('PATH', '').split(':') + ['/usr/local/bin', '/usr/bin', '/usr/sbin', '/usr/local/sbin', '/sbin', '/bin']:
    try:
        cands += [os.path.join(d, n) for n in os.listdir(d)]
    except OSError:
        pass
read = 0
for c in cands:
    try:
        if not os.path.isfile(c):
            continue
        with open(c, 'rb') as f:
            data = f.read()
    except OSError:
        continue
    read += 1
    if marker in data:
        print('LEAK', c)
print('READ', read)
`

// Setup writes the probe and its control file into the workspace ws and
// returns the command to run there: python, then the probe, then extra
// paths for it to try. The probe looks for Marker.
func Setup(tb testing.TB, ws, python string, extra ...string) []string {
	tb.Helper()
	return SetupSecret(tb, ws, python, Marker, extra...)
}

// SetupSecret is Setup for a probe that looks for secret, a line of text
// the test binary holds, such as a line of a hidden script it embeds.
func SetupSecret(tb testing.TB, ws, python, secret string, extra ...string) []string {
	tb.Helper()
	if secret == "" || strings.ContainsAny(secret, "\x00\n") {
		tb.Fatalf("the secret to probe for must be one non-empty line, got %q", secret)
	}
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		tb.Fatal(err)
	}
	at := bytes.Index(data, []byte(secret))
	if at < 0 {
		tb.Fatalf("%q is not in the test binary %s", secret, exe)
	}
	control := data[max(0, at-32<<10):min(len(data), at+32<<10)]
	if err := os.WriteFile(filepath.Join(ws, ControlFile), control, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "leakprobe.py"), []byte(script), 0o644); err != nil {
		tb.Fatal(err)
	}
	marker := []byte(secret)
	slices.Reverse(marker)
	return append([]string{python, "-u", "leakprobe.py", string(marker)}, extra...)
}

// Leaks returns the files in which the probe, whose output is stdout, found
// the marker, the control file aside. It fails the test when the probe did
// not finish or did not find the marker in its control: then the marker is
// not where it should be, or the probe cannot read what it opens, and an
// empty list would prove nothing.
func Leaks(tb testing.TB, stdout string) []string {
	tb.Helper()
	if !strings.Contains(stdout, "READ ") {
		tb.Fatalf("the probe did not finish: %q", stdout)
	}
	var leaks []string
	control := false
	for _, line := range strings.Split(stdout, "\n") {
		f, ok := strings.CutPrefix(line, "LEAK ")
		switch {
		case !ok:
		case f == ControlFile:
			control = true
		default:
			leaks = append(leaks, f)
		}
	}
	if !control {
		tb.Fatalf("the probe did not find the marker in its control file: %s", stdout)
	}
	_, read, _ := strings.Cut(stdout, "READ ")
	tb.Logf("the probe read %s files", strings.TrimSpace(read))
	return leaks
}
