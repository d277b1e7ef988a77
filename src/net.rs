//! Client addresses: who is really calling (trusted proxies, `X-Forwarded-For`) and whether an
//! address is in a key's allowlist (SPEC §4.3, §4.1 `ip_not_allowed`). Pure functions, no I/O.

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses an address or CIDR range; a bare address becomes a single-host range.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| format!("{text:?} is not an IP address or CIDR range"))
}

/// Whether `ip` may use a key with this allowlist (empty: any address).
pub fn allowed(allowlist: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    allowlist.is_empty() || allowlist.iter().any(|net| net.contains(&ip))
}

/// The client address used for allowlists, limits and logs.
///
/// The direct peer, unless the peer is a trusted proxy: then the right-most `X-Forwarded-For` entry
/// that is not itself trusted (every entry trusted: the left-most; header missing or unparsable:
/// the peer). `forwarded_for` holds every `X-Forwarded-For` header value in order.
pub fn client_ip<'a>(peer: IpAddr, trusted: &[IpNet], forwarded_for: impl IntoIterator<Item = &'a [u8]>) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return peer;
    }
    let mut hops = Vec::new();
    for value in forwarded_for {
        let Ok(text) = std::str::from_utf8(value) else {
            return peer;
        };
        for part in text.split(',') {
            match parse_forwarded_ip(part.trim()) {
                Some(ip) => hops.push(ip.to_canonical()),
                None => return peer,
            }
        }
    }
    hops.iter().rev().find(|ip| !trusted.iter().any(|net| net.contains(*ip))).or(hops.first()).copied().unwrap_or(peer)
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]`, possibly with a port.
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = entry.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(items: &[&str]) -> Vec<IpNet> {
        items.iter().map(|t| parse_cidr(t).unwrap()).collect()
    }

    #[test]
    fn cidrs_and_bare_addresses_parse() {
        assert_eq!(parse_cidr("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
        for bad in ["", "10.0.0.0/33", "10.0.0", "example.com", "1.2.3.4/-1"] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allowlists_match_v4_v6_and_mapped_addresses() {
        let list = nets(&["127.0.0.2/32", "2001:db8::/32"]);
        assert!(allowed(&list, ip("127.0.0.2")));
        assert!(!allowed(&list, ip("127.0.0.1")));
        assert!(allowed(&list, ip("::ffff:127.0.0.2")));
        assert!(allowed(&list, ip("2001:db8::7")));
        assert!(allowed(&[], ip("203.0.113.9")));
    }

    #[test]
    fn untrusted_peers_are_the_client() {
        let xff: [&[u8]; 1] = [b"10.9.9.9"];
        assert_eq!(client_ip(ip("192.0.2.1"), &[], xff), ip("192.0.2.1"));
    }

    #[test]
    fn trusted_peers_yield_the_rightmost_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        let xff: [&[u8]; 2] = [b"203.0.113.5, 198.51.100.7", b"10.0.0.3"];
        assert_eq!(client_ip(ip("10.0.0.1"), &trusted, xff), ip("198.51.100.7"));
    }

    #[test]
    fn all_trusted_hops_yield_the_leftmost() {
        let trusted = nets(&["10.0.0.0/8"]);
        let xff: [&[u8]; 1] = [b"10.0.0.9, 10.0.0.8"];
        assert_eq!(client_ip(ip("10.0.0.1"), &trusted, xff), ip("10.0.0.9"));
    }

    #[test]
    fn missing_or_garbled_headers_fall_back_to_the_peer() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &trusted, std::iter::empty()), ip("10.0.0.1"));
        let garbled: [&[u8]; 1] = [b"203.0.113.5, not-an-ip"];
        assert_eq!(client_ip(ip("10.0.0.1"), &trusted, garbled), ip("10.0.0.1"));
        let bytes: [&[u8]; 1] = [b"\xff"];
        assert_eq!(client_ip(ip("10.0.0.1"), &trusted, bytes), ip("10.0.0.1"));
        let ported: [&[u8]; 1] = [b"[2001:db8::1]:443, 203.0.113.5:80"];
        assert_eq!(client_ip(ip("10.0.0.1"), &trusted, ported), ip("203.0.113.5"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn cidr_parsing_never_panics(text in "[0-9a-fA-F:./ x-]{0,50}") {
                let _ = parse_cidr(&text);
            }

            #[test]
            fn forwarded_headers_never_panic_and_untrusted_peers_are_believed_only(
                peer in any::<[u8; 4]>(),
                values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..4),
            ) {
                let all = vec![parse_cidr("0.0.0.0/0").unwrap(), parse_cidr("::/0").unwrap()];
                let _ = client_ip(IpAddr::from(peer), &all, values.iter().map(Vec::as_slice));
                // A peer that is not a trusted proxy is the client, whatever it forwards.
                prop_assert_eq!(client_ip(IpAddr::from(peer), &[], values.iter().map(Vec::as_slice)), IpAddr::from(peer));
            }

            #[test]
            fn v4_addresses_are_in_their_own_network(addr in any::<[u8; 4]>(), len in 0u8..=32) {
                let net = ipnet::Ipv4Net::new(addr.into(), len).unwrap().trunc();
                prop_assert!(allowed(&[IpNet::V4(net)], IpAddr::from(addr)));
            }
        }
    }
}
