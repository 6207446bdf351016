//! Who is asking, for the per-client limits on login and registration. Limiting those per username let anyone
//! lock a user out by spending that user's allowance; a signature login cannot be guessed, so what needs bounding
//! is each client's load, not each account's attempts.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::AppState;

/// The peer of a connection, put on each request by the connection loop (`crate::connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// A client's address as a rate-limit key, or `None` for a client on this machine, which is not limited (the
/// embedded relay's own profiles, local tools). IPv6 clients are grouped by /64, the block one subscriber holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub Option<String>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts.extensions.get::<ConnectInfo<PeerAddr>>().map(|c| c.0 .0.ip());
        // Behind a proxy every peer is the proxy: the operator names the header it writes the client into.
        let forwarded = state
            .config
            .client_ip_header
            .as_deref()
            .and_then(|name| forwarded_ip(&parts.headers, name));
        Ok(Self(forwarded.or(peer).and_then(limit_key)))
    }
}

/// The last address of the last such header: the one our proxy added (earlier ones came from the client).
fn forwarded_ip(headers: &HeaderMap, name: &str) -> Option<IpAddr> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let last = value.rsplit(',').next()?.trim();
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

fn limit_key(ip: IpAddr) -> Option<String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return None;
    }
    Some(match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_ipv6_by_64_and_skip_loopback() {
        let key = |s: &str| limit_key(s.parse().unwrap());
        assert_eq!(key("192.0.2.7"), Some("192.0.2.7".into()));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), Some("192.0.2.7".into()));
        assert_eq!(key("127.0.0.1"), None);
        assert_eq!(key("::1"), None);
        assert_eq!(key("::ffff:127.0.0.1"), None);
    }

    #[test]
    fn the_proxy_added_address_is_the_last_one() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "203.0.113.9, 198.51.100.4".parse().unwrap());
        assert_eq!(
            forwarded_ip(&headers, "x-forwarded-for"),
            Some("198.51.100.4".parse().unwrap())
        );
        headers.append("x-forwarded-for", "[2001:db8::5]:443".parse().unwrap());
        assert_eq!(
            forwarded_ip(&headers, "X-Forwarded-For"),
            Some("2001:db8::5".parse().unwrap())
        );
        assert_eq!(forwarded_ip(&headers, "x-real-ip"), None);
        headers.insert("x-real-ip", "not an address".parse().unwrap());
        assert_eq!(forwarded_ip(&headers, "x-real-ip"), None);
    }
}
