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

/// Failed sign-ins per client address and per user name within a window; past the
/// limit, sign-in answers 429 until the window has passed.
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    pub max: u32,
    pub window: Duration,
}

impl LoginLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        LoginLimiter {
            failures: Mutex::new(HashMap::new()),
            max,
            window,
        }
    }

    fn keys(ip: Option<IpAddr>, user: &str) -> [String; 2] {
        [
            format!("ip:{}", ip.map(|i| i.to_string()).unwrap_or_default()),
            format!("user:{}", user.trim().to_lowercase()),
        ]
    }

    /// Seconds to wait when either key is over the limit.
    pub fn blocked(&self, ip: Option<IpAddr>, user: &str) -> Option<u64> {
        let m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        Self::keys(ip, user)
            .iter()
            .filter_map(|k| m.get(k))
            .filter(|(n, since)| *n >= self.max && now.duration_since(*since) < self.window)
            .map(|(_, since)| (self.window - now.duration_since(*since)).as_secs().max(1))
            .max()
    }

    pub fn failed(&self, ip: Option<IpAddr>, user: &str) {
        let mut m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let window = self.window;
        m.retain(|_, (_, since)| now.duration_since(*since) < window);
        for k in Self::keys(ip, user) {
            let e = m.entry(k).or_insert((0, now));
            e.0 += 1;
        }
    }

    pub fn succeeded(&self, ip: Option<IpAddr>, user: &str) {
        let mut m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for k in Self::keys(ip, user) {
            m.remove(&k);
        }
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
    fn limiter_blocks_after_max_failures_per_ip_or_user() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        let ip: Option<IpAddr> = "127.0.0.1".parse().ok();
        for _ in 0..3 {
            assert!(l.blocked(ip, "admin").is_none());
            l.failed(ip, "admin");
        }
        assert!(l.blocked(ip, "admin").is_some());
        assert!(l.blocked(ip, "other").is_some(), "same address");
        assert!(
            l.blocked("10.0.0.9".parse().ok(), "ADMIN").is_some(),
            "same user"
        );
        assert!(l.blocked("10.0.0.9".parse().ok(), "x").is_none());
        l.succeeded(ip, "admin");
        assert!(l.blocked(ip, "admin").is_none());
    }

    #[test]
    fn token_comparison() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
    }
}
