//! Wrong tokens, counted per client address: after [`MAX_FAILURES`] different wrong tokens
//! (bearer or sign-in form) within [`WINDOW`], the address is locked out for [`LOCKOUT`], during which
//! every token it presents is answered 429, the right one included (else the lockout would
//! only slow a guesser down, not stop it). Session cookies are not counted (see the auth
//! middleware). The lockout is logged once, at warn,
//! and each refused request is in the audit with the outcome `throttled`.
//!
//! Why not `governor` or `tower_governor`: they limit requests, all of them; this limits
//! failures only, so an analyst's dashboard polling with the right token is never slowed, and
//! it refuses the right token during a lockout, which a request-rate limiter does not model.
//! The whole state is one map of addresses, swept as it is used.
//!
//! Only *different* wrong tokens count: a guesser must try new ones, while a forgotten script
//! that keeps sending one revoked token would otherwise lock out everyone behind its
//! address (an office behind one NAT). The tokens are kept as BLAKE3 hashes, in memory only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong credentials an address may present within [`WINDOW`] before it is locked out.
pub const MAX_FAILURES: u32 = 10;
/// The window in which failures are counted.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How long a locked-out address is refused.
pub const LOCKOUT: Duration = Duration::from_secs(300);
/// Addresses tracked at most; beyond it the oldest entries are dropped first (a flood of
/// addresses cannot grow the map without bound).
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone)]
struct Failures {
    /// The hashes of the different wrong tokens seen since `since`.
    tokens: Vec<[u8; 32]>,
    since: Instant,
    locked_until: Option<Instant>,
}

/// The failure counts of every client address that presented a wrong credential lately.
#[derive(Debug, Default)]
pub struct Throttle {
    addresses: Mutex<HashMap<IpAddr, Failures>>,
}

/// Whether an address may try a credential now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Locked out for this long still.
    LockedOut(Duration),
}

impl Throttle {
    /// Whether `address` may present a credential at `now`.
    pub fn check(&self, address: IpAddr, now: Instant) -> Verdict {
        let addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        match addresses.get(&address).and_then(|f| f.locked_until) {
            Some(until) if until > now => Verdict::LockedOut(until - now),
            _ => Verdict::Allowed,
        }
    }

    /// Counts a wrong `token` from `address`; returns the lockout if this failure started one
    /// (the caller logs it).
    pub fn failed(&self, address: IpAddr, token: &str, now: Instant) -> Option<Duration> {
        let token = *blake3::hash(token.as_bytes()).as_bytes();
        let mut addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if addresses.len() >= MAX_TRACKED && !addresses.contains_key(&address) {
            addresses.retain(|_, f| f.locked_until.is_some_and(|u| u > now));
            if addresses.len() >= MAX_TRACKED {
                if let Some(oldest) = addresses
                    .iter()
                    .min_by_key(|(_, f)| f.since)
                    .map(|(a, _)| *a)
                {
                    addresses.remove(&oldest);
                }
            }
        }
        let fresh = Failures {
            tokens: Vec::new(),
            since: now,
            locked_until: None,
        };
        let entry = addresses.entry(address).or_insert_with(|| fresh.clone());
        if entry.locked_until.is_some_and(|until| until <= now)
            || now.duration_since(entry.since) > WINDOW
        {
            *entry = fresh;
        }
        if !entry.tokens.contains(&token) {
            entry.tokens.push(token);
        }
        if entry.tokens.len() >= MAX_FAILURES as usize && entry.locked_until.is_none() {
            entry.locked_until = Some(now + LOCKOUT);
            return Some(LOCKOUT);
        }
        None
    }

    /// Forgets `address`'s failures after it presented a right credential (not during a
    /// lockout, which [`Throttle::check`] refuses first).
    pub fn succeeded(&self, address: IpAddr) {
        let mut addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if addresses
            .get(&address)
            .is_some_and(|f| f.locked_until.is_none())
        {
            addresses.remove(&address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, seconds: u64) -> Instant {
        base + Duration::from_secs(seconds)
    }

    #[test]
    fn ten_wrong_tokens_in_a_minute_lock_the_address_out_for_five() {
        let throttle = Throttle::default();
        let guesser: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES - 1 {
            let t = at(t0, u64::from(i));
            assert_eq!(throttle.failed(guesser, &format!("vxl_{i}"), t), None);
            // The same wrong token again does not count twice.
            assert_eq!(throttle.failed(guesser, &format!("vxl_{i}"), t), None);
            assert_eq!(throttle.check(guesser, t), Verdict::Allowed);
        }
        assert_eq!(
            throttle.failed(guesser, "vxl_last", at(t0, 9)),
            Some(LOCKOUT)
        );
        assert!(matches!(
            throttle.check(guesser, at(t0, 10)),
            Verdict::LockedOut(_)
        ));
        // Another address is not affected, and a right token does not lift a lockout.
        assert_eq!(throttle.check(other, at(t0, 10)), Verdict::Allowed);
        throttle.succeeded(guesser);
        assert!(matches!(
            throttle.check(guesser, at(t0, 10)),
            Verdict::LockedOut(_)
        ));
        // It ends after LOCKOUT, and counting starts again from zero.
        assert_eq!(throttle.check(guesser, at(t0, 9 + 300)), Verdict::Allowed);
        assert_eq!(throttle.failed(guesser, "vxl_0", at(t0, 310)), None);
    }

    #[test]
    fn slow_guessing_and_success_reset_the_count() {
        let throttle = Throttle::default();
        let user: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = Instant::now();
        // Nine mistakes, then the right token: forgiven.
        for i in 0..MAX_FAILURES - 1 {
            throttle.failed(user, &format!("vxl_{i}"), at(t0, u64::from(i)));
        }
        throttle.succeeded(user);
        assert_eq!(throttle.failed(user, "vxl_x", at(t0, 10)), None);
        // Failures spread over more than the window never add up to a lockout.
        for i in 0..3 * MAX_FAILURES {
            let t = at(t0, 100 + u64::from(i) * 7);
            assert_eq!(throttle.failed(user, &format!("vxl_{i}"), t), None);
        }
        // One revoked token sent forever is one failure.
        for i in 0..100 {
            assert_eq!(throttle.failed(user, "vxl_revoked", at(t0, 400 + i)), None);
        }
    }
}
