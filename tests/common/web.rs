//! A cookie-keeping dashboard client for tests without a browser.

use std::time::Duration;

/// A cookie-keeping client that does not follow redirects, like a browser's view of
/// each response.
pub struct Browser {
    pub agent: ureq::Agent,
    pub base: String,
    pub cookie: Option<String>,
    /// Sent as `X-Forwarded-For` (a client behind a trusted proxy).
    pub forwarded_for: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub location: String,
    pub set_cookie: String,
    pub body: String,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            agent: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(Duration::from_secs(30))
                .build(),
            base: base.to_string(),
            cookie: None,
            forwarded_for: None,
        }
    }

    pub fn finish(&mut self, r: Result<ureq::Response, ureq::Error>) -> Page {
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport: {e}"),
        };
        let set_cookie = resp.header("set-cookie").unwrap_or("").to_string();
        if let Some(v) = set_cookie
            .strip_prefix("skiff_session=")
            .and_then(|v| v.split(';').next())
        {
            self.cookie = (!v.is_empty()).then(|| v.to_string());
        }
        Page {
            status: resp.status(),
            location: resp.header("location").unwrap_or("").to_string(),
            set_cookie,
            body: resp.into_string().unwrap_or_default(),
        }
    }

    pub fn get(&mut self, path: &str) -> Page {
        let mut req = self.agent.get(&format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.set("Cookie", &format!("skiff_session={c}"));
        }
        if let Some(f) = &self.forwarded_for {
            req = req.set("X-Forwarded-For", f);
        }
        let r = req.call();
        self.finish(r)
    }

    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut req = self.agent.post(&format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.set("Cookie", &format!("skiff_session={c}"));
        }
        if let Some(f) = &self.forwarded_for {
            req = req.set("X-Forwarded-For", f);
        }
        let r = req.send_form(form);
        self.finish(r)
    }

    /// The CSRF token of the page at `path`.
    pub fn csrf(&mut self, path: &str) -> String {
        let p = self.get(path);
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        let at = p
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a token")
            + 19;
        p.body[at..at + 64].to_string()
    }

    pub fn sign_in(&mut self, user: &str, password: &str) -> Page {
        let t = self.csrf("/ui/login");
        self.post(
            "/ui/login",
            &[("csrf", &t), ("user", user), ("password", password)],
        )
    }
}
