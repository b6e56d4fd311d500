package local

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The jail's init is this binary, and this binary holds every built-in
// task's hidden scripts and answers (package benchmarks embeds them). So no
// script may read its bytes. Init is therefore not bound into the jail: bwrap
// executes it through an O_PATH descriptor (/proc/self/fd/N) that init
// closes at once, and init is not dumpable, so /proc/1/exe and /proc/1/fd
// stay closed to scripts. What remains is the binary's installed path: when
// it lies under a folder the jail binds (/usr/local/bin/mlab, say), that
// path is covered by an empty file.

// selfExe names the running binary, even once its file has been replaced or
// removed (an upgrade while the server runs): init must be the very binary
// that speaks the server's protocol.
const selfExe = "/proc/self/exe"

// openExe opens the running binary for bwrap to execute. O_PATH needs no
// read permission, so an execute-only install works too.
func openExe() (*os.File, error) {
	fd, err := unix.Open(selfExe, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open own binary for the jail's init: %w", err)
	}
	return os.NewFile(uintptr(fd), "mlab"), nil
}

// exeFDPath is how bwrap, inside the jail, names the descriptor of the init
// binary it inherited as fd.
func exeFDPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// binaryCopies returns the paths that name the running binary's file: exe
// (its path) and the places a binary is installed or found from (PATH, the
// standard bin folders, os.Args[0]), under exe's name or "mlab". It also
// reports whether the file has hard links that were not found, which a jail
// could expose.
func binaryCopies(exe string) (paths []string, unfound bool, err error) {
	fi, err := os.Stat(selfExe)
	if err != nil {
		return nil, false, fmt.Errorf("stat own binary: %w", err)
	}
	cands := []string{exe}
	if p, err := exec.LookPath(os.Args[0]); err == nil {
		cands = append(cands, p)
	}
	dirs := append(filepath.SplitList(os.Getenv("PATH")),
		"/usr/local/bin", "/usr/local/sbin", "/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/libexec", "/usr/local/libexec")
	for _, d := range dirs {
		for _, name := range []string{filepath.Base(exe), "mlab"} {
			cands = append(cands, filepath.Join(d, name))
		}
	}
	seen := map[string]bool{}
	for _, c := range cands {
		real, err := filepath.EvalSymlinks(c)
		if err != nil || !filepath.IsAbs(real) || seen[real] {
			continue
		}
		if cfi, err := os.Stat(real); err == nil && os.SameFile(fi, cfi) {
			seen[real] = true
			paths = append(paths, real)
		}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Nlink) > len(paths) {
		unfound = true
	}
	return paths, unfound, nil
}

// maskArgs covers each copy of the binary that lies under a folder bound
// into the jail with the (empty) /dev/null. A copy elsewhere is not in the
// jail to begin with. They must follow the binds they cover.
func maskArgs(copies, bound []string) []string {
	var args []string
	for _, c := range copies {
		for _, b := range bound {
			if c == b || strings.HasPrefix(c, strings.TrimSuffix(b, "/")+"/") {
				args = append(args, "--ro-bind", os.DevNull, c)
				break
			}
		}
	}
	return args
}
