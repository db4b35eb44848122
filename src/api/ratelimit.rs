//! Per-key rate limiting as the contract documents it: a one-second window of
//! `per_second` requests, plus a burst budget of `burst - per_second` extra requests
//! that refills over 60 seconds. Both are token buckets, so the state per key is four
//! numbers and a check is O(1).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::config::{RateLimitConfig, TierLimits};
use crate::model::RateLimitTier;

const BURST_REFILL: Duration = Duration::from_secs(60);
/// Buckets untouched this long are full again and can be forgotten.
const IDLE_EVICT: Duration = Duration::from_secs(120);

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Admitted; `remaining` more would be admitted right now.
    Allow { limit: u32, remaining: u32 },
    /// Refused; retry after this many whole seconds.
    Deny { limit: u32, retry_after: u64 },
    /// The key's tier is not limited.
    Unlimited,
}

struct Buckets {
    window: f64,
    burst: f64,
    at: Instant,
}

pub struct RateLimiter {
    config: RateLimitConfig,
    keys: Mutex<HashMap<Uuid, Buckets>>,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        RateLimiter {
            config,
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn limits(&self, tier: RateLimitTier) -> Option<TierLimits> {
        if !self.config.enabled {
            return None;
        }
        match tier {
            RateLimitTier::Standard => Some(self.config.standard),
            RateLimitTier::High => Some(self.config.high),
            RateLimitTier::Unlimited => None,
        }
    }

    pub fn check(&self, key: Uuid, tier: RateLimitTier) -> Decision {
        self.check_at(key, tier, Instant::now())
    }

    pub fn check_at(&self, key: Uuid, tier: RateLimitTier, now: Instant) -> Decision {
        let Some(l) = self.limits(tier) else {
            return Decision::Unlimited;
        };
        let rate = f64::from(l.per_second);
        let extra = f64::from(l.burst.saturating_sub(l.per_second));
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.len() > 10_000 {
            keys.retain(|_, b| now.saturating_duration_since(b.at) < IDLE_EVICT);
        }
        let b = keys.entry(key).or_insert(Buckets {
            window: rate,
            burst: extra,
            at: now,
        });
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        b.at = now;
        b.window = (b.window + dt * rate).min(rate);
        b.burst = (b.burst + dt * extra / BURST_REFILL.as_secs_f64()).min(extra);
        if b.window >= 1.0 {
            b.window -= 1.0;
        } else if b.burst >= 1.0 {
            b.burst -= 1.0;
        } else {
            let wait = (1.0 - b.window) / rate;
            return Decision::Deny {
                limit: l.per_second,
                retry_after: wait.ceil().max(1.0) as u64,
            };
        }
        Decision::Allow {
            limit: l.per_second,
            remaining: (b.window.floor() + b.burst.floor()) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            enabled: true,
            standard: TierLimits { per_second, burst },
            high: TierLimits {
                per_second: 100,
                burst: 200,
            },
        })
    }

    fn admitted(l: &RateLimiter, key: Uuid, n: usize, at: Instant) -> usize {
        (0..n)
            .filter(|_| {
                matches!(
                    l.check_at(key, RateLimitTier::Standard, at),
                    Decision::Allow { .. }
                )
            })
            .count()
    }

    #[test]
    fn a_fresh_key_gets_its_burst_then_the_window_rate() {
        let l = limiter(30, 60);
        let (k, t0) = (Uuid::new_v4(), Instant::now());
        assert_eq!(admitted(&l, k, 100, t0), 60);
        assert_eq!(
            l.check_at(k, RateLimitTier::Standard, t0),
            Decision::Deny {
                limit: 30,
                retry_after: 1
            }
        );
        // One second later the window is full again but the burst budget is nearly empty.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(admitted(&l, k, 100, t1), 30);
        // After a minute the burst budget is back.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(admitted(&l, k, 100, t2), 60);
    }

    #[test]
    fn keys_and_tiers_are_independent() {
        let l = limiter(2, 2);
        let (a, b, t) = (Uuid::new_v4(), Uuid::new_v4(), Instant::now());
        assert_eq!(admitted(&l, a, 5, t), 2);
        assert_eq!(admitted(&l, b, 5, t), 2);
        let high = (0..500)
            .filter(|_| {
                matches!(
                    l.check_at(Uuid::nil(), RateLimitTier::High, t),
                    Decision::Allow { .. }
                )
            })
            .count();
        assert_eq!(high, 200);
        assert_eq!(
            l.check_at(a, RateLimitTier::Unlimited, t),
            Decision::Unlimited
        );
    }

    #[test]
    fn remaining_counts_down_and_off_means_unlimited() {
        let l = limiter(3, 3);
        let (k, t) = (Uuid::new_v4(), Instant::now());
        assert_eq!(
            l.check_at(k, RateLimitTier::Standard, t),
            Decision::Allow {
                limit: 3,
                remaining: 2
            }
        );
        let off = RateLimiter::new(RateLimitConfig {
            enabled: false,
            ..RateLimitConfig::default()
        });
        assert_eq!(
            off.check_at(k, RateLimitTier::Standard, t),
            Decision::Unlimited
        );
    }
}
