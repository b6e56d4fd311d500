package local

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The jail's init is this same binary, started again inside bubblewrap with
// initArg as its first argument: a package init hook takes over before main,
// so it works for mlab and for test binaries alike. It is the one long-lived
// process of a jail; every exec is a child it forks on request, the way
// docker exec enters a running container, which spares each exec the cost of
// building a new jail.
const initArg = "mlab-jail-init"

// initFD is the socket the server talks to init over; the cgroup files
// follow, then the binary init was executed from.
const initFD = 3

func init() {
	if len(os.Args) == 3 && os.Args[1] == initArg && os.Getenv("MLAB_JAIL_INIT") == "1" {
		if err := runInit(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "mlab jail init:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// initConfig is what init needs to know before it starts anything.
type initConfig struct {
	// UID and GID are the credentials every spawned process gets; -1 keeps
	// init's own (unprivileged mode, where only one id is mapped).
	UID, GID int
	// Cgroups is how many cgroup.procs files follow the socket.
	Cgroups int
	// ExeFD is the descriptor of init's own binary, which bwrap executed;
	// init closes it before anything else, so no script finds it open.
	ExeFD int
	// Rlimits are set on init itself, so every process it forks inherits them.
	Rlimits []rlimit
}

type rlimit struct {
	Resource int
	Value    uint64
}

// request is a message from the server to init.
type request struct {
	Op   string // "spawn" or "kill"
	ID   uint64
	Args []string `json:",omitempty"`
	Env  []string `json:",omitempty"`
	Dir  string   `json:",omitempty"`
	// Big means the request was too large for one packet: its full text is
	// in a memfd passed after stdin, stdout and stderr.
	Big bool `json:",omitempty"`
	// Cgroup means the last file passed is the folder of the exec's own
	// cgroup, which the process is born in. Without one, it gets a pid
	// namespace of its own instead.
	Cgroup bool `json:",omitempty"`
}

// reply is a message from init to the server.
type reply struct {
	Op     string // "ready", "started" or "exit"
	ID     uint64
	Err    string `json:",omitempty"`
	Status int    `json:",omitempty"` // raw wait status
}

// maxPacket bounds one message on the socket; larger requests go in a memfd.
const maxPacket = 64 << 10

func runInit(cfgText string) error {
	var cfg initConfig
	if err := json.Unmarshal([]byte(cfgText), &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if cfg.ExeFD > initFD {
		if err := unix.Close(cfg.ExeFD); err != nil {
			return fmt.Errorf("close own binary: %w", err)
		}
	}
	// Join the sandbox's cgroups before anything is forked, so nothing ever
	// runs outside the limits.
	for i := range cfg.Cgroups {
		f := os.NewFile(uintptr(initFD+1+i), "cgroup.procs")
		err := joinCgroup(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	for _, l := range cfg.Rlimits {
		if err := unix.Setrlimit(l.Resource, &unix.Rlimit{Cur: l.Value, Max: l.Value}); err != nil {
			return fmt.Errorf("rlimit %d: %w", l.Resource, err)
		}
	}
	// Not dumpable: a script running as the same uid (unprivileged mode)
	// can neither ptrace init nor open its /proc files.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("set non-dumpable: %w", err)
	}
	// Everything init does for a request happens on this one OS thread,
	// which has no capabilities to pass through exec: no handoff to other
	// threads, each of which costs a wakeup on a loaded machine. Pdeathsig
	// fires when the forking thread exits, which must only be when init does.
	runtime.LockOSThread()
	in := &initServer{fd: initFD, cfg: cfg, procs: map[int]uint64{}, children: make(chan struct{}, 1)}
	if err := dropInheritedCaps(); err != nil {
		in.send(reply{Op: "ready", Err: err.Error()})
		return err
	}
	go in.reap()
	in.send(reply{Op: "ready"})
	err := in.serve()
	in.killAll()
	return err
}

type initServer struct {
	fd  int
	cfg initConfig

	wmu sync.Mutex // one writer at a time on the socket

	mu       sync.Mutex
	procs    map[int]uint64 // running children: pid to exec id
	children chan struct{}  // a child was started
}

func (in *initServer) send(r reply) {
	b, _ := json.Marshal(r)
	in.wmu.Lock()
	defer in.wmu.Unlock()
	_ = unix.Sendmsg(in.fd, b, nil, nil, 0)
}

// serve handles requests until the server closes the socket. It reads with
// a blocking system call on the locked thread, not through Go's poller.
func (in *initServer) serve() error {
	buf := make([]byte, maxPacket)
	oob := make([]byte, unix.CmsgSpace(8*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(in.fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read request: %w", err)
		}
		if n == 0 {
			return nil
		}
		files, err := parseRights(oob[:oobn])
		if err != nil {
			return err
		}
		var req request
		if err := json.Unmarshal(buf[:n], &req); err != nil {
			closeAll(files)
			return fmt.Errorf("decode request: %w", err)
		}
		switch req.Op {
		case "spawn":
			if err := in.start(&req, files); err != nil {
				in.send(reply{Op: "started", ID: req.ID, Err: err.Error()})
			}
		case "kill":
			in.mu.Lock()
			for pid, id := range in.procs {
				if id == req.ID {
					// Still in procs, so not reaped: pid is this child.
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
			in.mu.Unlock()
		}
		closeAll(files)
	}
}

func (in *initServer) start(req *request, files []*os.File) error {
	var cgroupDir *os.File
	if req.Cgroup {
		if len(files) < 4 {
			return errors.New("exec cgroup missing")
		}
		cgroupDir, files = files[len(files)-1], files[:len(files)-1]
	}
	if req.Big {
		if len(files) != 4 {
			return errors.New("large request without its memfd")
		}
		body, err := io.ReadAll(io.NewSectionReader(files[3], 0, 1<<30))
		if err == nil {
			err = json.Unmarshal(body, req)
		}
		if err != nil {
			return fmt.Errorf("read large request: %w", err)
		}
		files = files[:3]
	}
	if len(files) != 3 || len(req.Args) == 0 {
		return fmt.Errorf("want a command, stdin, stdout and stderr, got %d files", len(files))
	}
	path, err := lookPath(req.Args[0], req.Env, req.Dir)
	if err != nil {
		return err
	}
	sys := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if cgroupDir != nil {
		sys.UseCgroupFD, sys.CgroupFD = true, int(cgroupDir.Fd())
	} else {
		// Its own pid namespace makes the script pid 1 of everything it
		// starts: when it exits or is killed, the kernel kills every
		// process left in the namespace, setsid or double fork or not.
		// The price: os.getpid() is 1 while /proc shows the jail's pids.
		sys.Cloneflags = syscall.CLONE_NEWPID
	}
	if in.cfg.UID >= 0 {
		sys.Credential = &syscall.Credential{Uid: uint32(in.cfg.UID), Gid: uint32(in.cfg.GID), Groups: []uint32{}}
	}
	fds := []uintptr{files[0].Fd(), files[1].Fd(), files[2].Fd()}
	// Under the lock, so that the reaper cannot see the child end before
	// it is in procs.
	in.mu.Lock()
	defer in.mu.Unlock()
	pid, err := syscall.ForkExec(path, req.Args, &syscall.ProcAttr{Dir: req.Dir, Env: req.Env, Files: fds, Sys: sys})
	if err != nil {
		return fmt.Errorf("start %s: %w", req.Args[0], err)
	}
	in.procs[pid] = req.ID
	in.send(reply{Op: "started", ID: req.ID})
	select {
	case in.children <- struct{}{}:
	default:
	}
	return nil
}

// joinCgroup moves init, all its threads, into the cgroup of f.
func joinCgroup(f *os.File) error {
	if _, err := f.WriteString("0"); err != nil {
		return fmt.Errorf("join cgroup: %w", err)
	}
	return nil
}

// reap reports each child's end. It waits without reaping first, so that a
// kill, which holds the lock, never signals a pid the kernel has reused.
func (in *initServer) reap() {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ECHILD) {
			<-in.children
			continue
		}
		if err != nil {
			return
		}
		pid := siginfoPid(&info)
		in.mu.Lock()
		id, ok := in.procs[pid]
		delete(in.procs, pid)
		var ws unix.WaitStatus
		if ok {
			_, err = unix.Wait4(pid, &ws, 0, nil)
		} else {
			// start reaped it (a failed start) or it is no child of an
			// exec; do not peek at it forever.
			_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
		in.mu.Unlock()
		if !ok {
			continue
		}
		r := reply{Op: "exit", ID: id, Status: int(ws)}
		if err != nil {
			r.Err = err.Error()
		}
		in.send(r)
	}
}

// siginfoPid is si_pid of a SIGCHLD siginfo, which x/sys/unix leaves in the
// opaque part: after signo, errno, code and padding.
func siginfoPid(info *unix.Siginfo) int {
	b := (*[128]byte)(unsafe.Pointer(info))
	return int(int32(binary.LittleEndian.Uint32(b[16:20])))
}

func (in *initServer) killAll() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for pid := range in.procs {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// dropInheritedCaps clears the calling thread's ambient and inheritable
// capability sets. Under an unprivileged bubblewrap, init keeps
// CAP_SYS_ADMIN (to make a pid namespace per exec) as an ambient capability,
// which a plain exec would otherwise pass on to the script.
func dropInheritedCaps() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear inheritable capabilities: %w", err)
	}
	return nil
}

// lookPath finds name in the PATH of the script's environment, as the
// script's shell would; a name with a slash is taken relative to dir.
func lookPath(name string, env []string, dir string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: executable file not found in $PATH", name)
}

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "passed"))
		}
	}
	return files, nil
}
