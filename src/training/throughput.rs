//! A dashboard metric burn-train lacks: training examples per second.

use std::sync::Arc;
use std::time::Instant;

use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};

/// Examples processed per second since the first batch of the epoch.
#[derive(Clone)]
pub struct ExamplesPerSecond {
    name: MetricName,
    state: NumericMetricState,
    /// When the first batch of this epoch was reported, and how many items it held.
    start: Option<(Instant, usize)>,
}

impl ExamplesPerSecond {
    /// A fresh metric.
    pub fn new() -> Self {
        Self {
            name: Arc::new("Examples per sec".to_string()),
            state: NumericMetricState::new(),
            start: None,
        }
    }
}

impl Default for ExamplesPerSecond {
    fn default() -> Self {
        Self::new()
    }
}

impl Metric for ExamplesPerSecond {
    type Input = ();

    fn update(&mut self, _: &(), metadata: &MetricMetadata) -> SerializedEntry {
        let items = metadata.progress.items_processed;
        let (start, first) = *self.start.get_or_insert((Instant::now(), items));
        let elapsed = start.elapsed().as_secs_f64();
        // The first batch only starts the clock: its own duration is unknown here.
        let rate = if items > first && elapsed > 0.0 {
            (items - first) as f64 / elapsed
        } else {
            0.0
        };
        let format = FormatOptions::new(self.name()).unit("ex/s").precision(1);
        self.state.update(rate, 1, format)
    }

    fn clear(&mut self) {
        self.state.reset();
        self.start = None;
    }

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: Some("ex/s".to_string()),
            higher_is_better: true,
        }
        .into()
    }
}

impl Numeric for ExamplesPerSecond {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}
