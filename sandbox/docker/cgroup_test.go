package docker

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestCgroupOf(t *testing.T) {
	const (
		v1Mounts = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
		v2Mounts = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
		nsMounts = "30 23 0:26 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
	)
	tests := []struct {
		name, cgroup, mounts string
		dir                  string
		v2, fail             bool
	}{
		{"v1", "8:pids:/docker/abc\n4:memory:/docker/abc\n", v1Mounts, "/sys/fs/cgroup/pids/docker/abc", false, false},
		{"hybrid prefers v1 pids", "8:pids:/docker/abc\n0::/system.slice/docker.service\n", v1Mounts, "/sys/fs/cgroup/pids/docker/abc", false, false},
		{"v2", "0::/system.slice/docker-abc.scope\n", v2Mounts, "/sys/fs/cgroup/system.slice/docker-abc.scope", true, false},
		{"mount of a subtree", "8:pids:/docker/abc/x\n", nsMounts, "/sys/fs/cgroup/pids/x", false, false},
		{"outside the mounted subtree", "8:pids:/other\n", nsMounts, "", false, true},
		{"no pids controller", "4:memory:/docker/abc\n", v1Mounts, "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "7"), 0o755)
			os.MkdirAll(filepath.Join(root, "self"), 0o755)
			os.WriteFile(filepath.Join(root, "7", "cgroup"), []byte(tc.cgroup), 0o644)
			os.WriteFile(filepath.Join(root, "self", "mountinfo"), []byte(tc.mounts), 0o644)
			dir, v2, err := cgroupOf(root, 7)
			if tc.fail {
				if err == nil {
					t.Errorf("want an error, got %s", dir)
				}
				return
			}
			if err != nil || dir != tc.dir || v2 != tc.v2 {
				t.Errorf("got %s v2=%v %v, want %s v2=%v", dir, v2, err, tc.dir, tc.v2)
			}
		})
	}
}

func TestPidLine(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		pid    int
		rest   string
	}{
		{"one write", []string{"42\nhello\n"}, 42, "hello\n"},
		{"split", []string{"4", "2", "\nhel", "lo"}, 42, "hello"},
		{"only the pid", []string{"7\n"}, 7, ""},
		{"garbage", []string{"xx\nout"}, 0, "out"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			l := &pidLine{w: &out, pid: make(chan int, 1)}
			for _, w := range tc.writes {
				if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("write %q: %d %v", w, n, err)
				}
			}
			if got := <-l.pid; got != tc.pid || out.String() != tc.rest {
				t.Errorf("pid %d rest %q", got, out.String())
			}
		})
	}
}

// TestUnreapedIn: on cgroup v2 an exec's unreaped processes are found from
// init's children and the exec's first process, down through the group.
func TestUnreapedIn(t *testing.T) {
	const init, first, group = 10, 20, "mlab-exec-3"
	type proc struct {
		pid      int
		cgroup   string
		children string // of its one thread
	}
	ours, other := "0::/docker/abc/mlab-exec-3 (deleted)\n", "0::/docker/abc/mlab-exec-4\n"
	tests := []struct {
		name  string
		procs []proc
		want  int
	}{
		{"nothing left", []proc{{init, "0::/docker/abc\n", "11"}, {11, "0::/docker/abc\n", ""}}, 0},
		{"zombie of init", []proc{{init, "0::/docker/abc\n", "11 12"}, {11, "0::/docker/abc\n", ""}, {12, ours, ""}}, 1},
		{"group not yet removed", []proc{{init, "0::/docker/abc\n", "12"}, {12, "0::/docker/abc/mlab-exec-3\n", ""}}, 1},
		{"another exec's process", []proc{{init, "0::/docker/abc\n", "12"}, {12, other, ""}}, 0},
		{"a longer name is another group", []proc{{init, "0::/docker/abc\n", "12"}, {12, "0::/docker/abc/mlab-exec-33\n", ""}}, 0},
		{"exiting first process with a child not yet reparented", []proc{{init, "0::/docker/abc\n", ""}, {first, ours, "21"}, {21, ours, ""}}, 2},
		{"first process reaped, its PID taken by another exec", []proc{{init, "0::/docker/abc\n", ""}, {first, other, "21"}, {21, ours, ""}}, 0},
		{"exiting orphan with a child", []proc{{init, "0::/docker/abc\n", "12"}, {12, ours, "13"}, {13, ours, ""}}, 2},
		{"cgroup v1 line only", []proc{{init, "0::/docker/abc\n", "12"}, {12, "8:pids:/docker/abc/mlab-exec-3\n", ""}}, 0},
		{"reaped while listed", []proc{{init, "0::/docker/abc\n", "12 99"}, {12, ours, ""}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, p := range tc.procs {
				dir := filepath.Join(root, strconv.Itoa(p.pid))
				os.MkdirAll(filepath.Join(dir, "task", strconv.Itoa(p.pid)), 0o755)
				os.WriteFile(filepath.Join(dir, "cgroup"), []byte(p.cgroup), 0o644)
				os.WriteFile(filepath.Join(dir, "task", strconv.Itoa(p.pid), "children"), []byte(p.children), 0o644)
			}
			if got := unreapedIn(root, init, first, group); got != tc.want {
				t.Errorf("unreapedIn = %d, want %d", got, tc.want)
			}
		})
	}
	if got := unreapedIn(t.TempDir(), 0, 0, group); got != 0 {
		t.Errorf("with no init and no first process: %d", got)
	}
}
