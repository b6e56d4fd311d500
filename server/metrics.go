package server

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mlab/mlab/sandbox"
)

// Metrics are the server's Prometheus metrics, on a registry of their own.
// A nil *Metrics records nothing.
type Metrics struct {
	registry *prometheus.Registry
	sessions prometheus.Gauge
	calls    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	exec     prometheus.Histogram
}

// NewMetrics registers mlab's metrics; gpus may be nil.
func NewMetrics(gpus *sandbox.GPUPool) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mlab_sessions", Help: "Episodes in progress, each holding a sandbox.",
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlab_tool_calls_total", Help: "Tool calls by tool and outcome (ok, error, refused).",
		}, []string{"tool", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mlab_tool_call_seconds", Help: "Server-side duration of tool calls.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12),
		}, []string{"tool"}),
		exec: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mlab_exec_seconds", Help: "Run time of agent scripts.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}),
	}
	m.registry.MustRegister(m.sessions, m.calls, m.latency, m.exec,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mlab_gpu_leases", Help: "GPUs leased to sessions.",
		}, func() float64 { return float64(gpus.InUse()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

func (m *Metrics) sessionStarted() {
	if m != nil {
		m.sessions.Inc()
	}
}

func (m *Metrics) sessionEnded() {
	if m != nil {
		m.sessions.Dec()
	}
}

func (m *Metrics) toolCall(tool, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(tool, outcome).Inc()
	m.latency.WithLabelValues(tool).Observe(took.Seconds())
	if tool == "execute_script" && outcome != "refused" {
		m.exec.Observe(took.Seconds())
	}
}
