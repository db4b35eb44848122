//! Prometheus text exposition of request counts, latencies and job states, kept in
//! process without a metrics library: a few atomics and one small map.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    n: u64,
}

/// Request metrics, labelled by method, route pattern and status.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, took: Duration) {
        // Any token is a valid HTTP method: unknown ones share one label, so requests
        // nobody authenticated cannot grow the series without bound.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        {
            let mut r = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            *r.entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
        let secs = took.as_secs_f64();
        let mut l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = l
            .entry((method.to_string(), route.to_string()))
            .or_insert_with(|| Histogram {
                counts: vec![0; BUCKETS.len()],
                ..Default::default()
            });
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.n += 1;
    }

    /// The text format; `jobs` are (status, count) pairs read at scrape time.
    pub fn render(&self, jobs: &[(&str, usize)]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP skiff_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE skiff_http_requests_total counter\n");
        for ((m, r, s), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "skiff_http_requests_total{{method=\"{m}\",route=\"{}\",status=\"{s}\"}} {n}",
                escape(r)
            );
        }
        out.push_str("# HELP skiff_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE skiff_http_request_duration_seconds histogram\n");
        for ((m, r), h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let labels = format!("method=\"{m}\",route=\"{}\"", escape(r));
            for (b, c) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(
                    out,
                    "skiff_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {c}"
                );
            }
            let _ = writeln!(
                out,
                "skiff_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.n
            );
            let _ = writeln!(
                out,
                "skiff_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "skiff_http_request_duration_seconds_count{{{labels}}} {}",
                h.n
            );
        }
        out.push_str("# HELP skiff_jobs Jobs in the store by status.\n");
        out.push_str("# TYPE skiff_jobs gauge\n");
        for (s, n) in jobs {
            let _ = writeln!(out, "skiff_jobs{{status=\"{s}\"}} {n}");
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.observe("GET", "/api/v1/projects", 200, Duration::from_millis(3));
        m.observe("GET", "/api/v1/projects", 200, Duration::from_millis(30));
        m.observe("GET", "/api/v1/projects", 401, Duration::from_micros(100));
        let text = m.render(&[("queued", 2)]);
        assert!(text.contains(
            "skiff_http_requests_total{method=\"GET\",route=\"/api/v1/projects\",status=\"200\"} 2"
        ));
        assert!(text.contains("status=\"401\"} 1"));
        assert!(text.contains("le=\"0.005\"} 2\n"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 3\n"));
        assert!(text.contains("skiff_jobs{status=\"queued\"} 2"));
    }
}
