//! Facts about host names, shared by the HTTP layer (Origin and Host
//! checks) and the JWKS client (plain `http://` only to this machine).

use std::net::IpAddr;

/// Whether `name` (a host name without port; IPv6 with or without
/// brackets) can only mean this machine: `localhost` and its subdomains
/// (RFC 6761), 127.0.0.0/8 and `::1`.
pub fn is_loopback_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    let lower = bare.to_ascii_lowercase();
    lower == "localhost"
        || lower.ends_with(".localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
