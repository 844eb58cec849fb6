//! Configuration of sharding: one serde struct with documented defaults
//! (DESIGN.md section 7). Durations read and write as `"200ms"`, `"3s"`,
//! `"1m"` or an integer of milliseconds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::allocation::{AllocationStrategy, ConsistentHashing, LeastShardAllocation};
use crate::error::ConfigError;

/// Which built-in [`AllocationStrategy`] the coordinator uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllocationKind {
    /// [`LeastShardAllocation`] with the rebalance limits of the config (default).
    #[default]
    LeastShards,
    /// [`ConsistentHashing`].
    ConsistentHashing,
}

/// Timings and limits of the coordinator and the regions.
///
/// ```
/// use std::time::Duration;
/// use sharding::ShardingConfig;
/// let config = ShardingConfig::default();
/// assert_eq!(config.lease, Duration::from_secs(3));
/// assert_eq!(config.number_of_shards, 100);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShardingConfig {
    /// Number of shards per entity type; must be the same on every node and
    /// never change while the cluster runs. Default 100 (about ten times the
    /// planned number of nodes, as Akka advises).
    pub number_of_shards: u32,
    /// How long a lease lets a region run its shards, counted by the region
    /// from the moment it *sent* the renewal (rule 1). Default 3 s.
    #[serde(with = "membership::duration::human")]
    pub lease: Duration,
    /// How often a region asks for a renewal. Default 1 s (three tries per lease).
    #[serde(with = "membership::duration::human")]
    pub lease_renewal_interval: Duration,
    /// Added by the coordinator to every lease before it treats a shard as
    /// free, for clock-rate drift between nodes (see [`crate::shard_free_at`]).
    /// Default 300 ms (10% of the lease).
    #[serde(with = "membership::duration::human")]
    pub clock_drift_margin: Duration,
    /// How often the coordinator asks its strategy for rebalance moves when
    /// nothing changes (a safety net). Default 10 s (Akka's).
    #[serde(with = "membership::duration::human")]
    pub rebalance_interval: Duration,
    /// When a region registers, leaves or goes Down, the coordinator
    /// rebalances this long after the last such change (so that nodes that
    /// join within this window are all counted and no shard moves twice),
    /// and then keeps moving, tick by tick, until the strategy has nothing
    /// more to move. Default 1 s.
    #[serde(with = "membership::duration::human")]
    pub rebalance_after_change: Duration,
    /// The allocation strategy. Default `least-shards`.
    pub allocation_strategy: AllocationKind,
    /// At most this many shards are in a rebalance handoff at once.
    /// Default 20.
    pub rebalance_absolute_limit: usize,
    /// At most this fraction of all shards is in a rebalance handoff at
    /// once (the smaller of both limits applies, at least 1). Default 0.1.
    pub rebalance_relative_limit: f64,
    /// Messages buffered per shard while its home is unknown, moving or
    /// fenced; one more is refused with [`crate::DeliveryError::BufferFull`].
    /// Default 1000.
    pub buffer_size: usize,
    /// An unanswered request (GetShardHome, Register, HostShard,
    /// BeginHandoff, Handoff, CoordinatorStarted) is sent again after this
    /// long, with the same request id. Default 500 ms.
    #[serde(with = "membership::duration::human")]
    pub retry_interval: Duration,
    /// The coordinator stops waiting for `BeginHandoffAck`s from live
    /// regions after this long and sends `Handoff` anyway (a region that
    /// never acked may still route to the old home, which then buffers).
    /// Default 10 s.
    #[serde(with = "membership::duration::human")]
    pub handoff_timeout: Duration,
    /// A message bounced with `NotHere` more often than this fails with
    /// [`crate::DeliveryError::TooManyHops`]. Default 5.
    pub max_hops: u8,
    /// How often the driver calls `tick` on the coordinator and the region.
    /// Default 100 ms.
    #[serde(with = "membership::duration::human")]
    pub tick_interval: Duration,
    /// How often the coordinator's node sends every `ShardedDaemonProcess`
    /// worker a keep-alive, which starts a worker that does not run (rule
    /// 6). A worker whose node went Down runs again elsewhere within about
    /// one interval after its shard is free. Default 1 s.
    #[serde(with = "membership::duration::human")]
    pub daemon_keep_alive_interval: Duration,
}

impl Default for ShardingConfig {
    fn default() -> Self {
        Self {
            number_of_shards: 100,
            lease: Duration::from_secs(3),
            lease_renewal_interval: Duration::from_secs(1),
            clock_drift_margin: Duration::from_millis(300),
            rebalance_interval: Duration::from_secs(10),
            rebalance_after_change: Duration::from_secs(1),
            allocation_strategy: AllocationKind::LeastShards,
            rebalance_absolute_limit: 20,
            rebalance_relative_limit: 0.1,
            buffer_size: 1000,
            retry_interval: Duration::from_millis(500),
            handoff_timeout: Duration::from_secs(10),
            max_hops: 5,
            tick_interval: Duration::from_millis(100),
            daemon_keep_alive_interval: Duration::from_secs(1),
        }
    }
}

impl ShardingConfig {
    /// The `fast` profile: a 1.5 s lease renewed every 500 ms, quicker
    /// retries and ticks, for clusters on a fast, reliable network that want
    /// failover in about two seconds (pair it with a shorter membership
    /// heartbeat pause and `stable_after`).
    pub fn fast() -> Self {
        Self {
            lease: Duration::from_millis(1500),
            lease_renewal_interval: Duration::from_millis(500),
            clock_drift_margin: Duration::from_millis(150),
            retry_interval: Duration::from_millis(200),
            tick_interval: Duration::from_millis(50),
            daemon_keep_alive_interval: Duration::from_millis(500),
            ..Self::default()
        }
    }

    /// Checks the relations the guarantees rely on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.number_of_shards == 0 {
            return Err(ConfigError::NoShards);
        }
        if self.lease_renewal_interval.is_zero() || self.lease_renewal_interval >= self.lease {
            return Err(ConfigError::RenewalNotShorterThanLease {
                renewal: self.lease_renewal_interval,
                lease: self.lease,
            });
        }
        if self.buffer_size == 0 {
            return Err(ConfigError::NoBuffer);
        }
        if !(self.rebalance_relative_limit >= 0.0 && self.rebalance_relative_limit <= 1.0) {
            return Err(ConfigError::RelativeLimit(self.rebalance_relative_limit));
        }
        if self.tick_interval.is_zero()
            || self.retry_interval.is_zero()
            || self.daemon_keep_alive_interval.is_zero()
        {
            return Err(ConfigError::ZeroInterval);
        }
        Ok(())
    }

    /// The built-in strategy this config names, with its limits.
    pub fn build_strategy(&self) -> Box<dyn AllocationStrategy> {
        match self.allocation_strategy {
            AllocationKind::LeastShards => Box::new(LeastShardAllocation::new(
                self.rebalance_absolute_limit,
                self.rebalance_relative_limit,
            )),
            AllocationKind::ConsistentHashing => {
                Box::new(ConsistentHashing::new(self.rebalance_absolute_limit))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_serde() {
        let config = ShardingConfig::default();
        let json = serde_json::to_string(&config).expect("serializes");
        let back: ShardingConfig = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, config);
    }

    #[test]
    fn reads_human_durations() {
        let json = r#"{ "lease": "1500ms", "lease_renewal_interval": 500,
                        "allocation_strategy": "consistent-hashing" }"#;
        let config: ShardingConfig = serde_json::from_str(json).expect("deserializes");
        assert_eq!(config.lease, Duration::from_millis(1500));
        assert_eq!(config.lease_renewal_interval, Duration::from_millis(500));
        assert_eq!(
            config.allocation_strategy,
            AllocationKind::ConsistentHashing
        );
        assert_eq!(config.buffer_size, 1000);
    }

    #[test]
    fn rejects_a_renewal_not_shorter_than_the_lease() {
        let config = ShardingConfig {
            lease_renewal_interval: Duration::from_secs(3),
            ..ShardingConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::RenewalNotShorterThanLease { .. })
        ));
        let config = ShardingConfig {
            number_of_shards: 0,
            ..ShardingConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::NoShards));
    }
}
