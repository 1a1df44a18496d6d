//! Per-client-IP request budgets, one per route.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use otpd_core::ceil_secs;

use crate::client_ip::limit_key;
use crate::ApiError;

/// Checks between two sweeps of idle keys, so the table stays bounded by the
/// clients of the last minute rather than of all time.
const SWEEP_EVERY: u64 = 4096;

/// A token bucket per client: `per_minute` requests at once, refilled evenly over a minute.
#[derive(Clone)]
pub struct IpLimit {
    limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    checks: Arc<AtomicU64>,
}

impl IpLimit {
    /// `0` switches the limit off.
    pub fn per_minute(per_minute: u32) -> Self {
        let limiter =
            NonZeroU32::new(per_minute).map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n))));
        Self {
            limiter,
            checks: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The 429 answer when the client's budget is spent.
    pub fn admit(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.check(ip)
            .map_err(|retry_after| ApiError::RateLimited { retry_after })
    }

    /// `Err(seconds)` to wait when the client's budget is spent.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter.check_key(&limit_key(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ceil_secs(wait).max(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_per_client() {
        let limit = IpLimit::per_minute(2);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        assert_eq!(limit.check(a), Ok(()));
        assert_eq!(limit.check(a), Ok(()));
        let wait = limit.check(a).expect_err("third request in the minute");
        assert!((1..=30).contains(&wait), "{wait}");
        assert_eq!(limit.check(b), Ok(()));
    }

    #[test]
    fn zero_means_no_limit() {
        let limit = IpLimit::per_minute(0);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!((0..1000).all(|_| limit.check(a).is_ok()));
    }
}
