//! A histogram of durations that records with atomics only, for hot paths.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::padded::Padded;

/// Bucket bounds, in seconds, for network round trips: 100 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Bucket bounds, in seconds, for recovery steps (handoffs, failover): 10 ms
/// to 60 s.
pub const RECOVERY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0,
];

/// A Prometheus histogram of [`Duration`]s, in seconds. Unlike
/// `prometheus_client`'s `Histogram`, which takes a mutex per observation,
/// [`DurationHistogram::observe`] is two atomic additions and a bucket
/// search, each count on a cache line of its own. Cheap to clone; clones
/// share their counts.
///
/// ```
/// use mesh::metrics::{DurationHistogram, LATENCY_BUCKETS};
/// let histogram = DurationHistogram::new(LATENCY_BUCKETS);
/// histogram.observe(std::time::Duration::from_millis(3));
/// ```
#[derive(Clone, Debug)]
pub struct DurationHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Upper bounds in nanoseconds, ascending.
    bounds: Box<[u64]>,
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    counts: Box<[Padded]>,
    sum_nanos: Padded,
}

impl DurationHistogram {
    /// A histogram with these upper bounds in seconds (ascending), and `+Inf`.
    pub fn new(bounds: &[f64]) -> Self {
        let bounds: Box<[u64]> = bounds.iter().map(|s| (s * 1e9) as u64).collect();
        let counts = (0..=bounds.len()).map(|_| Padded::default()).collect();
        Self {
            inner: Arc::new(Inner {
                bounds,
                counts,
                sum_nanos: Padded::default(),
            }),
        }
    }

    /// Records one duration.
    pub fn observe(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let inner = &*self.inner;
        let bucket = inner.bounds.partition_point(|bound| *bound < nanos);
        inner.counts[bucket].add(1);
        inner.sum_nanos.add(nanos);
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &*self.inner;
        // Per bucket: the encoder makes them cumulative.
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .map(|nanos| *nanos as f64 / 1e9)
            .chain(std::iter::once(f64::INFINITY))
            .zip(inner.counts.iter())
            .map(|(bound, count)| (bound, count.load()))
            .collect();
        let count = buckets.iter().map(|(_, count)| count).sum();
        let sum = inner.sum_nanos.load() as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn buckets_are_cumulative_and_the_sum_is_in_seconds() {
        let histogram = DurationHistogram::new(&[0.001, 0.01]);
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(1));
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_secs(1));
        let mut registry = Registry::default();
        registry.register("latency", "test", histogram);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("latency_bucket{le=\"0.001\"} 2\n"), "{text}");
        assert!(text.contains("latency_bucket{le=\"0.01\"} 3\n"), "{text}");
        assert!(text.contains("latency_bucket{le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("latency_count 4\n"), "{text}");
        assert!(text.contains("latency_sum 1.0065\n"), "{text}");
    }
}
