//! Which client a request comes from, for per-IP limits.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Proxies whose `X-Forwarded-For` is believed. Empty: only the socket counts.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy, in
    /// which case `X-Forwarded-For` is walked from the right, skipping trusted
    /// hops, to the first address a trusted proxy vouched for. Entries further
    /// left were written by the client and can be forged.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer.ip());
        if !self.trusts(client) {
            return client;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else { break };
            client = canonical(ip);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The key a per-IP limit counts under: the address itself for IPv4, the /64
/// for IPv6 (one host usually owns a whole /64, so counting single addresses
/// would let it rotate through 2^64 of them).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_str(xff).expect("ascii"),
        );
        h
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().expect("ip"), 1234)
    }

    #[test]
    fn forwarded_headers_are_ignored_without_trusted_proxies() {
        let none = TrustedProxies::default();
        let ip = none.client_ip(peer("203.0.113.9"), &headers("1.2.3.4"));
        assert_eq!(ip, "203.0.113.9".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn trusted_proxy_hops_are_skipped_from_the_right() {
        let trusted = TrustedProxies(vec!["10.0.0.0/8".parse().expect("cidr")]);
        let ip = trusted.client_ip(
            peer("10.0.0.1"),
            &headers("6.6.6.6, 198.51.100.7, 10.0.0.2"),
        );
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().expect("ip"));
        let spoof = trusted.client_ip(peer("10.0.0.1"), &headers("garbage, 198.51.100.7"));
        assert_eq!(spoof, "198.51.100.7".parse::<IpAddr>().expect("ip"));
        let untrusted_peer = trusted.client_ip(peer("192.0.2.1"), &headers("198.51.100.7"));
        assert_eq!(untrusted_peer, "192.0.2.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn ipv6_clients_are_limited_per_slash_64() {
        let a = limit_key("2001:db8:1:2:aaaa::1".parse().expect("ip"));
        let b = limit_key("2001:db8:1:2:bbbb::9".parse().expect("ip"));
        let c = limit_key("2001:db8:1:3::1".parse().expect("ip"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            canonical("::ffff:1.2.3.4".parse().expect("ip")),
            "1.2.3.4".parse::<IpAddr>().expect("ip")
        );
    }
}
