//! Access control, sans-IO: who may publish and play what.
//!
//! Three styles, checked in this order for each publish and play:
//! 1. IP rules ([`IpRules`]): `--allow-publish`, `--deny-publish`, `--allow-play`,
//!    `--deny-play`, first match wins;
//! 2. signed, expiring stream names ([`signed_url`]): `--publish-secret`, `--play-secret`;
//! 3. an HTTP hook ([`hook`]): `--hook-url`, asked about `connect`, `publish` and `play`, and
//!    told about `publish_done` and `play_done`.
//!
//! The relay core applies them (`core/access.rs`): it checks rules and signatures itself,
//! asks the driver to make hook calls (`Action::Hook`), and holds the request until the
//! answer or its own timer decides. Nothing here touches a socket or a clock.

pub mod hook;
pub mod http_client;
mod ip_rules;
pub mod signed_url;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Longest peer-controlled field of a request the relay accepts: a connect's app, tcUrl,
/// pageUrl and relay chain (`rtmpEdgeVia`), a publish's or play's stream name (query
/// included). Real clients send a few hundred bytes. A longer one is denied
/// ([`Denial::RequestTooLong`]), hook or not: no connection keeps megabytes of names for
/// its life, and none goes into a log line or a hook request.
pub const MAX_FIELD_BYTES: usize = 4096;

pub use hook::{DoneFields, HookAction, HookCall, HookOutcome, HookPayload, HookUrl, HookVerdict};
pub use ip_rules::{canonical, Cidr, CidrError, IpRule, IpRules, RuleVerdict};
pub use signed_url::SignatureError;

/// Whether `presented` equals `expected`, in a time that does not depend on where they
/// first differ, so a secret cannot be guessed byte by byte.
pub fn same_secret(expected: &[u8], presented: &[u8]) -> bool {
    let mut difference = expected.len() ^ presented.len();
    for (index, byte) in expected.iter().enumerate() {
        difference |= usize::from(byte ^ presented.get(index).copied().unwrap_or(!byte));
    }
    difference == 0
}

/// A shared secret for signed URLs. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// A secret from its text, trimmed of surrounding whitespace (a file's final newline).
    /// `None` when nothing is left.
    pub fn new(text: &str) -> Option<Secret> {
        let text = text.trim();
        (!text.is_empty()).then(|| Secret(Arc::from(text.as_bytes())))
    }

    /// The secret's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Reads a secret from a file (its whole content, trimmed).
    pub fn from_file(path: &std::path::Path) -> Result<Secret, String> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
        Secret::new(&text).ok_or_else(|| format!("{}: the file holds no secret", path.display()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What a hook that is down, slow or broken means for a decision (`--hook-fail`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HookFailPolicy {
    /// Deny (the default): no answer, no access.
    #[default]
    Closed,
    /// Allow: keep streaming through a hook outage.
    Open,
}

impl std::str::FromStr for HookFailPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<HookFailPolicy, String> {
        match text {
            "closed" => Ok(HookFailPolicy::Closed),
            "open" => Ok(HookFailPolicy::Open),
            other => Err(format!("hook-fail takes open or closed, not {other:?}")),
        }
    }
}

/// The access settings of a [`Config`](super::Config). The default allows everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessConfig {
    /// Publishes must carry a name signed with this secret.
    pub publish_secret: Option<Secret>,
    /// Plays must carry a name signed with this secret.
    pub play_secret: Option<Secret>,
    /// Who may publish, by address.
    pub publish_rules: IpRules,
    /// Who may play, by address.
    pub play_rules: IpRules,
    /// Where hook requests go; no hooks when `None`.
    pub hook_url: Option<HookUrl>,
    /// How long a decision waits for the hook.
    pub hook_timeout: Duration,
    /// What a hook that does not answer usably means.
    pub hook_fail: HookFailPolicy,
    /// Most decisions waiting for the hook at once; past it, requests are denied at once.
    /// One client address may hold at most a quarter of them. The same bound applies to
    /// notifications in flight, which are dropped (and counted) past it.
    pub hook_max_pending: usize,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            publish_secret: None,
            play_secret: None,
            publish_rules: IpRules::default(),
            play_rules: IpRules::default(),
            hook_url: None,
            hook_timeout: Duration::from_millis(3000),
            hook_fail: HookFailPolicy::Closed,
            hook_max_pending: 256,
        }
    }
}

/// Why a request was denied: the label for metrics, the text for logs and the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// An IP rule (or the default deny that allow rules bring).
    IpRule(Option<IpRule>),
    /// The stream name's signature.
    Signature(SignatureError),
    /// The hook said no.
    HookDenied(String),
    /// The hook did not answer in time, with `--hook-fail closed`.
    HookTimeout,
    /// The hook call failed, with `--hook-fail closed`.
    HookError(String),
    /// Too many decisions are waiting for the hook; which bound was reached.
    HookOverloaded(String),
    /// A field passes [`MAX_FIELD_BYTES`].
    RequestTooLong,
}

/// Every [`Denial::label`], for metrics series that exist from the start.
pub const DENIAL_LABELS: [&str; 9] = [
    "hook_denied",
    "hook_error",
    "hook_overloaded",
    "hook_timeout",
    "ip_rule",
    "request_too_long",
    "signature_expired",
    "signature_invalid",
    "signature_missing",
];

impl Denial {
    /// A short, stable name for metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Denial::IpRule(_) => "ip_rule",
            Denial::Signature(error) => error.label(),
            Denial::HookDenied(_) => "hook_denied",
            Denial::HookTimeout => "hook_timeout",
            Denial::HookError(_) => "hook_error",
            Denial::HookOverloaded(_) => "hook_overloaded",
            Denial::RequestTooLong => "request_too_long",
        }
    }

    /// What the client is told (the status's description).
    pub fn description(&self) -> String {
        match self {
            Denial::IpRule(_) => "Access denied: not allowed from this address.".to_string(),
            Denial::Signature(error) => format!("Access denied: {error}."),
            Denial::HookDenied(why) => format!("Access denied: {why}."),
            Denial::HookTimeout => "Access denied: the authorization hook did not answer in time.".to_string(),
            Denial::HookError(_) => "Access denied: the authorization hook is unavailable.".to_string(),
            Denial::HookOverloaded(_) => "Access denied: too many requests are waiting for authorization; try again.".to_string(),
            Denial::RequestTooLong => "Access denied: the request is too long to authorize.".to_string(),
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::IpRule(Some(rule)) => write!(f, "address matches rule \"{rule}\""),
            Denial::IpRule(None) => write!(f, "address matches no allow rule"),
            Denial::Signature(error) => write!(f, "{error}"),
            Denial::HookDenied(why) => write!(f, "{why}"),
            Denial::HookTimeout => write!(f, "hook did not answer in time (hook-fail closed)"),
            Denial::HookError(why) => write!(f, "{why} (hook-fail closed)"),
            Denial::HookOverloaded(bound) => write!(f, "not sent to the hook: {bound}"),
            Denial::RequestTooLong => write!(f, "a field is over {MAX_FIELD_BYTES} bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_trimmed_and_never_printed() {
        let secret = Secret::new("  s3cret\n").unwrap();
        assert_eq!(secret.bytes(), b"s3cret");
        let printed = format!("{:?}", AccessConfig { play_secret: Some(secret), ..AccessConfig::default() });
        assert!(!printed.contains("s3cret") && printed.contains("Secret(<redacted>)"), "{printed}");
        assert_eq!(Secret::new(" \n"), None);
    }

    #[test]
    fn denial_labels_are_all_listed_sorted() {
        let denials = [
            Denial::IpRule(None),
            Denial::Signature(SignatureError::Missing),
            Denial::Signature(SignatureError::Mismatch),
            Denial::Signature(SignatureError::Expired { exp: 1 }),
            Denial::HookDenied(String::new()),
            Denial::HookTimeout,
            Denial::HookError(String::new()),
            Denial::HookOverloaded(String::new()),
            Denial::RequestTooLong,
        ];
        let mut labels: Vec<&str> = denials.iter().map(Denial::label).collect();
        labels.sort_unstable();
        assert_eq!(labels, DENIAL_LABELS);
        assert!(DENIAL_LABELS.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
