//! Who may reach the server from a browser: the `Host` a request names and
//! the `Origin` of a WebSocket upgrade.
//!
//! - **DNS rebinding.** A page on `attacker.example` can make its own name
//!   resolve to 127.0.0.1 and then talk to a server on the visitor's
//!   machine as if it were same-origin; the request still names the
//!   attacker's host. So a server without authentication (development
//!   mode) answers only requests whose `Host` is a loopback name, unless
//!   `CEREBRAL_ALLOWED_HOSTS` says otherwise. With a token verifier the
//!   check applies only when that setting is given (a token is what a
//!   rebinding page does not have).
//! - **Cross-site WebSocket hijacking.** Browsers let any page open a
//!   WebSocket to any server (no CORS), and send its `Origin`. An upgrade
//!   is accepted from the server's own origin, from the configured CORS
//!   origins, and without `Origin` (non-browser clients); any other is 403
//!   before the socket exists.

use crate::error::code;
use crate::net::is_loopback_name;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

/// Paths answered whatever the `Host`: probes from an orchestrator name the
/// pod's address, and these answers hold nothing a page could steal.
const ANY_HOST_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Which `Host` names the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPolicy {
    /// Any name (`*`, or a token verifier configured and no list given).
    Any,
    /// Loopback names (`localhost`, `*.localhost`, 127.0.0.0/8, `[::1]`)
    /// and these names, lower-cased, without port.
    Listed(Vec<String>),
}

impl HostPolicy {
    /// The policy of `CEREBRAL_ALLOWED_HOSTS` (`allowed`): `*` is any
    /// name; names are added to the loopback ones; empty is loopback only
    /// in development mode (`auth_enabled` false) and any name otherwise.
    /// An entry that is not a bare host name is an error, so a typo stops
    /// the server instead of locking everyone out.
    pub fn new(allowed: &[String], auth_enabled: bool) -> anyhow::Result<HostPolicy> {
        let allowed: Vec<&str> = allowed
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
            .collect();
        if allowed.contains(&"*") {
            return Ok(HostPolicy::Any);
        }
        if allowed.is_empty() && auth_enabled {
            return Ok(HostPolicy::Any);
        }
        let mut names = Vec::new();
        for h in allowed {
            let bracketed = h.starts_with('[') && h.ends_with(']');
            let ok = !h.contains(['/', '*', '@', '?', '#'])
                && !h.contains(char::is_whitespace)
                && (bracketed || !h.contains(':'));
            if !ok {
                anyhow::bail!(
                    "CEREBRAL_ALLOWED_HOSTS: `{h}` is not a host name (no scheme, port or path; `[…]` for IPv6; or `*` for any)"
                );
            }
            names.push(h.to_ascii_lowercase());
        }
        Ok(HostPolicy::Listed(names))
    }

    /// Whether a request naming `authority` (a `Host` value: name and
    /// optional port) is answered. A request naming none (HTTP/1.0 from a
    /// script) comes from no browser and is.
    pub fn allows(&self, authority: Option<&str>) -> bool {
        let Some(authority) = authority else {
            return true;
        };
        match self {
            HostPolicy::Any => true,
            HostPolicy::Listed(names) => {
                let (name, _) = split_authority(authority);
                is_loopback_name(name) || names.iter().any(|n| n.eq_ignore_ascii_case(name))
            }
        }
    }
}

/// A `host[:port]` authority as (host, port); an IPv6 host keeps its
/// brackets.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => {
                let (host, rest) = authority.split_at(end + 1);
                (host, rest.strip_prefix(':'))
            }
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (authority, None),
    }
}

/// The authority a request names: its `Host` header, else (HTTP/2) the
/// URI's.
pub fn request_authority<'a>(headers: &'a HeaderMap, uri: &'a axum::http::Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

/// Refuses a request whose `Host` the policy does not allow: 403
/// `FORBIDDEN`, before routing, so nothing runs.
pub async fn check_host(
    State(policy): State<std::sync::Arc<HostPolicy>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let allowed = ANY_HOST_PATHS.contains(&req.uri().path())
        || policy.allows(request_authority(req.headers(), req.uri()));
    if allowed {
        return next.run(req).await;
    }
    super::error_response(
        StatusCode::FORBIDDEN,
        "this host name is not served: without authentication only loopback names (localhost, 127.0.0.1, [::1]) are, unless CEREBRAL_ALLOWED_HOSTS lists it",
        code::FORBIDDEN,
    )
}

/// Whether a WebSocket upgrade's `Origin` may open a socket: none (a
/// non-browser client), the server's own origin (the same authority as
/// the `Host` the request names, default ports aside), or one of the CORS
/// origins (`*` allows any).
pub fn origin_allowed(origin: Option<&str>, authority: Option<&str>, cors: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim();
    if cors
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    // `null` (a sandboxed frame, a file) and anything unparseable are
    // nobody's own origin.
    let Some((scheme, origin_authority)) = origin.split_once("://") else {
        return false;
    };
    let Some(authority) = authority else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let (origin_host, origin_port) = split_authority(origin_authority);
    let (host, port) = split_authority(authority);
    origin_host.eq_ignore_ascii_case(host)
        && origin_port.unwrap_or(default_port) == port.unwrap_or(default_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_are_recognised_and_others_are_not() {
        for name in [
            "localhost",
            "LOCALHOST",
            "app.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
            "localhost.",
        ] {
            assert!(is_loopback_name(name), "{name}");
        }
        for name in [
            "localhost.attacker.example",
            "attacker.example",
            "0.0.0.0",
            "10.0.0.1",
            "[::]",
            "128.0.0.1",
            "",
        ] {
            assert!(!is_loopback_name(name), "{name}");
        }
    }

    #[test]
    fn the_host_policy_allows_loopback_and_listed_names_only() {
        let dev = HostPolicy::new(&[], false).expect("policy");
        assert!(dev.allows(Some("127.0.0.1:8000")));
        assert!(dev.allows(Some("localhost:8000")));
        assert!(dev.allows(Some("[::1]:8000")));
        assert!(dev.allows(None));
        assert!(!dev.allows(Some("attacker.example:8000")));
        assert!(!dev.allows(Some("attacker.example")));
        assert!(!dev.allows(Some("192.168.1.10:8000")));
        assert_eq!(HostPolicy::new(&[], true).expect("policy"), HostPolicy::Any);
        let listed = HostPolicy::new(&["Cerebral.Internal".into(), "[fd00::1]".into()], true)
            .expect("policy");
        assert!(listed.allows(Some("cerebral.internal:8000")));
        assert!(listed.allows(Some("[fd00::1]:8000")));
        assert!(listed.allows(Some("localhost")));
        assert!(!listed.allows(Some("attacker.example")));
        assert_eq!(
            HostPolicy::new(&["*".into()], false).expect("policy"),
            HostPolicy::Any
        );
        for bad in ["http://x", "x:8000", "x/y", "a b"] {
            assert!(HostPolicy::new(&[bad.into()], false).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_origin_is_allowed_when_absent_same_origin_or_listed() {
        let none: &[String] = &[];
        assert!(origin_allowed(None, Some("127.0.0.1:8000"), none));
        assert!(origin_allowed(
            Some("http://127.0.0.1:8000"),
            Some("127.0.0.1:8000"),
            none
        ));
        assert!(origin_allowed(
            Some("https://cerebral.example"),
            Some("cerebral.example:443"),
            none
        ));
        assert!(origin_allowed(
            Some("http://[::1]:8000"),
            Some("[::1]:8000"),
            none
        ));
        assert!(!origin_allowed(
            Some("http://attacker.example"),
            Some("127.0.0.1:8000"),
            none
        ));
        assert!(!origin_allowed(
            Some("http://127.0.0.1:9000"),
            Some("127.0.0.1:8000"),
            none
        ));
        assert!(!origin_allowed(Some("null"), Some("127.0.0.1:8000"), none));
        assert!(!origin_allowed(Some("http://127.0.0.1:8000"), None, none));
        let cors = vec!["https://app.example".to_string()];
        assert!(origin_allowed(
            Some("https://app.example"),
            Some("api.example"),
            &cors
        ));
        assert!(origin_allowed(
            Some("https://anything.example"),
            Some("api.example"),
            &["*".to_string()]
        ));
    }
}
