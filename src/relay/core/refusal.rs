//! Why a new connection was refused at accept: one enum feeds the log line and the counters.

use std::fmt;
use std::net::IpAddr;

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
            Refusal::TooManyHttpConnections { max } => {
                write!(f, "{max} HTTP connections open, none idle (http-max-connections)")
            }
        }
    }
}
