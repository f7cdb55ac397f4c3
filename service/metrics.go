package service

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the service's Prometheus series, on a registry of its own so that several
// servers (tests) do not share counters.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight prometheus.Gauge
	store    *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dstack_mr_requests_total",
			Help: "Requests by route and outcome (valid, invalid, bad_request, busy, timeout, panic, allowed, denied, ok, error).",
		}, []string{"route", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dstack_mr_request_duration_seconds",
			Help:    "Request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dstack_mr_requests_in_flight",
			Help: "Requests being served.",
		}),
		store: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dstack_mr_image_store_lookups_total",
			Help: "Image store lookups: hit (prepared image cached), load (read, checked and prepared now), miss (not stored), error (stored but unusable), download (fetched with --image-url, then loaded), download_error (fetch failed or recently failed).",
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.inFlight, m.store,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
