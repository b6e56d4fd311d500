package proc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A test binary run with this variable set takes a lease in the folder it
// names, prints the owner ID and then sleeps or, with exit, exits at once.
const helperEnv = "MLAB_PROC_TEST_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		l, err := Acquire(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println(l.ID())
		if os.Getenv(helperEnv+"_EXIT") != "" {
			os.Exit(0) // without Release: the lock file stays, as after a crash
		}
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// holder starts a helper process that holds a lease in dir and returns it
// with the owner ID it printed.
func holder(t *testing.T, dir string, exit bool, wrap ...string) (*exec.Cmd, string) {
	t.Helper()
	args := append(wrap, os.Args[0], "-test.run=^$")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	if exit {
		cmd.Env = append(cmd.Env, helperEnv+"_EXIT=1")
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "lock:") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %q, %v", line, err)
	}
	return cmd, strings.TrimSpace(line)
}

// waitState polls /proc until the process is in state (e.g. "Z").
func waitState(t *testing.T, pid int, state string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil {
			s := string(b)
			if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && f[0] == state {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d never reached state %s", pid, state)
}

func TestHostileServerLiveness(t *testing.T) {
	dir := t.TempDir()

	live, liveID := holder(t, dir, false)
	defer func() { live.Process.Kill(); live.Wait() }()
	if !Alive(liveID) {
		t.Errorf("a running lock holder is judged dead: %s", liveID)
	}
	if pid := PID(liveID); pid != live.Process.Pid {
		t.Errorf("PID(%s) = %d, want %d", liveID, pid, live.Process.Pid)
	}

	// Killed and not reaped: the kernel drops the flock at exit, before
	// the parent collects the zombie, so a zombie server is dead.
	zombie, zombieID := holder(t, dir, false)
	// The leader shows Z as soon as it has exited, while the process's
	// other threads, which share its files, may still be exiting: the
	// lock goes with the last of them, still before anyone reaps it.
	zombie.Process.Kill()
	waitState(t, zombie.Process.Pid, "Z")
	for deadline := time.Now().Add(30 * time.Second); Alive(zombieID); {
		if time.Now().After(deadline) {
			t.Errorf("a killed, unreaped (zombie) server is judged alive 30 s after it died")
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitState(t, zombie.Process.Pid, "Z") // still unreaped
	zombie.Wait()

	// Exited without releasing: the lock file stays but is unlocked.
	crashed, crashedID := holder(t, dir, true)
	crashed.Wait()
	if Alive(crashedID) {
		t.Errorf("a server that exited is judged alive")
	}

	// A live server in another PID namespace: its pid means nothing here,
	// its lock still does.
	if unshare, err := exec.LookPath("unshare"); err == nil && os.Geteuid() == 0 {
		other, otherID := holder(t, dir, false, unshare, "--pid", "--fork", "--kill-child")
		defer func() { other.Process.Kill(); other.Wait() }()
		if !Alive(otherID) {
			t.Errorf("a live server in another PID namespace is judged dead: %s", otherID)
		}
		if pid := PID(otherID); pid != 1 {
			t.Logf("pid inside its namespace: %d", pid)
		}
	} else {
		t.Log("unshare unavailable or not root: the other-PID-namespace case is not run")
	}

	// Prune removes only the dead servers' lock files; their records stay
	// judged dead, the live one's stays alive.
	removed, err := Prune(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Errorf("pruned %v, want the zombie's and the crashed server's", removed)
	}
	if Alive(zombieID) || Alive(crashedID) || !Alive(liveID) {
		t.Errorf("after Prune: zombie %v, crashed %v, live %v", Alive(zombieID), Alive(crashedID), Alive(liveID))
	}
}

func TestAlive(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	gone.Release()
	other := t.TempDir() // a state directory that is not the one the ID names
	moved := strings.Replace(gone.ID(), dir, other, 1)
	fifo := filepath.Join(dir, "server-ff.lock")
	if err := syscallMkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	dirID := strings.TrimSuffix(l.ID(), filepath.Base(l.Path()))
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{"held", l.ID(), true},
		{"released", gone.ID(), false},
		{"self", Self(), true},
		{"another directory: cannot judge", moved, true},
		{"not a lock file name: cannot judge", dirID + "passwd", true},
		{"a fifo: cannot judge, and no hang", dirID + "server-ff.lock", true},
		{"relative path", "lock:1:2:server-aa.lock", true},
		{"malformed lock id", "lock:x", true},
		{"empty", "", false},
		{"garbage", "garbage", false},
		{"legacy pid 1 not started at tick 0", "1:0", false},
		{"legacy unknown pid", "999999999:5", false},
		{"legacy self", legacyID(os.Getpid()), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Alive(tc.id); got != tc.want {
				t.Errorf("Alive(%q) = %v, want %v", tc.id, got, tc.want)
			}
		})
	}
}

func TestHostileOrphanedSubmissionCopies(t *testing.T) {
	parent := t.TempDir()
	mine, err := MkdirOwned(parent, "mlab-submission-")
	if err != nil {
		t.Fatal(err)
	}
	dead, err := Acquire(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dead.Release()
	orphan := filepath.Join(parent, "mlab-submission-orphan")
	unowned := filepath.Join(parent, "mlab-unowned")
	for _, d := range []string{orphan, unowned} {
		os.MkdirAll(filepath.Join(d, "submission"), 0o755)
	}
	os.WriteFile(filepath.Join(orphan, OwnerFile), []byte(dead.ID()+"\n"), 0o644)
	removed, err := RemoveOrphans(parent, "mlab-", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != orphan {
		t.Errorf("removed %v, want only %s", removed, orphan)
	}
	for _, keep := range []string{mine, unowned} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s: %v", keep, err)
		}
	}
}

func syscallMkfifo(path string) error { return unix.Mkfifo(path, 0o644) }
