//! The PROXY protocol header (v1 text, v2 binary) that L4 balancers such as HAProxy put
//! before a client's bytes, so the relay sees the client's address instead of the
//! balancer's. Sans-IO: bytes in, the addresses and the header's length out.
//!
//! ```
//! use rtmp_edge::proxy_protocol::{parse, ProxyHeader, Parsed};
//!
//! let bytes = b"PROXY TCP4 192.0.2.7 198.51.100.1 50000 1935\r\n\x03";
//! let Ok(Parsed::Done { header, consumed }) = parse(bytes) else { panic!() };
//! assert_eq!(consumed, bytes.len() - 1); // the RTMP C0 byte that followed is not eaten
//! assert_eq!(header, ProxyHeader::Proxied {
//!     source: "192.0.2.7:50000".parse().unwrap(),
//!     destination: "198.51.100.1:1935".parse().unwrap(),
//! });
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included (the spec's figure).
pub const V1_MAX_LENGTH: usize = 107;
/// The longest v2 header accepted: 16 bytes plus addresses and TLVs. HAProxy's TLVs are a
/// few dozen bytes; the protocol allows 64 KiB, which no balancer sends.
pub const V2_MAX_LENGTH: usize = 16 + 512;

/// What the header says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A proxied connection: the client's address and the address it connected to.
    Proxied {
        /// The client.
        source: SocketAddr,
        /// Where the client connected (the balancer's front).
        destination: SocketAddr,
    },
    /// The balancer speaking for itself (a health check; v1 `UNKNOWN`, v2 `LOCAL`, or a v2
    /// family we do not map): use the socket's own addresses.
    Local,
}

/// How far parsing got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed (and what arrived so far can still be a header).
    Incomplete,
    /// The header, and how many input bytes it took; what follows is the client's.
    Done {
        /// What it says.
        header: ProxyHeader,
        /// Its length in bytes.
        consumed: usize,
    },
}

/// Why the bytes are not a PROXY header we accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// The bytes start with something else (no header was sent).
    Missing,
    /// A v1 line longer than 107 bytes, or a v2 header longer than [`V2_MAX_LENGTH`].
    TooLong,
    /// A v1 line that does not follow the grammar.
    BadV1(&'static str),
    /// A v2 header with a bad version, command or address block.
    BadV2(&'static str),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Missing => write!(f, "no PROXY protocol header"),
            ProxyError::TooLong => write!(f, "PROXY protocol header too long"),
            ProxyError::BadV1(why) => write!(f, "bad PROXY v1 header: {why}"),
            ProxyError::BadV2(why) => write!(f, "bad PROXY v2 header: {why}"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Parses a PROXY header (v1 or v2) at the start of `input`.
pub fn parse(input: &[u8]) -> Result<Parsed, ProxyError> {
    const V1_PREFIX: &[u8] = b"PROXY ";
    if starts_like(input, &V2_SIGNATURE) {
        return parse_v2(input);
    }
    if starts_like(input, V1_PREFIX) {
        return parse_v1(input);
    }
    Err(ProxyError::Missing)
}

/// Whether `input` and `prefix` agree on their common length (so `input` may still become
/// `prefix`, or already starts with it).
fn starts_like(input: &[u8], prefix: &[u8]) -> bool {
    let common = input.len().min(prefix.len());
    input.get(..common) == prefix.get(..common)
}

fn parse_v1(input: &[u8]) -> Result<Parsed, ProxyError> {
    let window = input.get(..input.len().min(V1_MAX_LENGTH)).unwrap_or_default();
    let Some(end) = window.windows(2).position(|pair| pair == b"\r\n") else {
        return if input.len() >= V1_MAX_LENGTH { Err(ProxyError::TooLong) } else { Ok(Parsed::Incomplete) };
    };
    let line = std::str::from_utf8(window.get(..end).unwrap_or_default()).map_err(|_| ProxyError::BadV1("not ASCII"))?;
    let consumed = end + 2;
    let mut fields = line.split(' ');
    fields.next(); // "PROXY"
    let header = match fields.next() {
        Some("UNKNOWN") => ProxyHeader::Local,
        Some(family @ ("TCP4" | "TCP6")) => {
            let mut next = || fields.next().ok_or(ProxyError::BadV1("missing field"));
            let (source_ip, destination_ip) = (next()?, next()?);
            let (source_port, destination_port) = (next()?, next()?);
            if fields.next().is_some() {
                return Err(ProxyError::BadV1("extra fields"));
            }
            let ip = |text: &str| -> Result<IpAddr, ProxyError> {
                let ip: IpAddr = text.parse().map_err(|_| ProxyError::BadV1("bad address"))?;
                match (family, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(ProxyError::BadV1("address does not match the family")),
                }
            };
            let port = |text: &str| -> Result<u16, ProxyError> {
                // The grammar has no signs and no leading zeros beyond "0" itself.
                if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) || (text.len() > 1 && text.starts_with('0')) {
                    return Err(ProxyError::BadV1("bad port"));
                }
                text.parse().map_err(|_| ProxyError::BadV1("bad port"))
            };
            ProxyHeader::Proxied {
                source: SocketAddr::new(ip(source_ip)?, port(source_port)?),
                destination: SocketAddr::new(ip(destination_ip)?, port(destination_port)?),
            }
        }
        _ => return Err(ProxyError::BadV1("unknown protocol family")),
    };
    Ok(Parsed::Done { header, consumed })
}

fn parse_v2(input: &[u8]) -> Result<Parsed, ProxyError> {
    let Some(fixed) = input.get(..16) else { return Ok(Parsed::Incomplete) };
    let (version_command, family, length) = match fixed {
        [_, _, _, _, _, _, _, _, _, _, _, _, vc, fam, hi, lo] => (*vc, *fam, usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => return Ok(Parsed::Incomplete),
    };
    if version_command >> 4 != 2 {
        return Err(ProxyError::BadV2("version is not 2"));
    }
    let consumed = 16 + length;
    if consumed > V2_MAX_LENGTH {
        return Err(ProxyError::TooLong);
    }
    let Some(block) = input.get(16..consumed) else { return Ok(Parsed::Incomplete) };
    let header = match version_command & 0x0F {
        0x0 => ProxyHeader::Local,
        0x1 => match family {
            // TCP (or UDP) over IPv4: 4 + 4 + 2 + 2 bytes.
            0x11 | 0x12 => match block.get(..12) {
                Some([s0, s1, s2, s3, d0, d1, d2, d3, sp0, sp1, dp0, dp1]) => ProxyHeader::Proxied {
                    source: SocketAddr::new(Ipv4Addr::new(*s0, *s1, *s2, *s3).into(), u16::from_be_bytes([*sp0, *sp1])),
                    destination: SocketAddr::new(Ipv4Addr::new(*d0, *d1, *d2, *d3).into(), u16::from_be_bytes([*dp0, *dp1])),
                },
                _ => return Err(ProxyError::BadV2("IPv4 address block too short")),
            },
            // Over IPv6: 16 + 16 + 2 + 2 bytes.
            0x21 | 0x22 => {
                let field = |range: std::ops::Range<usize>| block.get(range).ok_or(ProxyError::BadV2("IPv6 address block too short"));
                let ipv6 = |bytes: &[u8]| -> Ipv6Addr {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(bytes);
                    Ipv6Addr::from(octets)
                };
                let port = |bytes: &[u8]| u16::from_be_bytes([bytes.first().copied().unwrap_or(0), bytes.get(1).copied().unwrap_or(0)]);
                ProxyHeader::Proxied {
                    source: SocketAddr::new(ipv6(field(0..16)?).into(), port(field(32..34)?)),
                    destination: SocketAddr::new(ipv6(field(16..32)?).into(), port(field(34..36)?)),
                }
            }
            // UNSPEC or UNIX sockets: nothing we can use; treat as the balancer's own.
            _ => ProxyHeader::Local,
        },
        _ => return Err(ProxyError::BadV2("unknown command")),
    };
    Ok(Parsed::Done { header, consumed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(input: &[u8]) -> (ProxyHeader, usize) {
        match parse(input) {
            Ok(Parsed::Done { header, consumed }) => (header, consumed),
            other => panic!("not done: {other:?}"),
        }
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let line = b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 1935\r\n";
        assert_eq!(
            done(line),
            (
                ProxyHeader::Proxied {
                    source: "[2001:db8::1]:65535".parse().unwrap(),
                    destination: "[2001:db8::2]:1935".parse().unwrap()
                },
                line.len()
            )
        );
        assert_eq!(done(b"PROXY UNKNOWN\r\n"), (ProxyHeader::Local, 15));
        assert_eq!(done(b"PROXY UNKNOWN ffff:f...f:ffff 1 2 3 4\r\nrest"), (ProxyHeader::Local, 39));
    }

    #[test]
    fn v1_arrives_in_pieces() {
        let line = b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n";
        for cut in 0..line.len() {
            assert_eq!(parse(&line[..cut]), Ok(Parsed::Incomplete), "after {cut} bytes");
        }
        assert_eq!(done(line).1, line.len());
    }

    #[test]
    fn v1_refusals() {
        assert_eq!(parse(b"\x03\x00\x00"), Err(ProxyError::Missing), "RTMP C0 without a header");
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::Missing));
        assert_eq!(parse(&[b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat()), Err(ProxyError::TooLong));
        assert_eq!(parse(b"PROXY TCP4 10.0.0.1 ::1 1 2\r\n"), Err(ProxyError::BadV1("address does not match the family")));
        assert_eq!(parse(b"PROXY TCP4 10.0.0.1 10.0.0.2 01 2\r\n"), Err(ProxyError::BadV1("bad port")));
        assert_eq!(parse(b"PROXY TCP4 10.0.0.1 10.0.0.2 70000 2\r\n"), Err(ProxyError::BadV1("bad port")));
        assert_eq!(parse(b"PROXY TCP4 10.0.0.1 10.0.0.2 1\r\n"), Err(ProxyError::BadV1("missing field")));
        assert_eq!(parse(b"PROXY UDP4 a b c d\r\n"), Err(ProxyError::BadV1("unknown protocol family")));
    }

    /// A v2 PROXY header for TCP over IPv4 as HAProxy's send-proxy-v2 writes it, with one
    /// TLV (type 0x04 NOOP, 3 bytes).
    const V2_TCP4: [u8; 34] = [
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, // signature
        0x21, 0x11, 0x00, 0x12, // v2 PROXY, TCP over IPv4, 18 bytes follow
        192, 0, 2, 7, 198, 51, 100, 1, // source, destination
        0xC3, 0x50, 0x07, 0x8F, // ports 50000, 1935
        0x04, 0x00, 0x03, 0xAA, 0xBB, 0xCC, // TLV
    ];

    #[test]
    fn v2_tcp4_with_a_tlv() {
        let mut input = V2_TCP4.to_vec();
        input.push(0x03);
        assert_eq!(
            done(&input),
            (
                ProxyHeader::Proxied { source: "192.0.2.7:50000".parse().unwrap(), destination: "198.51.100.1:1935".parse().unwrap() },
                34
            )
        );
        for cut in 0..V2_TCP4.len() {
            assert_eq!(parse(&V2_TCP4[..cut]), Ok(Parsed::Incomplete), "after {cut} bytes");
        }
    }

    #[test]
    fn v2_tcp6_local_and_refusals() {
        let mut tcp6 = V2_SIGNATURE.to_vec();
        tcp6.extend_from_slice(&[0x21, 0x21, 0x00, 36]);
        tcp6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        tcp6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        tcp6.extend_from_slice(&[0x00, 0x50, 0x07, 0x8F]);
        assert_eq!(
            done(&tcp6),
            (ProxyHeader::Proxied { source: "[2001:db8::7]:80".parse().unwrap(), destination: "[::1]:1935".parse().unwrap() }, 52)
        );
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(done(&local), (ProxyHeader::Local, 16), "a health check");
        let mut bad_version = local.clone();
        bad_version[12] = 0x11;
        assert_eq!(parse(&bad_version), Err(ProxyError::BadV2("version is not 2")));
        let mut huge = local.clone();
        huge[14] = 0xFF;
        assert_eq!(parse(&huge), Err(ProxyError::TooLong));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4]);
        assert_eq!(parse(&short), Err(ProxyError::BadV2("IPv4 address block too short")));
    }

    /// Bytes HAProxy 2.6.12 (Debian 12) wrote to a backend on loopback, captured from the
    /// socket, each followed by the client's first byte (0x03, RTMP's C0).
    #[test]
    fn haproxy_2_6_as_captured() {
        let local_host = |port: u16| -> SocketAddr { SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port) };
        // `send-proxy`.
        let v1 = b"PROXY TCP4 127.0.0.1 127.0.0.1 55482 47102\r\n\x03";
        let proxied = ProxyHeader::Proxied { source: local_host(55482), destination: local_host(47102) };
        assert_eq!(done(v1), (proxied, 44));
        // `send-proxy-v2`.
        let v2: [u8; 29] = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c, 0x7f, 0x00,
            0x00, 0x01, 0x7f, 0x00, 0x00, 0x01, 0xd5, 0x06, 0xb7, 0xfd, 0x03,
        ];
        let proxied = ProxyHeader::Proxied { source: local_host(54534), destination: local_host(47101) };
        assert_eq!(done(&v2), (proxied, 28));
        // `send-proxy-v2 proxy-v2-options unique-id`: a PP2_TYPE_UNIQUE_ID TLV ("abc123").
        let with_tlv: [u8; 38] = [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x15, 0x7f, 0x00,
            0x00, 0x01, 0x7f, 0x00, 0x00, 0x01, 0xc2, 0x90, 0xb8, 0x01, 0x05, 0x00, 0x06, b'a', b'b', b'c', b'1', b'2',
            b'3', 0x03,
        ];
        let proxied = ProxyHeader::Proxied { source: local_host(49808), destination: local_host(47105) };
        assert_eq!(done(&with_tlv), (proxied, 37));
        // A health check (`check` on a `send-proxy-v2` server): LOCAL, and nothing else.
        let check: [u8; 16] = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00];
        assert_eq!(done(&check), (ProxyHeader::Local, 16));
    }

    #[test]
    fn bounds_hold_to_the_byte() {
        // The longest v1 line is accepted; one byte more without CRLF is refused.
        let mut longest = b"PROXY UNKNOWN ".to_vec();
        longest.resize(V1_MAX_LENGTH - 2, b'x');
        longest.extend_from_slice(b"\r\n");
        assert_eq!(done(&longest), (ProxyHeader::Local, V1_MAX_LENGTH));
        let mut too_long = longest.clone();
        too_long.insert(20, b'x');
        assert_eq!(parse(&too_long), Err(ProxyError::TooLong));
        assert_eq!(parse(&too_long[..V1_MAX_LENGTH - 1]), Ok(Parsed::Incomplete));
        // The longest v2 header (TLVs to the bound) is accepted, one byte more is refused
        // from the fixed 16 bytes alone, before the rest arrives.
        let v2_with = |length: usize| {
            let mut header = V2_SIGNATURE.to_vec();
            header.extend_from_slice(&[0x21, 0x11]);
            header.extend_from_slice(&(length as u16).to_be_bytes());
            header.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2, 0, 1, 0, 2]);
            header.resize(16 + length, 0x04);
            header
        };
        assert_eq!(done(&v2_with(V2_MAX_LENGTH - 16)).1, V2_MAX_LENGTH);
        assert_eq!(parse(&v2_with(V2_MAX_LENGTH - 15)[..16]), Err(ProxyError::TooLong));
        // A CR alone is not the end of a v1 line; non-ASCII is refused.
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4\r"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"PROXY TCP4 \xff\r\n"), Err(ProxyError::BadV1("not ASCII")));
    }

    #[test]
    fn v2_commands_and_families_we_do_not_map() {
        let with = |command: u8, family: u8, block: &[u8]| {
            let mut header = V2_SIGNATURE.to_vec();
            header.extend_from_slice(&[command, family]);
            header.extend_from_slice(&(block.len() as u16).to_be_bytes());
            header.extend_from_slice(block);
            header
        };
        // UNSPEC and AF_UNIX: the balancer's own addresses.
        assert_eq!(done(&with(0x21, 0x00, &[])), (ProxyHeader::Local, 16));
        assert_eq!(done(&with(0x21, 0x31, &[0; 216])), (ProxyHeader::Local, 232));
        assert_eq!(parse(&with(0x22, 0x11, &[0; 12])), Err(ProxyError::BadV2("unknown command")));
        assert_eq!(parse(&with(0x21, 0x21, &[0; 35])), Err(ProxyError::BadV2("IPv6 address block too short")));
        // UDP over IPv4 maps like TCP (the address is all that is used).
        let udp = with(0x21, 0x12, &[192, 0, 2, 9, 10, 0, 0, 1, 0x13, 0x88, 0x07, 0x8f]);
        assert_eq!(done(&udp).0, ProxyHeader::Proxied { source: "192.0.2.9:5000".parse().unwrap(), destination: "10.0.0.1:1935".parse().unwrap() });
    }

    proptest::proptest! {
        #[test]
        fn any_input_parses_or_fails_without_panicking(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            if let Ok(Parsed::Done { consumed, .. }) = parse(&input) {
                proptest::prop_assert!(consumed <= input.len());
            }
        }
    }
}
