package docker

import (
	"os"
	"path/filepath"
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
