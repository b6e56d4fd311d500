package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mlab/mlab/runlog"
)

// hostileTask is a task whose eval, like many real ones, runs the
// submission's train.py as a subprocess and then reads files of its own and
// of the task: every way that code could reach the eval's result, its hidden
// files or the task's data is an attack the suite below tries.
var hostileTask = map[string]string{
	"env/train.py":       "open('out.txt', 'w').write('0.5')\nprint('trained')\n",
	"env/data/train.csv": "x\n1\n",
	"scripts/eval.py": `import os, subprocess, sys
HERE = os.path.dirname(os.path.abspath(__file__))
def get_score(d):
    subprocess.run([sys.executable, 'train.py'], cwd=d, check=True, timeout=120)
    if open(os.path.join(d, 'data', 'train.csv')).read() != 'x\n1\n':
        return 1000.0
    weight = float(open(os.path.join(HERE, 'weight.txt')).read())
    return float(open(os.path.join(d, 'out.txt')).read()) * weight
`,
	"scripts/weight.txt":           "1",
	"scripts/secret.txt":           "HIDDEN-SECRET-7f3a",
	"scripts/research_problem.txt": "Make out.txt as large as you can.",
	"scripts/read_only_files.txt":  "data/*\n",
	"task.yaml":                    "metric: score\ndirection: higher\nbaseline: 0.5\n",
}

// The honest score of the unchanged train.py, which is also the baseline.
const honestScore = "score = 0.5"

// hostState is what no attack may change: kernel knobs an escape would set,
// and folders of the host the sandbox must not reach.
type hostState map[string]string

func readHostState(t *testing.T, dirs ...string) hostState {
	t.Helper()
	st := hostState{}
	for _, f := range []string{"/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sys/kernel/hostname"} {
		b, err := os.ReadFile(f)
		if err == nil {
			st[f] = string(b)
		}
	}
	for _, d := range dirs {
		h := sha256.New()
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s %v %d\n", p, info.Mode(), info.Size())
			if e.Type().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				h.Write(b)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("hash %s: %v", d, err)
		}
		st[d] = hex.EncodeToString(h.Sum(nil))
	}
	return st
}

// victim keeps a second session working while the attacks run: each round
// writes a script, runs it and checks its output, so an attack that disturbs
// other episodes (or the server) shows up as a failed round.
func victim(h *harness, stop <-chan struct{}) (rounds int, err error) {
	call := func(name string, args map[string]any) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		res, err := h.cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		var text string
		if len(res.Content) > 0 {
			text = res.Content[0].(*mcp.TextContent).Text
		}
		if res.IsError {
			return text, fmt.Errorf("%s failed: %s", name, text)
		}
		return text, nil
	}
	for {
		select {
		case <-stop:
			return rounds, nil
		default:
		}
		n := rounds + 1000
		script := fmt.Sprintf("print('SUM', sum(range(%d)))\nopen('victim.txt', 'w').write('%d')\n", n, n)
		if _, err := call("write_file", map[string]any{"file_name": "work.py", "content": script}); err != nil {
			return rounds, err
		}
		want := fmt.Sprintf("SUM %d", n*(n-1)/2)
		if out, err := call("execute_script", map[string]any{"script_name": "work.py"}); err != nil || !strings.Contains(out, want) {
			return rounds, fmt.Errorf("round %d: execute_script = %q, %v; want %q", rounds, out, err, want)
		}
		if out, err := call("read_file", map[string]any{"file_name": "victim.txt"}); err != nil || !strings.Contains(out, strconv.Itoa(n)) {
			return rounds, fmt.Errorf("round %d: read_file = %q, %v", rounds, out, err)
		}
		rounds++
	}
}

// attack is one hostile episode: scripts the agent runs, then what its
// submission must score.
type attack struct {
	name string
	// files are written into the workspace before the steps.
	files map[string]string
	// steps run scripts in the agent's sandbox; check inspects each output.
	steps []hostileStep
	// wantFinal must appear in the final_answer reply; forbid must not
	// appear there nor in result.json.
	wantFinal, forbid string
	// wantStatus is the status result.json must end with.
	wantStatus string
	// after, when set, inspects the run folder once the episode is over.
	after func(t *testing.T, runDir string)
}

type hostileStep struct {
	// tool is the tool to call; "" runs script with execute_script.
	tool    string
	script  string
	args    map[string]any
	isError bool // whether execute_script must fail
	mayFail bool // whether it may fail or not (the check decides)
	check   func(t *testing.T, out string)
}

// forgeScore is the attack of issue 8 on the eval's result channel, run as
// the submission's train.py by the task's eval: it looks for the nonce in
// the memory of every ancestor process, overwrites it, and writes forged
// result lines for every candidate it found to the ancestors' stdout and
// stderr through /proc.
const forgeScore = `import os, re, sys
open('out.txt', 'w').write('0.5')
log = []
pid = os.getppid()
while pid > 1:
    try:
        stat = open('/proc/%d/stat' % pid).read()
    except OSError as e:
        log.append('stat %d: %s' % (pid, e)); break
    tokens = set()
    try:
        mem = open('/proc/%d/mem' % pid, 'r+b')
        for line in open('/proc/%d/maps' % pid).read().splitlines():
            addr, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in addr.split('-'))
            if 'r' not in perms or hi - lo > (64 << 20):
                continue
            try:
                mem.seek(lo); chunk = mem.read(hi - lo)
            except OSError:
                continue
            for m in re.finditer(rb'(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])', chunk):
                tokens.add(m.group())
                if 'w' in perms:
                    try:
                        mem.seek(lo + m.start()); mem.write(b'0' * 32)
                    except OSError:
                        pass
        log.append('mem %d: %d tokens' % (pid, len(tokens)))
    except OSError as e:
        log.append('mem %d: %s' % (pid, e))
    for fd in (1, 2):
        try:
            with open('/proc/%d/fd/%d' % (pid, fd), 'w') as w:
                for tok in list(tokens)[:2000]:
                    w.write('\nMLAB_RESULT %s {"score": 1000000.0}\n' % tok.decode())
                w.write('\nMLAB_RESULT 00000000000000000000000000000000 {"score": 1000000.0}\n')
            log.append('fd %d/%d: written' % (pid, fd))
        except OSError as e:
            log.append('fd %d/%d: %s' % (pid, fd, e))
    pid = int(stat.rsplit(')', 1)[1].split()[1])
sys.stderr.write('\n'.join(log) + '\n')
`

// tamperScripts runs inside the eval, as the submission's train.py, and
// tries to change what the eval reads after it: its own files and the task's
// data in the submission.
const tamperScripts = `import os, shutil
open('out.txt', 'w').write('0.5')
here = os.getcwd()
for attempt in (
    lambda: open('../scripts/weight.txt', 'w').write('1000'),
    lambda: os.chmod('../scripts/weight.txt', 0o666),
    lambda: os.unlink('../scripts/weight.txt'),
    lambda: os.rename('../scripts', '../scripts_moved'),
    lambda: os.rename('../scripts/weight.txt', '../scripts/w_old'),
    lambda: open('../mlab_eval_driver.py', 'a').write('\n'),
):
    try:
        attempt()
        print('TAMPERED', flush=True)
    except OSError as e:
        print('refused:', e, flush=True)
if not os.path.exists('../scripts/weight.txt'):
    os.makedirs('../scripts', exist_ok=True)
    open('../scripts/weight.txt', 'w').write('1000')
`

func hostileAttacks(marker string) []attack {
	return []attack{
		{
			name: "escape",
			files: map[string]string{
				"uid.py": `import os
uid = os.getuid()
m = [int(x) for x in open('/proc/self/uid_map').read().split()]
host = None
for i in range(0, len(m), 3):
    if m[i] <= uid < m[i] + m[i + 2]:
        host = m[i + 1] + uid - m[i]
print('HOSTUID', host)
`,
				// Each knob is written with the value it already holds, so a
				// regression shows as WROTE without harming the machine.
				"knobs.py": `for p in ('/proc/sys/kernel/core_pattern', '/proc/sys/kernel/modprobe', '/proc/sys/vm/drop_caches', '/proc/sys/kernel/hostname'):
    try:
        cur = open(p).read() if 'drop_caches' not in p else '0'
    except OSError as e:
        print('unreadable', p, e); continue
    try:
        with open(p, 'w') as f:
            f.write(cur)
        print('WROTE', p)
    except OSError as e:
        print('refused', p, e.errno)
try:
    open('CANARY/canary.txt', 'w').write('reached')
    print('WROTE canary')
except OSError as e:
    print('refused canary', e.errno)
`,
				"setsid.py": `import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp('sleep', ['sleep', sys.argv[1]])
    os._exit(0)
os.wait()
print('spawned')
`,
				"bomb.py": "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n",
				"fill.py": `import sys
total = 0
try:
    with open(sys.argv[1], 'wb') as f:
        while total < (4 << 30):
            f.write(b'x' * (1 << 20)); f.flush(); total += 1 << 20
except OSError as e:
    print('STOPPED', total >> 20, 'MiB errno', e.errno)
`,
				"rm.py":   "import os\nos.remove('big.bin')\nprint('removed')\n",
				"slow.py": "import time\ntime.sleep(15)\nprint('slept through')\n",
			},
			steps: []hostileStep{
				{script: "uid.py", check: func(t *testing.T, out string) {
					if !strings.Contains(out, "HOSTUID ") || strings.Contains(out, "HOSTUID 0\n") || strings.Contains(out, "HOSTUID None") {
						t.Errorf("scripts must run as an unprivileged host uid: %q", out)
					}
				}},
				{script: "knobs.py", check: func(t *testing.T, out string) {
					if strings.Contains(out, "WROTE") {
						t.Errorf("a kernel knob is writable from the sandbox: %q", out)
					}
				}},
				{script: "setsid.py", args: map[string]any{"args": []string{marker}}, check: func(t *testing.T, out string) {
					waitGone(t, "sleep "+marker)
				}},
				{script: "bomb.py", args: map[string]any{"timeout_s": 3}, isError: true},
				{script: "fill.py", args: map[string]any{"args": []string{"big.bin"}}, check: func(t *testing.T, out string) {
					mib, errno := stoppedAt(t, out)
					if mib > 64 || (errno != 28 && errno != 27) {
						t.Errorf("a 64 MiB workspace took %d MiB (errno %d): %q", mib, errno, out)
					}
				}},
				// An honest agent cleans up before it submits: the full
				// workspace would not fit the eval's copy.
				{script: "rm.py", check: func(t *testing.T, out string) {
					if !strings.Contains(out, "removed") {
						t.Errorf("rm.py: %q", out)
					}
				}},
				// /tmp is bounded too: by a size cap or by the memory limit
				// its pages count against, which may end in an OOM kill.
				{script: "fill.py", args: map[string]any{"args": []string{"/tmp/big.bin"}}, mayFail: true, check: func(t *testing.T, out string) {
					var mib int
					if i := strings.Index(out, "STOPPED "); i >= 0 {
						fmt.Sscanf(out[i:], "STOPPED %d", &mib)
					}
					if mib > 1024 {
						t.Errorf("/tmp of the sandbox took %d MiB", mib)
					}
				}},
				{script: "slow.py", args: map[string]any{"timeout_s": 9223372037}, isError: true, check: func(t *testing.T, out string) {
					if strings.Contains(out, "slept through") {
						t.Errorf("an overflowing timeout_s switched the timeout off: %q", out)
					}
				}},
			},
			wantFinal: honestScore, wantStatus: runlog.StatusScored,
		},
		{
			name:      "forge-score",
			files:     map[string]string{"train.py": forgeScore},
			wantFinal: honestScore, forbid: "1000000", wantStatus: runlog.StatusScored,
		},
		{
			name: "leak-hidden-scripts",
			// The secret lands both in the eval's stderr and in the message
			// of the exception that fails the eval.
			files:     map[string]string{"train.py": "import sys\nsecret = open('../scripts/secret.txt').read()\nopen('out.txt', 'w').write(secret)\nsys.stderr.write(secret * 3)\n"},
			wantFinal: "invalid", forbid: "HIDDEN-SECRET", wantStatus: runlog.StatusInvalid,
		},
		{
			name: "swap-protected-dir",
			files: map[string]string{"swap.py": `import os
os.rename('data', 'data_old')
os.mkdir('data')
open('data/train.csv', 'w').write('poisoned')
print('swapped')
`},
			steps:     []hostileStep{{script: "swap.py"}},
			wantFinal: honestScore, wantStatus: runlog.StatusScored,
		},
		{
			name:      "tamper-eval-files",
			files:     map[string]string{"train.py": tamperScripts},
			wantFinal: honestScore, wantStatus: runlog.StatusScored,
		},
		{
			// Legal but odd: a tree deeper than PATH_MAX and names that are
			// not UTF-8 (two that differ only in their odd bytes) must be
			// snapshotted, restored and scored as they are.
			name: "odd-trees",
			files: map[string]string{"odd.py": `import os
fd = os.open('.', os.O_RDONLY)
for i in range(700):
    os.mkdir('abcdefgh', dir_fd=fd)
    nfd = os.open('abcdefgh', os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nfd
leaf = os.open('leaf.txt', os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
os.write(leaf, b'deep')
for name in (b'odd-\xff', b'odd-\xfe'):
    open(name, 'wb').write(name)
print('built')
`},
			steps:     []hostileStep{{script: "odd.py", check: func(t *testing.T, out string) { wantIn(t, out, "built") }}},
			wantFinal: honestScore, wantStatus: runlog.StatusScored,
			after: func(t *testing.T, runDir string) {
				raw, err := os.ReadFile(filepath.Join(runDir, "snapshots", "final.json"))
				if err != nil {
					t.Fatal(err)
				}
				var m runlog.Manifest
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatalf("final manifest: %v", err)
				}
				found := map[string]bool{}
				for _, e := range m.Entries {
					switch {
					case strings.HasSuffix(e.Path, "/leaf.txt") && len(e.Path) > 4096:
						found["leaf"] = true
					case e.Path == "odd-\xff" || e.Path == "odd-\xfe":
						found[e.Path] = true
					}
				}
				if len(found) != 3 {
					t.Errorf("the final snapshot holds %v of the deep leaf and the two odd names", found)
				}
			},
		},
		{
			// Input sized to hurt: refused huge writes must not bloat the
			// trace, and an edit whose old_text is half a 2 MB file of one
			// letter must be answered in linear time.
			name: "bloat",
			steps: []hostileStep{
				{tool: "write_file", args: map[string]any{"file_name": "huge.txt", "content": strings.Repeat("x", 20<<20)}, isError: true},
				{tool: "write_file", args: map[string]any{"file_name": "huge.txt", "content": strings.Repeat("y", 20<<20)}, isError: true},
				{tool: "write_file", args: map[string]any{"file_name": "a.txt", "content": strings.Repeat("a", 2<<20)}},
				{tool: "edit_script", args: map[string]any{"script_name": "a.txt", "old_text": strings.Repeat("a", 1<<20), "new_text": "b"}, isError: true},
			},
			wantFinal: honestScore, wantStatus: runlog.StatusScored,
			after: func(t *testing.T, runDir string) {
				info, err := os.Stat(filepath.Join(runDir, "trace.jsonl"))
				if err != nil || info.Size() > 1<<20 {
					t.Errorf("trace.jsonl after 40 MiB of refused writes: %v bytes, %v", info.Size(), err)
				}
			},
		},
		{
			name:      "infinite-improvement",
			files:     map[string]string{"train.py": "open('out.txt', 'w').write('1e308')\n"},
			wantFinal: "invalid", wantStatus: runlog.StatusInvalid,
		},
	}
}

func wantIn(t *testing.T, out, want string) {
	t.Helper()
	if !strings.Contains(out, want) {
		t.Errorf("output %.300q lacks %q", out, want)
	}
}

func stoppedAt(t *testing.T, out string) (mib, errno int) {
	t.Helper()
	i := strings.Index(out, "STOPPED ")
	if i < 0 {
		t.Errorf("the filler did not stop on an error: %q", out)
		return 0, 0
	}
	if _, err := fmt.Sscanf(out[i:], "STOPPED %d MiB errno %d", &mib, &errno); err != nil {
		t.Errorf("parse %q: %v", out[i:], err)
	}
	return mib, errno
}

// waitGone waits until no host process has pattern in its command line.
func waitGone(t *testing.T, pattern string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-f", pattern).Output()
		if len(out) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes matching %q survived their execute_script: %s", pattern, out)
			exec.Command("pkill", "-9", "-f", pattern).Run()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHostileEpisodes runs the attacks of issue 8 through MCP, on both
// backends, while a second session keeps working on the same server, and
// checks that the host, the task's files and the other session are
// untouched and that no attack moved a score.
func TestHostileEpisodes(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		s := startHTTP(t, backend, "http", "", "--memory", "512", "--pids", "64", "--workspace-size", "64",
			"--max-exec-timeout", "5s", "--exec-timeout", "5s", "--max-steps", "100000")
		writeTree(t, filepath.Join(s.tasksDir, "hostile"), hostileTask)
		canary := t.TempDir()
		writeTree(t, canary, map[string]string{"canary.txt": "do not touch"})
		before := readHostState(t, s.tasksDir, canary)

		vh := s.mustConnect(t, "/tasks/hostile/mcp")
		// Its episode exists before any attack starts, so each attack's run
		// folder is the one new folder.
		vh.mustOK(t, "list_files", map[string]any{}, "train.py")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var rounds int
		var verr error
		wg.Add(1)
		go func() { defer wg.Done(); rounds, verr = victim(vh, stop) }()

		marker := strconv.Itoa(600000 + os.Getpid()%100000)
		for _, a := range hostileAttacks(marker) {
			t.Run(a.name, func(t *testing.T) { runAttack(t, s, a, canary) })
		}
		close(stop)
		wg.Wait()
		if verr != nil {
			t.Errorf("the second session broke while the attacks ran (after %d rounds): %v", rounds, verr)
		}
		if rounds == 0 {
			t.Errorf("the second session completed no round while the attacks ran")
		}
		vh.mustOK(t, "final_answer", map[string]any{"final_answer": "done"}, honestScore)
		after := readHostState(t, s.tasksDir, canary)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s changed during the attacks: %q -> %q", k, v, after[k])
			}
		}
	})
}

func runAttack(t *testing.T, s *httpServer, a attack, canary string) {
	existing, _ := filepath.Glob(filepath.Join(s.runsDir, "*"))
	h := s.mustConnect(t, "/tasks/hostile/mcp")
	for name, content := range a.files {
		content = strings.ReplaceAll(content, "CANARY", canary)
		h.mustOK(t, "write_file", map[string]any{"file_name": name, "content": content}, "wrote")
	}
	for _, st := range a.steps {
		tool, args := st.tool, map[string]any{}
		if tool == "" {
			tool, args["script_name"] = "execute_script", st.script
		}
		for k, v := range st.args {
			args[k] = v
		}
		out, isErr := h.call(t, tool, args)
		if isErr != st.isError && !st.mayFail {
			t.Errorf("%s %s: isError = %v, want %v: %.300q", tool, st.script, isErr, st.isError, out)
		}
		if strings.Contains(out, os.TempDir()+"/") || strings.Contains(out, s.runsDir) {
			t.Errorf("%s %s: a host path reached the agent: %.300q", tool, st.script, out)
		}
		if st.check != nil {
			st.check(t, out)
		}
	}
	reply, _ := h.call(t, "final_answer", map[string]any{"final_answer": "done"})
	if !strings.Contains(reply, a.wantFinal) {
		t.Errorf("final_answer = %q, want %q", reply, a.wantFinal)
	}
	dir := newRunDir(t, s.runsDir, existing)
	r, err := runlog.ReadResult(dir)
	if err != nil {
		t.Fatalf("result.json of %s: %v", dir, err)
	}
	if r.Status != a.wantStatus || r.Success {
		t.Errorf("result.json: status %q success %v (score %v, error %q), want status %q and no success",
			r.Status, r.Success, r.Score, r.Error, a.wantStatus)
	}
	if a.after != nil {
		a.after(t, dir)
	}
	if a.forbid != "" {
		raw, _ := os.ReadFile(filepath.Join(dir, "result.json"))
		if strings.Contains(reply, a.forbid) || strings.Contains(string(raw), a.forbid) {
			t.Errorf("%q reached the agent or result.json: reply %q, result %s", a.forbid, reply, raw)
		}
	}
}

// newRunDir is the one run folder in runsDir that is not in existing: the
// episode of the session just played.
func newRunDir(t *testing.T, runsDir string, existing []string) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(runsDir, "*"))
	var fresh []string
	for _, d := range dirs {
		if indexOf(existing, d) < 0 {
			fresh = append(fresh, d)
		}
	}
	if len(fresh) != 1 {
		t.Fatalf("want one new run folder, got %v", fresh)
	}
	return fresh[0]
}
