//! The server's Prometheus metrics (`GET /metrics`), through the `prometheus-client` crate.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The labels of a request count.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route (`/v1/predict`, …; `other` for paths the server does not have).
    pub path: String,
    /// The HTTP status answered.
    pub status: u16,
}

/// The labels of a reload count.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` or `refused`.
    pub outcome: String,
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Seconds from a request's arrival to its answer (`/v1/predict`).
    pub latency: Histogram,
    /// Images per forward pass.
    pub batch_size: Histogram,
    /// Requests waiting for the model.
    pub queue_depth: Gauge,
    /// Reloads by outcome.
    pub reloads: Family<ReloadLabels, Counter>,
}

impl Metrics {
    /// The metrics, registered; `max_batch` sizes the batch-size buckets.
    pub fn new(max_batch: usize) -> Self {
        let mut registry = Registry::with_prefix("alexnet");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        // 1 ms to about 16 s.
        let latency = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "predict_seconds",
            "Time from a prediction request's arrival to its answer",
            latency.clone(),
        );
        let batch_size = Histogram::new(batch_buckets(max_batch));
        registry.register("batch_size", "Images per forward pass", batch_size.clone());
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Prediction requests waiting for the model",
            queue_depth.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register("reloads", "Model reloads by outcome", reloads.clone());
        Self {
            registry,
            requests,
            latency,
            batch_size,
            queue_depth,
            reloads,
        }
    }

    /// Counts one reload.
    pub fn reloaded(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "refused" };
        self.reloads
            .get_or_create(&ReloadLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// The metrics in the OpenMetrics text format, which Prometheus reads.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Powers of two up to `max_batch`, and `max_batch` itself.
fn batch_buckets(max_batch: usize) -> Vec<f64> {
    let mut buckets: Vec<f64> = std::iter::successors(Some(1usize), |b| Some(b * 2))
        .take_while(|&b| b < max_batch)
        .map(|b| b as f64)
        .collect();
    buckets.push(max_batch as f64);
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_buckets_end_at_the_largest_batch() {
        assert_eq!(batch_buckets(1), vec![1.0]);
        assert_eq!(batch_buckets(32), vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
        assert_eq!(batch_buckets(24), vec![1.0, 2.0, 4.0, 8.0, 16.0, 24.0]);
    }
}
