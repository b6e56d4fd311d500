package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mlab/mlab/workspace"
)

// Defaults of what one HTTP client may hold. A client without the token
// must not be able to hold the server's file descriptors, memory or
// goroutines for longer than it takes to refuse it.
const (
	// DefaultMaxBodyBytes bounds one request body. The largest legitimate
	// request is a write_file of workspace.MaxWrite bytes; JSON escaping can
	// make its content up to a few times longer (every "\n" is two bytes,
	// a control character six), hence three times that plus the envelope.
	DefaultMaxBodyBytes = 3*workspace.MaxWrite + 1<<20
	// DefaultMaxConns bounds the open connections of all clients.
	DefaultMaxConns = 1024
	// DefaultMaxConnsPerClient bounds the open connections of one client
	// address: room for every session of a busy agent harness (a stream and
	// a request or two each, with the default 64 sessions), yet a small
	// share of DefaultMaxConns.
	DefaultMaxConnsPerClient = 256
	// HeaderTimeout is how long a client may take to send its headers.
	HeaderTimeout = 10 * time.Second
	// BodyTimeout is how long a client may take to send a whole request,
	// headers and body: a DefaultMaxBodyBytes body at about 0.5 MB/s.
	// net/http lifts it once the body is read, so tool calls and event
	// streams last as long as they need (TestReadTimeoutSparesLongCalls).
	BodyTimeout = 2 * time.Minute
	// IdleTimeout closes a kept-alive connection that sends no new request.
	IdleTimeout = 2 * time.Minute
	// maxHeaderBytes bounds the request line and headers.
	maxHeaderBytes = 64 << 10
)

// NewHTTPServer is the http.Server for a Gateway, with the timeouts above.
// There is no write timeout: a tool call or event stream may run for hours.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: HeaderTimeout,
		ReadTimeout:       BodyTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// readBody reads r's body, at most limit bytes, and puts it back as a
// buffer. A body declared or found to be larger is refused with 413 before
// more than limit+1 bytes of it are read; the connection is then closed
// rather than drained. It reports whether the request may go on.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	tooLarge := func() bool {
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("request body too large: at most %d bytes are accepted", limit), http.StatusRequestEntityTooLarge)
		return false
	}
	if r.ContentLength > limit {
		return tooLarge()
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge()
	case err != nil:
		w.Header().Set("Connection", "close")
		http.Error(w, "could not read the request body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	r.Body = io.NopCloser(&buf)
	return true
}

// ConnLimits bound the open connections of a listener.
type ConnLimits struct {
	// Total bounds all connections; <= 0 means DefaultMaxConns.
	Total int
	// PerClient bounds the connections of one client IP address; <= 0
	// means DefaultMaxConnsPerClient.
	PerClient int
}

// LimitListener wraps ln so that a connection beyond the limits is closed
// as soon as it is accepted, before anything is read from it. Refusing, not
// waiting, keeps one client's flood of silent connections from delaying
// other clients' accepts; those connections end at HeaderTimeout anyway.
func LimitListener(ln net.Listener, limits ConnLimits, log zerolog.Logger) net.Listener {
	if limits.Total <= 0 {
		limits.Total = DefaultMaxConns
	}
	if limits.PerClient <= 0 {
		limits.PerClient = DefaultMaxConnsPerClient
	}
	return &limitListener{Listener: ln, limits: limits, log: log, perClient: map[string]int{}}
}

type limitListener struct {
	net.Listener
	limits ConnLimits
	log    zerolog.Logger

	mu        sync.Mutex
	total     int
	perClient map[string]int
	// refused counts refusals; lastWarn (UnixNano) rate-limits the warning
	// so that a flood does not flood the log as well.
	refused  atomic.Int64
	lastWarn atomic.Int64
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client := clientAddr(c.RemoteAddr())
		if l.acquire(client) {
			return &limitedConn{Conn: c, release: func() { l.release(client) }}, nil
		}
		c.Close()
		l.warnRefused(client)
	}
}

func (l *limitListener) acquire(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.limits.Total || l.perClient[client] >= l.limits.PerClient {
		return false
	}
	l.total++
	l.perClient[client]++
	return true
}

func (l *limitListener) release(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perClient[client]--; l.perClient[client] <= 0 {
		delete(l.perClient, client)
	}
}

func (l *limitListener) warnRefused(client string) {
	n := l.refused.Add(1)
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(time.Minute) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn().Str("client", client).Int64("refused_total", n).Int("max_conns", l.limits.Total).
		Int("max_conns_per_client", l.limits.PerClient).Msg("refusing connections over the connection limits")
}

// clientAddr is the IP of a remote address, without the port.
func clientAddr(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// limitedConn gives its slot back once, however often it is closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
