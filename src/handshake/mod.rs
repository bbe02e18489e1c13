//! The RTMP handshake (C0-C2 / S0-S2), for both roles, sans-IO.
//!
//! Feed whatever bytes arrived from the peer to [`Handshake::process`] and send back the
//! `response` it returns. When it reports [`HandshakeProgress::Completed`], the handshake
//! is over and `remaining` holds the bytes that followed C2/S2 in the same input: they are
//! already the start of the chunk stream and must go to the chunk decoder, not be dropped.
//!
//! Both forms in use are spoken:
//! - the plain RTMP 1.0 handshake, where C2/S2 echo S1/C1;
//! - the Flash "digest" handshake, where C1/S1 carry an HMAC-SHA256 digest at an offset
//!   given by one of two schemes ([`DigestScheme`]) and C2/S2 are signed with a key derived
//!   from the peer's digest. ffmpeg, OBS and Flash send it; ffmpeg playing from a server
//!   insists on it once the server's S1 announces a version.
//!
//! A server answers a C1 that carries a valid digest (either scheme) in kind, and falls back
//! to the plain echo otherwise. A client always sends a digest C1 and answers S1 in kind.
//! Version bytes other than 3 (6 and 8 are encrypted RTMPE) are refused with
//! [`HandshakeError::UnsupportedVersion`].
//!
//! The handshake never buffers more than [`MAX_BUFFERED_BYTES`] of peer input, whatever the
//! peer sends: bytes beyond what the current step needs are handed back, never stored.
//!
//! ```
//! use rtmp_edge::handshake::{Handshake, HandshakeProgress, HandshakeRole};
//!
//! let mut client = Handshake::new(HandshakeRole::Client, 0);
//! let mut server = Handshake::new(HandshakeRole::Server, 0);
//!
//! // The client speaks first: C0 + C1.
//! let c0c1 = client.start();
//! assert_eq!(c0c1.len(), 1 + 1536);
//! assert!(server.start().is_empty());
//!
//! // The server answers S0 + S1 + S2 as soon as it has C0 + C1.
//! let s0s1s2 = match server.process(&c0c1)? {
//!     HandshakeProgress::InProgress { response } => response,
//!     other => panic!("server finished too early: {other:?}"),
//! };
//!
//! // S0 + S1 + S2 arrived in one read: the client answers C2 and is done at once.
//! let c2 = match client.process(&s0s1s2)? {
//!     HandshakeProgress::Completed { response, remaining } => {
//!         assert!(remaining.is_empty());
//!         response
//!     }
//!     other => panic!("client not finished: {other:?}"),
//! };
//!
//! // The client's first chunk often shares a TCP segment with C2: it is handed back.
//! let mut wire = c2.to_vec();
//! wire.extend_from_slice(&[0x03, 0x00, 0x00, 0x00]);
//! match server.process(&wire)? {
//!     HandshakeProgress::Completed { response, remaining } => {
//!         assert!(response.is_empty());
//!         assert_eq!(&remaining[..], &[0x03, 0x00, 0x00, 0x00]);
//!     }
//!     other => panic!("server not finished: {other:?}"),
//! }
//! # Ok::<(), rtmp_edge::handshake::HandshakeError>(())
//! ```

mod digest;
#[cfg(test)]
mod tests;

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

pub use digest::DigestScheme;
use digest::{embed_digest, find_digest, reply_is_signed, signed_reply, Digest, Signer};

/// Length of C1, C2, S1 and S2.
pub const PACKET_LEN: usize = 1536;

/// Length of the random part of C1/S1 (after the 4-byte time and 4-byte version fields).
pub const RANDOM_LEN: usize = PACKET_LEN - 8;

/// The most peer input a [`Handshake`] ever holds: C0 + C1 (or S0 + S1). C2/S2 reuse the
/// same space once C1/S1 has been answered.
pub const MAX_BUFFERED_BYTES: usize = 1 + PACKET_LEN;

/// The only version this library speaks: plain (unencrypted) RTMP.
const RTMP_VERSION: u8 = 3;

/// Version field of a digest C1. Non-zero tells servers (nginx-rtmp, FMS) that a digest is
/// present; this is the Flash Player version ffmpeg announces too (9.0.124.2).
const CLIENT_VERSION: [u8; 4] = [9, 0, 124, 2];

/// Version field of a digest S1. ffmpeg verifies S1/S2 only when this is at least 3.x, which
/// is what we want it to do when we did sign them (FMS 4.5.0.1 announces the same).
const SERVER_VERSION: [u8; 4] = [4, 5, 0, 1];

/// Which side of the connection this handshake plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeRole {
    /// Opened the connection: sends C0 + C1 first.
    Client,
    /// Accepted the connection: waits for C0 + C1.
    Server,
}

/// What one call to [`Handshake::process`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeProgress {
    /// More peer bytes are needed. `response` (possibly empty) must be sent to the peer.
    InProgress {
        /// Bytes to send to the peer now.
        response: Bytes,
    },
    /// The handshake is over. Send `response` (possibly empty), then hand `remaining` to the
    /// chunk decoder: it is chunk data that arrived together with the last handshake packet.
    Completed {
        /// Bytes to send to the peer now.
        response: Bytes,
        /// Input bytes after C2/S2: the start of the chunk stream.
        remaining: Bytes,
    },
}

/// Why a handshake cannot go on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// C0/S0 asked for a version other than 3 (6 and 8 are encrypted RTMPE).
    UnsupportedVersion(u8),
    /// [`Handshake::process`] was called on a client before [`Handshake::start`].
    NotStarted,
    /// [`Handshake::process`] was called after the handshake had completed; later bytes
    /// belong to the chunk decoder.
    AlreadyCompleted,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::UnsupportedVersion(v @ (6 | 8)) => write!(
                f,
                "peer asked for RTMP version {v} (encrypted RTMPE), only version 3 is supported"
            ),
            // 0x16 opens a TLS handshake record: an rtmps:// client on the plain port.
            HandshakeError::UnsupportedVersion(0x16) => write!(
                f,
                "peer sent 0x16 as its RTMP version byte, which looks like TLS (an rtmps:// client on the plain RTMP port)"
            ),
            HandshakeError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "peer asked for RTMP version {v}, only version 3 is supported"
                )
            }
            HandshakeError::NotStarted => {
                write!(
                    f,
                    "client handshake fed peer bytes before start() sent C0+C1"
                )
            }
            HandshakeError::AlreadyCompleted => {
                write!(
                    f,
                    "handshake already completed; further bytes belong to the chunk stream"
                )
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Where the handshake stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Client only: C0 + C1 not sent yet.
    NotStarted,
    /// Waiting for the peer's version byte and C1/S1.
    AwaitingHello,
    /// Waiting for the peer's C2/S2.
    AwaitingReply,
    Completed,
    /// A failed handshake keeps failing with the same error.
    Failed(HandshakeError),
}

/// One side of an RTMP handshake. See the [module documentation](self) for the flow.
pub struct Handshake {
    role: HandshakeRole,
    state: State,
    epoch_ms: u32,
    random: [u8; RANDOM_LEN],
    /// The C1 or S1 we sent (the S1 is built once C1 shows which form to answer in).
    own_packet: [u8; PACKET_LEN],
    /// The digest we embedded in our C1/S1, to recognise a signed C2/S2.
    own_digest: Option<Digest>,
    /// The scheme of the digest the peer put in its C1/S1, if any verified.
    peer_scheme: Option<DigestScheme>,
    /// Peer bytes of the step in progress; never longer than [`MAX_BUFFERED_BYTES`].
    buffer: Vec<u8>,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("epoch_ms", &self.epoch_ms)
            .field("peer_scheme", &self.peer_scheme)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// A handshake for `role` whose C1/S1 carries `epoch_ms` and random bytes from the
    /// thread-local generator.
    ///
    /// `epoch_ms` fills the 4-byte time field of C1/S1: by the spec, the sender's
    /// millisecond clock at the handshake, the epoch from which its own message
    /// timestamps count. Peers echo it in C2/S2 and otherwise ignore it, and this library
    /// checks nothing against it, so any value works. A client with no clock of its own
    /// can pass 0 (ffmpeg does); a server may pass its uptime in ms, as the relay does.
    /// It does not affect the session's timestamps, which are whatever the caller sends.
    pub fn new(role: HandshakeRole, epoch_ms: u32) -> Handshake {
        let mut random = [0u8; RANDOM_LEN];
        rand::fill(&mut random[..]);
        Handshake::with_random(role, epoch_ms, random)
    }

    /// As [`Handshake::new`], with the random part of C1/S1 given, so that every byte sent
    /// is reproducible (tests, captures).
    pub fn with_random(role: HandshakeRole, epoch_ms: u32, random: [u8; RANDOM_LEN]) -> Handshake {
        let mut handshake = Handshake {
            role,
            state: match role {
                HandshakeRole::Client => State::NotStarted,
                HandshakeRole::Server => State::AwaitingHello,
            },
            epoch_ms,
            random,
            own_packet: [0; PACKET_LEN],
            own_digest: None,
            peer_scheme: None,
            buffer: Vec::with_capacity(MAX_BUFFERED_BYTES),
        };
        if role == HandshakeRole::Client {
            handshake.own_packet = handshake.hello_packet(CLIENT_VERSION);
            handshake.own_digest = embed_digest(
                Signer::Client,
                DigestScheme::Scheme0,
                &mut handshake.own_packet,
            );
        }
        handshake
    }

    /// The bytes to send before any input: C0 + C1 for a client, nothing for a server.
    /// Only the first call on a client returns them; later calls return nothing, so a
    /// retried call cannot send C1 twice.
    pub fn start(&mut self) -> Bytes {
        if self.state != State::NotStarted {
            return Bytes::new();
        }
        self.state = State::AwaitingHello;
        let mut out = BytesMut::with_capacity(1 + PACKET_LEN);
        out.put_u8(RTMP_VERSION);
        out.put_slice(&self.own_packet);
        out.freeze()
    }

    /// Consumes peer bytes (any amount, from one byte up to the handshake plus chunk data)
    /// and says what to send and whether the handshake is over.
    pub fn process(&mut self, input: &[u8]) -> Result<HandshakeProgress, HandshakeError> {
        match &self.state {
            State::NotStarted => return Err(HandshakeError::NotStarted),
            State::Completed => return Err(HandshakeError::AlreadyCompleted),
            State::Failed(error) => return Err(error.clone()),
            State::AwaitingHello | State::AwaitingReply => {}
        }
        let mut response = BytesMut::new();
        let mut rest = input;
        loop {
            let awaiting_hello = self.state == State::AwaitingHello;
            let step_len = if awaiting_hello {
                1 + PACKET_LEN
            } else {
                PACKET_LEN
            };
            let take = step_len.saturating_sub(self.buffer.len()).min(rest.len());
            let (taken, after) = rest.split_at(take);
            self.buffer.extend_from_slice(taken);
            rest = after;

            // Refuse a wrong version at its first byte rather than after 1536 more.
            if awaiting_hello {
                if let Some(&version) = self.buffer.first() {
                    if version != RTMP_VERSION {
                        return Err(self.fail(HandshakeError::UnsupportedVersion(version)));
                    }
                }
            }
            if self.buffer.len() < step_len {
                return Ok(HandshakeProgress::InProgress {
                    response: response.freeze(),
                });
            }
            let packet_bytes = if awaiting_hello {
                self.buffer.get(1..)
            } else {
                self.buffer.get(..)
            };
            let Some(peer_packet) = packet_bytes.and_then(|b| <[u8; PACKET_LEN]>::try_from(b).ok())
            else {
                // Unreachable: the buffer holds exactly step_len bytes here.
                return Ok(HandshakeProgress::InProgress {
                    response: response.freeze(),
                });
            };
            self.buffer.clear();
            if awaiting_hello {
                self.answer_hello(&peer_packet, &mut response);
                self.state = State::AwaitingReply;
            } else {
                self.check_reply(&peer_packet);
                self.state = State::Completed;
                self.buffer = Vec::new();
                return Ok(HandshakeProgress::Completed {
                    response: response.freeze(),
                    remaining: Bytes::copy_from_slice(rest),
                });
            }
        }
    }

    /// Which role this handshake plays.
    pub fn role(&self) -> HandshakeRole {
        self.role
    }

    /// Whether C2/S2 has been received.
    pub fn is_completed(&self) -> bool {
        self.state == State::Completed
    }

    /// How many peer bytes are held, waiting for the rest of a packet. Never more than
    /// [`MAX_BUFFERED_BYTES`].
    pub fn buffered_len(&self) -> usize {
        self.buffer.len()
    }

    /// The digest scheme of the peer's C1/S1, once received, or `None` if it carried no
    /// valid digest (the plain handshake) or has not arrived.
    pub fn peer_digest_scheme(&self) -> Option<DigestScheme> {
        self.peer_scheme
    }

    fn fail(&mut self, error: HandshakeError) -> HandshakeError {
        self.state = State::Failed(error.clone());
        self.buffer = Vec::new();
        error
    }

    /// C1/S1 layout: time, version field, random.
    fn hello_packet(&self, version: [u8; 4]) -> [u8; PACKET_LEN] {
        let mut packet = [0u8; PACKET_LEN];
        let (head, random) = packet.split_at_mut(8);
        let (time, version_field) = head.split_at_mut(4);
        time.copy_from_slice(&self.epoch_ms.to_be_bytes());
        version_field.copy_from_slice(&version);
        random.copy_from_slice(&self.random);
        packet
    }

    /// Appends our answer to the peer's C1 (server: S0 S1 S2) or S1 (client: C2).
    fn answer_hello(&mut self, peer_packet: &[u8; PACKET_LEN], response: &mut BytesMut) {
        match self.role {
            HandshakeRole::Server => {
                let client_digest = find_digest(Signer::Client, peer_packet);
                let s2 = match client_digest {
                    Some((scheme, digest)) => {
                        self.peer_scheme = Some(scheme);
                        self.own_packet = self.hello_packet(SERVER_VERSION);
                        self.own_digest =
                            embed_digest(Signer::Server, scheme, &mut self.own_packet);
                        // The body of S2 is never checked by anyone; S1's bytes serve.
                        signed_reply(Signer::Server, &digest, &self.own_packet)
                    }
                    None => {
                        log::debug!("C1 carries no valid digest: plain handshake");
                        self.own_packet = self.hello_packet([0; 4]);
                        *peer_packet
                    }
                };
                response.reserve(1 + 2 * PACKET_LEN);
                response.put_u8(RTMP_VERSION);
                response.put_slice(&self.own_packet);
                response.put_slice(&s2);
            }
            HandshakeRole::Client => {
                let c2 = match find_digest(Signer::Server, peer_packet) {
                    Some((scheme, digest)) => {
                        self.peer_scheme = Some(scheme);
                        signed_reply(Signer::Client, &digest, &self.own_packet)
                    }
                    None => {
                        log::debug!("S1 carries no valid digest: echoing it as C2");
                        *peer_packet
                    }
                };
                response.put_slice(&c2);
            }
        }
    }

    /// Checks the peer's C2/S2 and only logs the outcome. Peers in the wild answer a digest
    /// C1/S1 with a signed reply, a plain echo (ffmpeg's and rtmpdump's plain modes, many
    /// small servers) or bytes that are neither; the keys are public, so the signature proves
    /// nothing worth a refused connection, and Flash, ffmpeg and nginx-rtmp accept them all.
    fn check_reply(&self, reply: &[u8; PACKET_LEN]) {
        let peer = match self.role {
            HandshakeRole::Client => "S2",
            HandshakeRole::Server => "C2",
        };
        let signer = match self.role {
            HandshakeRole::Client => Signer::Server,
            HandshakeRole::Server => Signer::Client,
        };
        let signed = self
            .own_digest
            .is_some_and(|d| reply_is_signed(signer, &d, reply));
        if signed {
            log::debug!("{peer} carries a valid digest signature");
        } else if reply == &self.own_packet {
            log::debug!("{peer} echoes our packet");
        } else {
            log::debug!("{peer} is neither signed nor an echo; accepted anyway");
        }
    }
}
