//! The clock that leases are counted on.
//!
//! `Instant` is `CLOCK_MONOTONIC` on Linux, which stops while the machine
//! (or a VM) is suspended: after a resume, a region would believe less time
//! had passed than the coordinator's node saw, and run a shard on a lease
//! that ran out long ago. The lease clock is `CLOCK_BOOTTIME`, which counts
//! the suspended time too, expressed as an `Instant` so that the sans-IO
//! cores take it as they take any `now`. Elsewhere it is `Instant::now()`.

use std::time::Instant;

/// Now, on the lease clock.
pub(crate) fn now() -> Instant {
    imp::now()
}

#[cfg(target_os = "linux")]
mod imp {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// An `Instant` and the boot-time reading taken with it.
    static BASE: OnceLock<(Instant, Duration)> = OnceLock::new();

    pub(super) fn now() -> Instant {
        let (base, boot_base) = *BASE.get_or_init(|| (Instant::now(), boottime()));
        base + boottime().saturating_sub(boot_base)
    }

    fn boottime() -> Duration {
        let mut time = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through a valid pointer;
        // CLOCK_BOOTTIME exists on every Linux since 2.6.39.
        let result = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut time) };
        assert_eq!(result, 0, "clock_gettime(CLOCK_BOOTTIME) failed");
        Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(super) fn now() -> std::time::Instant {
        std::time::Instant::now()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn the_lease_clock_runs_with_the_monotonic_clock_while_awake() {
        let (lease_start, start) = (super::now(), Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let (lease_elapsed, elapsed) = (super::now() - lease_start, start.elapsed());
        assert!(lease_elapsed >= Duration::from_millis(20));
        let skew = lease_elapsed.abs_diff(elapsed);
        assert!(
            skew < Duration::from_millis(5),
            "{lease_elapsed:?} vs {elapsed:?}"
        );
    }
}
