//! Allow and deny rules by client address (`--allow-publish 10.0.0.0/8` ...): IPv4 and IPv6
//! CIDR blocks, checked in order, the first match winning.
//!
//! ```
//! use rtmp_edge::relay::access::{IpRules, RuleVerdict};
//!
//! let rules = IpRules::parse(&[(false, "10.0.0.66"), (true, "10.0.0.0/8")]).unwrap();
//! assert!(matches!(rules.check("10.1.2.3".parse().unwrap()), RuleVerdict::Allowed(Some(_))));
//! assert!(matches!(rules.check("10.0.0.66".parse().unwrap()), RuleVerdict::Denied(Some(_))));
//! // An allow rule exists, so an address no rule names is denied.
//! assert_eq!(rules.check("192.0.2.1".parse().unwrap()), RuleVerdict::Denied(None));
//! // IPv4-mapped IPv6 peers (a dual-stack listener) match IPv4 rules.
//! assert!(matches!(rules.check("::ffff:10.1.2.3".parse().unwrap()), RuleVerdict::Allowed(Some(_))));
//! ```

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address block: `192.0.2.0/24`, `2001:db8::/32`, or one address (`/32`, `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the block. IPv4 blocks never hold IPv6 addresses, except
    /// IPv4-mapped ones (`::ffff:a.b.c.d`), which are compared as the IPv4 address they carry.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                mask(u128::from(u32::from(ip)), 32, self.prefix) == u128::from(u32::from(network))
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => mask(u128::from(ip), 128, self.prefix) == u128::from(network),
            _ => false,
        }
    }
}

/// The address as rules see it: an IPv4-mapped IPv6 address is its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `value` with all but its top `prefix` bits (of `width`) cleared.
fn mask(value: u128, width: u32, prefix: u8) -> u128 {
    let host_bits = width.saturating_sub(u32::from(prefix));
    if host_bits >= 128 {
        0
    } else {
        (value >> host_bits) << host_bits
    }
}

/// Why a text is not a CIDR block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrError(String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CidrError {}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr =
            address.parse().map_err(|_| CidrError(format!("{text:?} is not an IPv4 or IPv6 address or block")))?;
        let width: u8 = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(digits) if !digits.is_empty() && digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits.parse::<u8>().ok().filter(|prefix| *prefix <= width).ok_or_else(|| {
                    CidrError(format!("{text:?}: the prefix length must be 0 to {width}"))
                })?
            }
            Some(_) => return Err(CidrError(format!("{text:?}: the prefix length must be 0 to {width}"))),
        };
        let bits = match network {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        // A block written with host bits set is almost always a typo for another block.
        if mask(bits, u32::from(width), prefix) != bits {
            return Err(CidrError(format!("{text:?} has bits set past its /{prefix} prefix")));
        }
        // Peers are matched by their canonical address (an IPv4-mapped one as IPv4), so a
        // block of mapped addresses is the IPv4 block it names; as written it would never
        // match anyone.
        if let IpAddr::V6(v6) = network {
            if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
                return Ok(Cidr { network: IpAddr::V4(v4), prefix: prefix - 96 });
            }
        }
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// One rule: allow or deny a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRule {
    /// Allow (true) or deny (false).
    pub allow: bool,
    /// The block it applies to.
    pub block: Cidr,
}

impl fmt::Display for IpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", if self.allow { "allow" } else { "deny" }, self.block)
    }
}

/// What the rules say about an address, and which rule said it (`None`: no rule matched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleVerdict {
    /// Allowed by this rule, or by default when no allow rule exists.
    Allowed(Option<IpRule>),
    /// Denied by this rule, or by default because allow rules exist and none matched.
    Denied(Option<IpRule>),
}

/// The rules for one action (publish or play), in the order they were given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpRules {
    rules: Vec<IpRule>,
}

impl IpRules {
    /// Rules from `(allow, block)` pairs, in order. Every bad block is reported.
    pub fn parse(rules: &[(bool, &str)]) -> Result<IpRules, Vec<CidrError>> {
        let mut parsed = Vec::with_capacity(rules.len());
        let mut errors = Vec::new();
        for (allow, text) in rules {
            match text.trim().parse() {
                Ok(block) => parsed.push(IpRule { allow: *allow, block }),
                Err(error) => errors.push(error),
            }
        }
        if errors.is_empty() {
            Ok(IpRules { rules: parsed })
        } else {
            Err(errors)
        }
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[IpRule] {
        &self.rules
    }

    /// Whether there are no rules (everything is allowed).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule that matches `ip` decides; with none, `ip` is allowed unless an allow
    /// rule exists.
    pub fn check(&self, ip: IpAddr) -> RuleVerdict {
        match self.rules.iter().find(|rule| rule.block.contains(ip)) {
            Some(rule) if rule.allow => RuleVerdict::Allowed(Some(*rule)),
            Some(rule) => RuleVerdict::Denied(Some(*rule)),
            None if self.rules.iter().any(|rule| rule.allow) => RuleVerdict::Denied(None),
            None => RuleVerdict::Allowed(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    // Review finding: a rule written as a block of IPv4-mapped IPv6 addresses parsed, and
    // never matched, since peers are compared by their canonical (IPv4) address.
    #[test]
    fn a_block_of_mapped_addresses_is_the_ipv4_block_it_names() {
        let mapped: Cidr = "::ffff:192.0.2.0/120".parse().unwrap();
        assert_eq!(mapped, "192.0.2.0/24".parse::<Cidr>().unwrap());
        assert!(mapped.contains("192.0.2.7".parse().unwrap()));
        assert!(mapped.contains("::ffff:192.0.2.7".parse().unwrap()));
        assert!(!mapped.contains("192.0.3.7".parse().unwrap()));
        // Wider than the mapped range: an IPv6 block, as written.
        let wide: Cidr = "::/64".parse().unwrap();
        assert_eq!(wide.to_string(), "::/64");
    }

    #[test]
    fn blocks_contain_what_their_prefix_says() {
        let block: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(block.contains(ip("192.0.2.0")) && block.contains(ip("192.0.2.255")));
        assert!(!block.contains(ip("192.0.3.0")) && !block.contains(ip("::1")));
        assert!(block.contains(ip("::ffff:192.0.2.7")), "IPv4-mapped IPv6 matches IPv4 blocks");
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("255.255.255.255")) && !all.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::")));
        assert!(!v6.contains(ip("192.0.2.1")));
        let every_v6: Cidr = "::/0".parse().unwrap();
        assert!(every_v6.contains(ip("::1")) && !every_v6.contains(ip("127.0.0.1")));
        assert!(!every_v6.contains(ip("::ffff:127.0.0.1")), "a mapped address is IPv4 to the rules");
        let one: Cidr = "::1".parse().unwrap();
        assert_eq!(one.to_string(), "::1/128");
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        let host: Cidr = "127.0.0.2".parse().unwrap();
        assert!(host.contains(ip("127.0.0.2")) && !host.contains(ip("127.0.0.1")));
    }

    #[test]
    fn bad_blocks_are_refused_with_the_text() {
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0.1/8", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/08x", "host/8", "10.0.0.0/8/8", "[::1]/128", "2001:db8::1/32"] {
            let error = bad.parse::<Cidr>().unwrap_err();
            assert!(error.to_string().contains(&format!("{bad:?}")), "{bad}: {error}");
        }
        assert_eq!("10.0.0.0/008".parse::<Cidr>().unwrap().to_string(), "10.0.0.0/8");
    }

    #[test]
    fn the_first_match_wins_and_allow_rules_make_the_default_deny() {
        let rules = IpRules::parse(&[(false, "127.0.0.2"), (true, "127.0.0.0/8"), (false, "127.0.0.3")]).unwrap();
        assert!(matches!(rules.check(ip("127.0.0.2")), RuleVerdict::Denied(Some(_))));
        assert!(matches!(rules.check(ip("127.0.0.3")), RuleVerdict::Allowed(Some(_))), "an earlier allow wins");
        assert_eq!(rules.check(ip("10.0.0.1")), RuleVerdict::Denied(None));
        let deny_only = IpRules::parse(&[(false, "127.0.0.2")]).unwrap();
        assert_eq!(deny_only.check(ip("10.0.0.1")), RuleVerdict::Allowed(None));
        assert_eq!(IpRules::default().check(ip("::1")), RuleVerdict::Allowed(None));
        let errors = IpRules::parse(&[(true, "x"), (false, "10.0.0.0/8"), (true, "y")]).unwrap_err();
        assert_eq!(errors.len(), 2);
    }
}
