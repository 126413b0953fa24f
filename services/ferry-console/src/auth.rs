//! Who may use the console: the one browser that opened the sign-in link.
//!
//! - The sign-in token (in the URL `ferry console` prints) is 256 random bits, compared in constant time, and
//!   good once: the first exchange consumes it, whatever the outcome of later ones.
//! - The exchange sets the session cookie ([`COOKIE`]: HttpOnly, SameSite=Strict, Path=/), another 256 random
//!   bits; there is one session, so a second sign-in is impossible without restarting the console.
//! - The session has its own CSRF token, which every page puts in every form and every POST must carry.
//! - The `Host` header must name this console's loopback address (DNS rebinding: a page of another site whose
//!   name resolves to 127.0.0.1 reaches the port, but with its own name in `Host`).
//!
//! No secret is ever logged: [`Secret`]'s `Debug` shows nothing of it.

use std::fmt;

/// The session cookie's name.
pub const COOKIE: &str = "ferry_console";

/// 32 random bytes, shown as 64 lower-case hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A fresh secret from the operating system's randomness.
    pub fn random() -> Secret {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).expect("the operating system's randomness");
        Secret(hex::encode(bytes))
    }

    /// The hex text (for the URL, the cookie or a form).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `offered` is this secret, in time that depends only on their lengths.
    pub fn matches(&self, offered: &str) -> bool {
        ct_eq(self.0.as_bytes(), offered.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Compares two byte strings in time independent of where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The one session, once the sign-in token was exchanged.
#[derive(Debug)]
pub struct Session {
    /// The cookie's value.
    pub id: Secret,
    /// The token every form carries.
    pub csrf: Secret,
    /// A message for the next page (what the last decision did).
    pub flash: Option<String>,
}

/// The console's sign-in state.
#[derive(Debug)]
pub struct Auth {
    login: Option<Secret>,
    session: Option<Session>,
}

/// What an attempt to sign in came to.
#[derive(Debug, PartialEq, Eq)]
pub enum SignIn {
    /// The token was right: the new session's cookie value.
    Ok(String),
    /// The token was used already (or a session exists).
    Used,
    /// The token is wrong.
    Wrong,
}

impl Auth {
    /// A console nobody signed in to yet, with a fresh sign-in token.
    pub fn new() -> Auth {
        Auth {
            login: Some(Secret::random()),
            session: None,
        }
    }

    /// The sign-in token, until it is exchanged.
    pub fn login_token(&self) -> Option<&Secret> {
        self.login.as_ref()
    }

    /// Exchanges the sign-in token for the session. A wrong token leaves the right one usable (the owner may
    /// have mistyped it); the right one works once.
    pub fn sign_in(&mut self, offered: &str) -> SignIn {
        match &self.login {
            None => SignIn::Used,
            Some(token) if token.matches(offered) => {
                self.login = None;
                let session = Session {
                    id: Secret::random(),
                    csrf: Secret::random(),
                    flash: None,
                };
                let cookie = session.id.expose().to_string();
                self.session = Some(session);
                SignIn::Ok(cookie)
            }
            Some(_) => SignIn::Wrong,
        }
    }

    /// The session, if someone signed in (callers have checked the cookie).
    pub fn current(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// [`Auth::current`], to change.
    pub fn current_mut(&mut self) -> Option<&mut Session> {
        self.session.as_mut()
    }

    /// The session whose cookie value is `offered`.
    pub fn session(&mut self, offered: &str) -> Option<&mut Session> {
        self.session.as_mut().filter(|s| s.id.matches(offered))
    }
}

impl Default for Auth {
    fn default() -> Auth {
        Auth::new()
    }
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(value: &str) -> String {
    format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/")
}

/// The session cookie's value in a `Cookie` header, if it has one.
pub fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .map(str::trim)
        .find_map(|pair| pair.strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Whether `host` (a `Host` header) names this console: a loopback address or `localhost`, on `port`.
pub fn host_is_loopback(host: &str, port: u16) -> bool {
    let Some((name, p)) = host.rsplit_once(':') else {
        return false;
    };
    p == port.to_string() && matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_token_works_once_and_a_wrong_one_leaves_it_usable() {
        let mut auth = Auth::new();
        let token = auth.login_token().unwrap().expose().to_string();
        assert_eq!(token.len(), 64);
        assert_eq!(auth.sign_in("0".repeat(64).as_str()), SignIn::Wrong);
        assert_eq!(auth.sign_in(""), SignIn::Wrong);
        let SignIn::Ok(cookie) = auth.sign_in(&token) else {
            panic!("the right token was refused");
        };
        assert_ne!(cookie, token);
        assert_eq!(auth.sign_in(&token), SignIn::Used);
        assert!(auth.login_token().is_none());
        assert!(auth.session(&cookie).is_some());
        assert!(auth.session(&token).is_none());
        assert!(auth.session("").is_none());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let mut auth = Auth::new();
        let token = auth.login_token().unwrap().expose().to_string();
        assert!(!format!("{auth:?}").contains(&token));
        let SignIn::Ok(cookie) = auth.sign_in(&token) else {
            panic!()
        };
        let shown = format!("{auth:?}");
        assert!(!shown.contains(&cookie), "{shown}");
        let csrf = auth.session(&cookie).unwrap().csrf.expose().to_string();
        assert!(!format!("{auth:?}").contains(&csrf));
    }

    #[test]
    fn constant_time_compare_is_a_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_found_among_others() {
        let c = set_cookie("ff");
        for part in ["ferry_console=ff", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(part), "{c}");
        }
        assert_eq!(cookie_value("a=1; ferry_console=xyz; b=2"), Some("xyz"));
        assert_eq!(cookie_value("ferry_consolex=1"), None);
        assert_eq!(cookie_value("a=1"), None);
    }

    #[test]
    fn only_loopback_hosts_on_our_port_are_ours() {
        assert!(host_is_loopback("127.0.0.1:8080", 8080));
        assert!(host_is_loopback("localhost:8080", 8080));
        assert!(host_is_loopback("[::1]:8080", 8080));
        for bad in [
            "127.0.0.1:8081",
            "evil.example:8080",
            "127.0.0.1.evil.example:8080",
            "127.0.0.1",
            "",
            "localhost",
        ] {
            assert!(!host_is_loopback(bad, 8080), "{bad}");
        }
    }
}
