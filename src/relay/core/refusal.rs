//! Why a new connection was refused at accept: one enum feeds the log line and the counters.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Why a new connection was refused at accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are open.
    TooManyConnections {
        /// The limit.
        max: usize,
    },
    /// `max_connections_per_ip` are open from this address.
    TooManyFromAddress {
        /// The address.
        ip: IpAddr,
        /// The limit.
        max: usize,
    },
    /// The relay is shutting down.
    ShuttingDown,
    /// As many connections on the private worker listener as
    /// [`RelayCore::MAX_UNPROVEN_SIBLINGS`](super::RelayCore::MAX_UNPROVEN_SIBLINGS) have
    /// not proven they are siblings yet.
    TooManyUnprovenSiblings {
        /// The limit.
        max: usize,
    },
    /// `http_max_connections` HTTP connections are open and none is idle.
    TooManyHttpConnections {
        /// The limit.
        max: usize,
    },
}

impl Refusal {
    /// A short, stable name for metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::TooManyConnections { .. } => "too_many_connections",
            Refusal::TooManyFromAddress { .. } => "too_many_from_address",
            Refusal::ShuttingDown => "shutting_down",
            Refusal::TooManyUnprovenSiblings { .. } => "too_many_unproven_siblings",
            Refusal::TooManyHttpConnections { .. } => "too_many_http_connections",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooManyConnections { max } => write!(f, "{max} connections open (--max-connections)"),
            Refusal::TooManyFromAddress { ip, max } => {
                write!(f, "{max} connections open from {ip} (--max-connections-per-ip)")
            }
            Refusal::ShuttingDown => write!(f, "shutting down"),
            Refusal::TooManyUnprovenSiblings { max } => {
                write!(f, "{max} connections on the private worker listener have not shown the workers' secret")
            }
            Refusal::TooManyHttpConnections { max } => {
                write!(f, "{max} HTTP connections open, none idle (http-max-connections)")
            }
        }
    }
}

/// Log lines for refusals, at most [`RefusalLog::LINES_PER_SECOND`] a second: in a
/// connection flood, a line per refusal would cost more than the refusal. The rest are
/// counted and summed up in one line when the next second begins (the counters have them
/// all).
#[derive(Debug, Default)]
pub struct RefusalLog {
    second_began: Option<Instant>,
    logged: usize,
    unlogged: usize,
}

impl RefusalLog {
    /// Lines logged one by one in a second.
    pub const LINES_PER_SECOND: usize = 20;

    /// Logs this refusal, or counts it if this second's lines are spent.
    pub fn refused(&mut self, peer: SocketAddr, refusal: &Refusal, now: Instant) {
        if self.second_began.is_none_or(|began| now.saturating_duration_since(began) >= Duration::from_secs(1)) {
            self.sum_up();
            *self = RefusalLog { second_began: Some(now), logged: 0, unlogged: 0 };
        }
        if self.logged < Self::LINES_PER_SECOND {
            self.logged += 1;
            log::warn!("{peer}: refused: {refusal}");
        } else {
            self.unlogged += 1;
        }
    }

    /// Sums up the refusals not logged, once their second is over (called on the core's
    /// tick, so the line comes even when the flood has stopped).
    pub fn flush(&mut self, now: Instant) {
        if self.second_began.is_some_and(|began| now.saturating_duration_since(began) >= Duration::from_secs(1)) {
            self.sum_up();
            *self = RefusalLog::default();
        }
    }

    fn sum_up(&self) {
        if self.unlogged > 0 {
            log::warn!("{} more connections refused in the last second, not logged one by one", self.unlogged);
        }
    }
}
