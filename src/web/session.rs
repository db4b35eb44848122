//! Dashboard sessions and sign-in throttling, kept in memory: a restart signs
//! everyone out, which costs a sign-in and keeps no secrets on disk.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// A message for the next page a session sees (after a redirect).
#[derive(Clone, Debug)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

/// One browser's session. Anonymous sessions exist too: the sign-in form needs a
/// CSRF token before anybody is signed in.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: Option<Uuid>,
    pub csrf: String,
    /// The project the pages work in, chosen with the switcher.
    pub project: Option<Uuid>,
    pub flash: Vec<Flash>,
    /// A new API key's secret, shown on the next page only.
    pub secret: Option<(String, String)>,
    last_seen: Instant,
}

/// Random 256-bit token in hex.
pub fn token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Constant-time comparison for tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// How long a session that never signed in lives without use.
const ANON_IDLE: Duration = Duration::from_secs(30 * 60);
/// At most this many sessions that never signed in; the oldest goes first.
const MAX_ANONYMOUS: usize = 10_000;

pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
}

impl Sessions {
    pub fn new(idle: Duration) -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live session behind `id`, touched; expired ones are dropped.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut m = self.lock();
        let now = Instant::now();
        match m.get_mut(id) {
            Some(s) if now.duration_since(s.last_seen) < self.idle => {
                s.last_seen = now;
                Some(s.clone())
            }
            Some(_) => {
                m.remove(id);
                None
            }
            None => None,
        }
    }

    /// Whether `id` is a live signed-in session, without touching it (an open console
    /// polls this; it must not keep an idle session alive by itself).
    pub fn signed_in(&self, id: &str) -> bool {
        let m = self.lock();
        m.get(id).is_some_and(|s| {
            s.user_id.is_some() && Instant::now().duration_since(s.last_seen) < self.idle
        })
    }

    /// A new session; returns its id. Expired sessions are swept here. Anonymous ones
    /// (a sign-in form was fetched) expire sooner and are capped, so unauthenticated
    /// requests cannot grow the map without bound.
    pub fn create(&self, user_id: Option<Uuid>, project: Option<Uuid>) -> (String, Session) {
        let mut m = self.lock();
        let now = Instant::now();
        let idle = self.idle;
        let anon_idle = ANON_IDLE.min(idle);
        m.retain(|_, s| {
            let age = now.duration_since(s.last_seen);
            age < if s.user_id.is_some() { idle } else { anon_idle }
        });
        let anonymous = m.values().filter(|s| s.user_id.is_none()).count();
        if user_id.is_none() && anonymous >= MAX_ANONYMOUS {
            let oldest = m
                .iter()
                .filter(|(_, s)| s.user_id.is_none())
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                m.remove(&k);
            }
        }
        let s = Session {
            user_id,
            csrf: token(),
            project,
            flash: Vec::new(),
            secret: None,
            last_seen: now,
        };
        let id = token();
        m.insert(id.clone(), s.clone());
        (id, s)
    }

    pub fn update(&self, id: &str, f: impl FnOnce(&mut Session)) {
        if let Some(s) = self.lock().get_mut(id) {
            f(s);
        }
    }

    /// Takes the flash messages and a pending secret (each is shown once).
    pub fn take_once(&self, id: &str) -> (Vec<Flash>, Option<(String, String)>) {
        match self.lock().get_mut(id) {
            Some(s) => (std::mem::take(&mut s.flash), s.secret.take()),
            None => (Vec::new(), None),
        }
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Why a sign-in attempt is not even checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Too many failures: try again in this many seconds.
    Throttled(u64),
    /// Too many password checks at once (each costs ~19 MiB and tens of ms).
    Busy,
}

/// Sign-in throttling. An attempt counts as failed *before* its password is hashed, so
/// a burst of concurrent attempts cannot all slip under the limit, and at most
/// `max_hashing` passwords are checked at once: memory stays bounded whatever arrives.
/// Per client address first (`per_ip` failures in `window`); per user name across all
/// addresses (`per_user`) only for addresses that have failed already, so strangers
/// cannot lock the real user out from an address of its own.
pub struct LoginLimiter {
    state: Mutex<LimiterState>,
    pub per_ip: u32,
    pub per_user: u32,
    pub window: Duration,
    pub max_hashing: usize,
    /// Bound on remembered keys: past it, new addresses and names wait (`Busy`).
    pub max_keys: usize,
}

#[derive(Default)]
struct LimiterState {
    failures: HashMap<String, (u32, Instant)>,
    hashing: usize,
}

/// One admitted attempt: its password may be hashed. Tell it the outcome; dropped
/// without one, it stays a failure.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    keys: [String; 2],
}

impl LoginLimiter {
    pub fn new(per_ip: u32, per_user: u32, window: Duration, max_hashing: usize) -> Self {
        LoginLimiter {
            state: Mutex::new(LimiterState::default()),
            per_ip,
            per_user,
            window,
            max_hashing,
            max_keys: 100_000,
        }
    }

    fn keys(ip: Option<IpAddr>, user: &str) -> [String; 2] {
        let name: String = user.trim().to_lowercase().chars().take(128).collect();
        [
            format!("ip:{}", ip.map(|i| i.to_string()).unwrap_or_default()),
            format!("user:{name}"),
        ]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits an attempt (counted as a failure until it succeeds) or says why not.
    pub fn begin(&self, ip: Option<IpAddr>, user: &str) -> Result<Attempt<'_>, Refused> {
        let keys = Self::keys(ip, user);
        let mut st = self.lock();
        let now = Instant::now();
        let window = self.window;
        st.failures
            .retain(|_, (_, since)| now.duration_since(*since) < window);
        let count = |k: &str| st.failures.get(k).map_or((0, now), |v| *v);
        let (ip_n, ip_since) = count(&keys[0]);
        let (user_n, user_since) = count(&keys[1]);
        let wait = |since: Instant| (window - now.duration_since(since)).as_secs().max(1);
        if ip_n >= self.per_ip {
            return Err(Refused::Throttled(wait(ip_since)));
        }
        if user_n >= self.per_user && ip_n > 0 {
            return Err(Refused::Throttled(wait(user_since)));
        }
        if st.hashing >= self.max_hashing
            || (st.failures.len() + 2 > self.max_keys
                && keys.iter().any(|k| !st.failures.contains_key(k)))
        {
            return Err(Refused::Busy);
        }
        for k in &keys {
            st.failures.entry(k.clone()).or_insert((0, now)).0 += 1;
        }
        st.hashing += 1;
        Ok(Attempt {
            limiter: self,
            keys,
        })
    }
}

impl Attempt<'_> {
    /// The password was right: this address's and this name's failures are forgotten.
    pub fn succeeded(self) {
        let mut st = self.limiter.lock();
        for k in &self.keys {
            st.failures.remove(k);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut st = self.limiter.lock();
        st.hashing = st.hashing.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_flash_is_shown_once() {
        let s = Sessions::new(Duration::from_millis(50));
        let (id, sess) = s.create(None, None);
        assert_eq!(sess.csrf.len(), 64);
        s.update(&id, |x| {
            x.flash.push(Flash {
                ok: true,
                text: "hi".into(),
            })
        });
        assert_eq!(s.take_once(&id).0.len(), 1);
        assert_eq!(s.take_once(&id).0.len(), 0);
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn anonymous_sessions_are_capped_and_signed_in_ones_kept() {
        let s = Sessions::new(Duration::from_secs(3600));
        let (user, _) = s.create(Some(Uuid::new_v4()), None);
        let (first, _) = s.create(None, None);
        for _ in 0..MAX_ANONYMOUS {
            s.create(None, None);
        }
        assert!(s.get(&first).is_none(), "the oldest anonymous session went");
        assert!(s.get(&user).is_some(), "signed-in sessions are not evicted");
        assert_eq!(s.lock().len(), MAX_ANONYMOUS + 1);
    }

    #[test]
    fn attempts_count_before_hashing_per_address_first() {
        let l = LoginLimiter::new(3, 5, Duration::from_secs(60), 100);
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        // Three attempts at once from one address: all admitted, the fourth is not,
        // though none has finished (they count before their passwords are checked).
        let held: Vec<_> = (0..3)
            .map(|_| l.begin(ip("192.0.2.1"), "admin").unwrap())
            .collect();
        assert!(matches!(
            l.begin(ip("192.0.2.1"), "other"),
            Err(Refused::Throttled(_))
        ));
        drop(held);
        // Other strangers push the user's count past its limit…
        for i in 2..5 {
            drop(l.begin(ip(&format!("192.0.2.{i}")), "ADMIN").unwrap());
        }
        // …which stops addresses that have failed already…
        assert!(matches!(
            l.begin(ip("192.0.2.2"), "admin"),
            Err(Refused::Throttled(_))
        ));
        // …but not the real user at an address of its own, and success clears it.
        l.begin(ip("198.51.100.7"), "admin").unwrap().succeeded();
        drop(l.begin(ip("192.0.2.2"), "admin").unwrap());
    }

    #[test]
    fn password_checks_at_once_are_bounded() {
        let l = LoginLimiter::new(1000, 1000, Duration::from_secs(60), 2);
        let ip = "192.0.2.1".parse::<IpAddr>().ok();
        let a = l.begin(ip, "u").unwrap();
        let b = l.begin(ip, "u").unwrap();
        assert_eq!(l.begin(ip, "u").err(), Some(Refused::Busy));
        drop(a);
        let _c = l.begin(ip, "u").unwrap();
        drop(b);
        let mut m = LoginLimiter::new(1000, 1000, Duration::from_secs(60), 100);
        m.max_keys = 4;
        drop(m.begin(ip, "a").unwrap());
        drop(m.begin(ip, "b").unwrap());
        assert_eq!(
            m.begin(ip, "c").err(),
            Some(Refused::Busy),
            "remembered keys are bounded"
        );
    }

    #[test]
    fn token_comparison() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
    }
}
