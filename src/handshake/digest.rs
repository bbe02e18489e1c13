//! The Flash "digest" handshake: where the HMAC-SHA256 digest sits inside a C1/S1 packet,
//! how it is computed, and how C2/S2 are signed with a key derived from the peer's digest.
//!
//! The keys are public (they are in every open RTMP implementation), so none of this
//! authenticates anybody. It exists because Flash-era peers, and ffmpeg playing from a
//! server that announces a version in S1, refuse a server whose S1/S2 do not carry it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::PACKET_LEN;

/// An HMAC-SHA256 output.
pub(crate) type Digest = [u8; DIGEST_LEN];

/// Length of an HMAC-SHA256 output.
pub(crate) const DIGEST_LEN: usize = 32;

/// The published 32-byte constant appended to both text prefixes to form the full keys.
const KEY_SUFFIX: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];

const CLIENT_PREFIX: &[u8; 30] = b"Genuine Adobe Flash Player 001";
const SERVER_PREFIX: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";

/// Which side signs: C1 digests use the client (player) key, S1 digests the server key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signer {
    Client,
    Server,
}

impl Signer {
    /// The text prefix alone: the key for the digest embedded in C1/S1.
    fn packet_key(self) -> &'static [u8] {
        match self {
            Signer::Client => CLIENT_PREFIX,
            Signer::Server => SERVER_PREFIX,
        }
    }

    /// Prefix plus suffix: the key that turns the peer's digest into the C2/S2 signing key.
    fn full_key(self) -> Vec<u8> {
        let mut key = self.packet_key().to_vec();
        key.extend_from_slice(&KEY_SUFFIX);
        key
    }
}

/// Where the digest offset is read from: the two layouts Flash used (key block first or
/// digest block first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestScheme {
    /// Offset bytes at 8..12; digest at `sum % 728 + 12`.
    Scheme0,
    /// Offset bytes at 772..776; digest at `sum % 728 + 776`.
    Scheme1,
}

impl DigestScheme {
    /// Both schemes, in the order a validator tries them.
    pub(crate) const ALL: [DigestScheme; 2] = [DigestScheme::Scheme0, DigestScheme::Scheme1];

    fn base(self) -> usize {
        match self {
            DigestScheme::Scheme0 => 8,
            DigestScheme::Scheme1 => 772,
        }
    }

    /// The digest's position in `packet`. At most 727 + 776 = 1503, so the digest always
    /// ends inside the 1536-byte packet; `None` only if the packet were shorter.
    pub(crate) fn digest_offset(self, packet: &[u8; PACKET_LEN]) -> Option<usize> {
        let base = self.base();
        let offset_bytes = packet.get(base..base + 4)?;
        let sum: usize = offset_bytes.iter().map(|&b| usize::from(b)).sum();
        let offset = sum % 728 + base + 4;
        (offset + DIGEST_LEN <= PACKET_LEN).then_some(offset)
    }
}

/// HMAC-SHA256 over the concatenation of `parts`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Digest {
    // HMAC takes keys of any length (long ones are hashed), so this never fails; an
    // all-zero digest on the impossible path simply fails validation rather than panicking.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return [0; DIGEST_LEN];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The digest of `packet` with the 32 bytes at `offset` left out.
fn packet_digest(signer: Signer, packet: &[u8; PACKET_LEN], offset: usize) -> Option<Digest> {
    let before = packet.get(..offset)?;
    let after = packet.get(offset + DIGEST_LEN..)?;
    Some(hmac_sha256(signer.packet_key(), &[before, after]))
}

/// Writes `signer`'s digest into `packet` at the place `scheme` names, returning it.
pub(crate) fn embed_digest(
    signer: Signer,
    scheme: DigestScheme,
    packet: &mut [u8; PACKET_LEN],
) -> Option<Digest> {
    let offset = scheme.digest_offset(packet)?;
    let digest = packet_digest(signer, packet, offset)?;
    packet
        .get_mut(offset..offset + DIGEST_LEN)?
        .copy_from_slice(&digest);
    Some(digest)
}

/// The digest embedded by `signer` in `packet`, if either scheme verifies.
pub(crate) fn find_digest(
    signer: Signer,
    packet: &[u8; PACKET_LEN],
) -> Option<(DigestScheme, Digest)> {
    DigestScheme::ALL.into_iter().find_map(|scheme| {
        let offset = scheme.digest_offset(packet)?;
        let expected = packet_digest(signer, packet, offset)?;
        let found = packet.get(offset..offset + DIGEST_LEN)?;
        (found == expected.as_slice()).then_some((scheme, expected))
    })
}

/// The signature in the last 32 bytes of C2/S2: an HMAC over the first 1504 bytes, keyed by
/// HMAC(`signer`'s full key, the digest the peer put in its C1/S1).
pub(crate) fn reply_signature(signer: Signer, peer_digest: &Digest, reply: &[u8]) -> Digest {
    let key = hmac_sha256(&signer.full_key(), &[peer_digest]);
    hmac_sha256(&key, &[reply])
}

/// Fills `reply` (a C2/S2) with `filler` and signs it as [`reply_signature`] describes.
pub(crate) fn signed_reply(
    signer: Signer,
    peer_digest: &Digest,
    filler: &[u8; PACKET_LEN],
) -> [u8; PACKET_LEN] {
    let mut reply = *filler;
    let (body, tail) = reply.split_at_mut(PACKET_LEN - DIGEST_LEN);
    tail.copy_from_slice(&reply_signature(signer, peer_digest, body));
    reply
}

/// Whether `reply` carries the signature [`signed_reply`] would have produced.
pub(crate) fn reply_is_signed(
    signer: Signer,
    peer_digest: &Digest,
    reply: &[u8; PACKET_LEN],
) -> bool {
    let (body, tail) = reply.split_at(PACKET_LEN - DIGEST_LEN);
    tail == reply_signature(signer, peer_digest, body).as_slice()
}
