//! Who is asking, for the per-client limits on login and registration. Limiting those per username let anyone
//! lock a user out by spending that user's allowance; a signature login cannot be guessed, so what needs bounding
//! is each client's load, not each account's attempts.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::AppState;
use crate::config::Config;

/// The peer of a connection, put on each request by the connection loop (`crate::connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// A client's address as a rate-limit key, or `None` for a client on this machine when no proxy is configured
/// (the embedded relay's own profiles, local tools), which is not limited. IPv6 clients are grouped by /64, the
/// block one subscriber holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub Option<String>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts.extensions.get::<ConnectInfo<PeerAddr>>().map(|c| c.0 .0.ip());
        Ok(Self(client_key(peer, &parts.headers, &state.config)))
    }
}

/// Who a request comes from, as [`ClientAddr`] keys it. Behind a proxy every peer is the proxy, so its header
/// names the client, but only a trusted proxy's header: anyone else could write any address into it. With a
/// proxy configured nobody is exempt (the proxy itself usually runs on this machine).
fn client_key(peer: Option<IpAddr>, headers: &HeaderMap, config: &Config) -> Option<String> {
    let peer = unmapped(peer?);
    match config.client_ip_header.as_deref() {
        None => (!peer.is_loopback()).then(|| limit_key(peer)),
        Some(name) => {
            let trusted = config.trusted_proxies.iter().any(|proxy| unmapped(*proxy) == peer);
            let client = match trusted {
                true => forwarded_ip(headers, name).map_or(peer, unmapped),
                false => peer,
            };
            Some(limit_key(client))
        }
    }
}

/// Whether `/metrics` may be served: with the configured token, or to this machine when no proxy is configured.
pub(crate) fn may_see_metrics(peer: Option<IpAddr>, headers: &HeaderMap, config: &Config) -> bool {
    if let Some(token) = config.metrics_token.as_deref() {
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|b| b.len() == token.len() && openssl::memcmp::eq(b.as_bytes(), token.as_bytes())) {
            return true;
        }
    }
    config.client_ip_header.is_none() && peer.is_some_and(|p| unmapped(p).is_loopback())
}

/// The last address of the last such header: the one our proxy added (earlier ones came from the client).
fn forwarded_ip(headers: &HeaderMap, name: &str) -> Option<IpAddr> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    let last = value.rsplit(',').next()?.trim();
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) as the IPv4 address it is.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn limit_key(ip: IpAddr) -> String {
    match unmapped(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(peer: &str, header: Option<&str>, config: &Config) -> Option<String> {
        let mut headers = HeaderMap::new();
        if let Some(value) = header {
            headers.insert("x-forwarded-for", value.parse().unwrap());
        }
        client_key(Some(peer.parse().unwrap()), &headers, config)
    }

    #[test]
    fn keys_group_ipv6_by_64_and_skip_this_machine_without_a_proxy() {
        let config = Config::with_data_dir("/unused");
        let plain = |peer: &str| key(peer, None, &config);
        assert_eq!(plain("192.0.2.7"), Some("192.0.2.7".into()));
        assert_eq!(plain("2001:db8:1:2:aaaa::1"), plain("2001:db8:1:2:bbbb::9"));
        assert_ne!(plain("2001:db8:1:2::1"), plain("2001:db8:1:3::1"));
        assert_eq!(plain("::ffff:192.0.2.7"), Some("192.0.2.7".into()));
        assert_eq!(plain("127.0.0.1"), None);
        assert_eq!(plain("::1"), None);
        assert_eq!(plain("::ffff:127.0.0.1"), None);
        // Without a proxy configured, a header is anybody's word.
        assert_eq!(key("192.0.2.7", Some("203.0.113.1"), &config), Some("192.0.2.7".into()));
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client_and_nobody_is_exempt_behind_one() {
        let mut config = Config::with_data_dir("/unused");
        config.client_ip_header = Some("x-forwarded-for".into());
        config.trusted_proxies = vec!["10.0.0.5".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        let via_proxy = key("10.0.0.5", Some("203.0.113.1"), &config);
        assert_eq!(via_proxy, Some("203.0.113.1".into()));
        assert_eq!(
            key("::ffff:10.0.0.5", Some("203.0.113.2"), &config),
            Some("203.0.113.2".into())
        );
        assert_eq!(
            key("192.0.2.9", Some("203.0.113.1"), &config),
            Some("192.0.2.9".into()),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            key("127.0.0.1", None, &config),
            Some("127.0.0.1".into()),
            "no exemption"
        );
        assert_eq!(key("127.0.0.1", Some("127.0.0.1"), &config), Some("127.0.0.1".into()));
    }

    #[test]
    fn metrics_go_to_this_machine_without_a_proxy_or_to_the_token() {
        let mut config = Config::with_data_dir("/unused");
        let none = HeaderMap::new();
        let local = Some("127.0.0.1".parse().unwrap());
        let remote = Some("192.0.2.7".parse().unwrap());
        assert!(may_see_metrics(local, &none, &config));
        assert!(!may_see_metrics(remote, &none, &config));
        config.metrics_token = Some("s3cret-token".into());
        let mut with_token = HeaderMap::new();
        with_token.insert("authorization", "Bearer s3cret-token".parse().unwrap());
        let mut wrong = HeaderMap::new();
        wrong.insert("authorization", "Bearer s3cret-tokex".parse().unwrap());
        assert!(may_see_metrics(remote, &with_token, &config));
        assert!(!may_see_metrics(remote, &wrong, &config));
        config.client_ip_header = Some("x-forwarded-for".into());
        assert!(
            !may_see_metrics(local, &none, &config),
            "behind a proxy, this machine may be anyone"
        );
        assert!(may_see_metrics(local, &with_token, &config));
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
