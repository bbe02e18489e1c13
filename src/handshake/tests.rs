//! Handshake tests. Expected digests and signatures were computed independently with
//! Python's `hmac`/`hashlib`, not with this module, so a wrong key, offset or derivation
//! fails here.

use proptest::prelude::*;

use super::digest::{embed_digest, find_digest, reply_is_signed, Signer};
use super::*;

const CLIENT_EPOCH: u32 = 0x0102_0304;
const SERVER_EPOCH: u32 = 0x0A0B_0C0D;

fn pattern(mul: usize, add: usize) -> [u8; RANDOM_LEN] {
    let mut random = [0u8; RANDOM_LEN];
    for (i, b) in random.iter_mut().enumerate() {
        *b = ((i * mul + add) & 0xff) as u8;
    }
    random
}

fn client_random() -> [u8; RANDOM_LEN] {
    pattern(7, 3)
}

fn server_random() -> [u8; RANDOM_LEN] {
    pattern(13, 5)
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// time, version field, random: the C1/S1 layout before any digest.
fn packet(epoch: u32, version: [u8; 4], random: &[u8; RANDOM_LEN]) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    p[..4].copy_from_slice(&epoch.to_be_bytes());
    p[4..8].copy_from_slice(&version);
    p[8..].copy_from_slice(random);
    p
}

fn with_c0(version: u8, p: &[u8]) -> Vec<u8> {
    let mut v = vec![version];
    v.extend_from_slice(p);
    v
}

fn in_progress(result: Result<HandshakeProgress, HandshakeError>) -> Bytes {
    match result {
        Ok(HandshakeProgress::InProgress { response }) => response,
        other => panic!("expected InProgress, got {other:?}"),
    }
}

fn completed(result: Result<HandshakeProgress, HandshakeError>) -> (Bytes, Bytes) {
    match result {
        Ok(HandshakeProgress::Completed {
            response,
            remaining,
        }) => (response, remaining),
        other => panic!("expected Completed, got {other:?}"),
    }
}

fn test_server() -> Handshake {
    Handshake::with_random(HandshakeRole::Server, SERVER_EPOCH, server_random())
}

fn test_client() -> Handshake {
    Handshake::with_random(HandshakeRole::Client, CLIENT_EPOCH, client_random())
}

/// A C1 with no digest (what rtmpdump sends by default), whose bytes do not verify.
fn plain_c1() -> [u8; PACKET_LEN] {
    packet(CLIENT_EPOCH, [0; 4], &client_random())
}

#[test]
fn plain_server_handshake_exact_bytes() {
    let mut server = test_server();
    assert!(server.start().is_empty());
    let c1 = plain_c1();
    let response = in_progress(server.process(&with_c0(3, &c1)));

    let mut expected = vec![3u8];
    expected.extend_from_slice(&SERVER_EPOCH.to_be_bytes());
    expected.extend_from_slice(&[0, 0, 0, 0]);
    expected.extend_from_slice(&server_random());
    expected.extend_from_slice(&c1); // S2 echoes C1
    assert_eq!(response.len(), 1 + 2 * PACKET_LEN);
    assert_eq!(&response[..], &expected[..]);
    assert_eq!(server.peer_digest_scheme(), None);

    // C2 echoing S1, followed by the start of a chunk stream.
    let mut c2 = response[1..1 + PACKET_LEN].to_vec();
    c2.extend_from_slice(&[0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x14]);
    let (response, remaining) = completed(server.process(&c2));
    assert!(response.is_empty());
    assert_eq!(
        &remaining[..],
        &[0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x14]
    );
    assert!(server.is_completed());
    assert_eq!(server.buffered_len(), 0);
}

#[test]
fn client_c0_c1_exact_bytes_with_scheme0_digest() {
    let mut client = test_client();
    let c0c1 = client.start();
    assert_eq!(c0c1.len(), 1 + PACKET_LEN);
    assert_eq!(&c0c1[..9], &[3, 0x01, 0x02, 0x03, 0x04, 9, 0, 124, 2]);
    // Offset bytes 3, 10, 17, 24 sum to 54: digest at 54 % 728 + 12 = 66 within C1.
    let c1 = &c0c1[1..];
    let random = client_random();
    assert_eq!(&c1[8..66], &random[..58]);
    assert_eq!(
        &c1[66..98],
        &unhex("7c849434e57ca7065734b36720bd2d5d16f6839ed14b4d3eee5a130e2a4ba9a3")[..]
    );
    assert_eq!(&c1[98..], &random[90..]);
    // Only once.
    assert!(client.start().is_empty());
}

#[test]
fn client_echoes_plain_s1_and_accepts_echoed_s2() {
    let mut client = test_client();
    let c0c1 = client.start();
    let s1 = packet(SERVER_EPOCH, [0; 4], &server_random());
    let c2 = in_progress(client.process(&with_c0(3, &s1)));
    assert_eq!(&c2[..], &s1[..]);
    assert_eq!(client.peer_digest_scheme(), None);
    // S2 echoing our C1, the way plain servers (ffmpeg -listen) answer.
    let (response, remaining) = completed(client.process(&c0c1[1..]));
    assert!(response.is_empty());
    assert!(remaining.is_empty());
}

#[test]
fn client_accepts_s2_that_is_neither_signed_nor_echo() {
    let mut client = test_client();
    client.start();
    let s1 = packet(SERVER_EPOCH, [0; 4], &server_random());
    in_progress(client.process(&with_c0(3, &s1)));
    let (_, remaining) = completed(client.process(&[0x5a; PACKET_LEN + 2]));
    assert_eq!(&remaining[..], &[0x5a, 0x5a]);
}

#[test]
fn server_answers_scheme0_digest_c1_with_known_s1_and_s2() {
    let mut client = test_client();
    let mut server = test_server();
    let c0c1 = client.start();
    let response = in_progress(server.process(&c0c1));
    assert_eq!(server.peer_digest_scheme(), Some(DigestScheme::Scheme0));
    assert_eq!(response[0], 3);
    let s1 = &response[1..1 + PACKET_LEN];
    let s2 = &response[1 + PACKET_LEN..];
    assert_eq!(&s1[..8], &[0x0A, 0x0B, 0x0C, 0x0D, 4, 5, 0, 1]);
    // Offset bytes 5, 18, 31, 44 sum to 98: digest at 110.
    assert_eq!(
        &s1[110..142],
        &unhex("465d4babe29324a2c70e7b346ccc650478d662ba89326ce1b4d327011391f202")[..]
    );
    assert_eq!(&s2[..1504], &s1[..1504]);
    assert_eq!(
        &s2[1504..],
        &unhex("2b0a18e66a0b8494923ee3edc43088f344827fc2457fb8cc111fcfe46f191f0f")[..]
    );

    // The client answers the signed S1 with a signed C2, and accepts the signed S2.
    let (c2, remaining) = completed(client.process(&response));
    assert!(remaining.is_empty());
    assert_eq!(client.peer_digest_scheme(), Some(DigestScheme::Scheme0));
    assert_eq!(&c2[..1504], &c0c1[1..1505]);
    assert_eq!(
        &c2[1504..],
        &unhex("9fd39fcc8f84af891bca017c3a29ea5517df869eaad5161c11d7172b7ecc7ccf")[..]
    );
    let (response, remaining) = completed(server.process(&c2));
    assert!(response.is_empty() && remaining.is_empty());
}

#[test]
fn server_answers_scheme1_digest_c1_in_scheme1() {
    let mut c1 = packet(CLIENT_EPOCH, CLIENT_VERSION, &client_random());
    embed_digest(Signer::Client, DigestScheme::Scheme1, &mut c1).unwrap();
    assert_eq!(
        &c1[1014..1046],
        &unhex("f493368c78f4ab9cf4e525ce0b0780a7cc359b40778de46075a9d11a938062fb")[..]
    );
    let mut server = test_server();
    let response = in_progress(server.process(&with_c0(3, &c1)));
    assert_eq!(server.peer_digest_scheme(), Some(DigestScheme::Scheme1));
    let s1 = &response[1..1 + PACKET_LEN];
    assert_eq!(
        &s1[962..994],
        &unhex("5ebe264e4e623f9e341c6141ab19e08dea98616f39e38520c1ee2c43e4019c3c")[..]
    );
    assert_eq!(
        &response[1 + PACKET_LEN + 1504..],
        &unhex("b6d1b822a127d701a9eda75fb130793a18bedc4d2090633446a74d3b2228cb2d")[..]
    );
}

#[test]
fn digest_validation_finds_each_scheme_and_rejects_wrong_key() {
    for scheme in DigestScheme::ALL {
        let mut c1 = packet(CLIENT_EPOCH, CLIENT_VERSION, &client_random());
        let digest = embed_digest(Signer::Client, scheme, &mut c1).unwrap();
        assert_eq!(find_digest(Signer::Client, &c1), Some((scheme, digest)));
        assert_eq!(find_digest(Signer::Server, &c1), None);
    }
    assert_eq!(find_digest(Signer::Client, &plain_c1()), None);
}

#[test]
fn corrupted_digest_falls_back_to_plain_echo() {
    let mut c1 = packet(CLIENT_EPOCH, CLIENT_VERSION, &client_random());
    embed_digest(Signer::Client, DigestScheme::Scheme0, &mut c1).unwrap();
    c1[70] ^= 0x01; // inside the digest at 66..98
    let mut server = test_server();
    let response = in_progress(server.process(&with_c0(3, &c1)));
    assert_eq!(server.peer_digest_scheme(), None);
    assert_eq!(&response[1..9], &[0x0A, 0x0B, 0x0C, 0x0D, 0, 0, 0, 0]);
    assert_eq!(&response[9..1 + PACKET_LEN], &server_random()[..]);
    assert_eq!(&response[1 + PACKET_LEN..], &c1[..]);

    // Corrupting a byte outside the digest breaks it as well.
    let mut c1 = packet(CLIENT_EPOCH, CLIENT_VERSION, &client_random());
    embed_digest(Signer::Client, DigestScheme::Scheme1, &mut c1).unwrap();
    c1[1535] ^= 0x80;
    let mut server = test_server();
    let response = in_progress(server.process(&with_c0(3, &c1)));
    assert_eq!(server.peer_digest_scheme(), None);
    assert_eq!(&response[1 + PACKET_LEN..], &c1[..]);
}

#[test]
fn rtmpe_versions_are_refused_at_the_first_byte() {
    for version in [6u8, 8, 0, 31, 255] {
        let mut server = test_server();
        assert_eq!(
            server.process(&[version]),
            Err(HandshakeError::UnsupportedVersion(version))
        );
        // The failure sticks, and nothing is buffered.
        assert_eq!(
            server.process(&[3]),
            Err(HandshakeError::UnsupportedVersion(version))
        );
        assert_eq!(server.buffered_len(), 0);
    }
    let mut client = test_client();
    client.start();
    assert_eq!(
        client.process(&[8, 0, 0]),
        Err(HandshakeError::UnsupportedVersion(8))
    );
    assert_eq!(
        HandshakeError::UnsupportedVersion(6).to_string(),
        "peer asked for RTMP version 6 (encrypted RTMPE), only version 3 is supported"
    );    // A TLS ClientHello (record type 0x16) on the plain port says so.
    let mut server = test_server();
    let error = server.process(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap_err();
    assert_eq!(error, HandshakeError::UnsupportedVersion(0x16));
    assert!(error.to_string().contains("looks like TLS"), "{error}");
}

#[test]
fn misuse_is_a_typed_error() {
    let mut client = test_client();
    assert_eq!(client.process(&[3]), Err(HandshakeError::NotStarted));
    let mut server = test_server();
    let mut wire = with_c0(3, &plain_c1());
    wire.extend_from_slice(&[0u8; PACKET_LEN]);
    completed(server.process(&wire));
    assert_eq!(server.process(&[1]), Err(HandshakeError::AlreadyCompleted));
}

/// Feeds `bytes` one at a time; returns what was sent back and how the last byte ended.
fn feed_bytewise(handshake: &mut Handshake, bytes: &[u8]) -> (Vec<u8>, Option<Bytes>) {
    let mut sent = Vec::new();
    for (i, byte) in bytes.iter().enumerate() {
        match handshake.process(std::slice::from_ref(byte)).unwrap() {
            HandshakeProgress::InProgress { response } => sent.extend_from_slice(&response),
            HandshakeProgress::Completed {
                response,
                remaining,
            } => {
                sent.extend_from_slice(&response);
                assert_eq!(i, bytes.len() - 1, "completed before the last byte");
                return (sent, Some(remaining));
            }
        }
        assert!(handshake.buffered_len() <= MAX_BUFFERED_BYTES);
    }
    (sent, None)
}

#[test]
fn byte_at_a_time_gives_the_same_bytes_as_all_at_once() {
    // All at once, for reference.
    let mut client = test_client();
    let mut server = test_server();
    let c0c1 = client.start();
    let s0s1s2 = in_progress(server.process(&c0c1));
    let (c2, _) = completed(client.process(&s0s1s2));

    // One byte at a time.
    let mut client = test_client();
    let mut server = test_server();
    assert_eq!(client.start(), c0c1);
    let (sent, done) = feed_bytewise(&mut server, &c0c1);
    assert_eq!(sent, s0s1s2.to_vec());
    assert!(done.is_none());
    let (sent, done) = feed_bytewise(&mut client, &s0s1s2);
    assert_eq!(sent, c2.to_vec());
    assert_eq!(done.as_deref(), Some(&[][..]));
    let (sent, done) = feed_bytewise(&mut server, &c2);
    assert!(sent.is_empty());
    assert_eq!(done.as_deref(), Some(&[][..]));
    assert!(client.is_completed() && server.is_completed());
}

#[test]
fn everything_in_one_read_hands_back_chunk_data() {
    // A client that does not wait for S1 before sending C2 (plain echo clients do this).
    let mut server = test_server();
    let mut wire = with_c0(3, &plain_c1());
    wire.extend_from_slice(&[0xEE; PACKET_LEN]);
    wire.extend_from_slice(b"\x03chunk");
    let (response, remaining) = completed(server.process(&wire));
    assert_eq!(response.len(), 1 + 2 * PACKET_LEN);
    assert_eq!(&remaining[..], b"\x03chunk");
}

#[test]
fn client_and_server_in_memory_with_random_bytes() {
    for epoch in [0, 1, u32::MAX] {
        let mut client = Handshake::new(HandshakeRole::Client, epoch);
        let mut server = Handshake::new(HandshakeRole::Server, epoch);
        let s0s1s2 = in_progress(server.process(&client.start()));
        let own_s1: [u8; PACKET_LEN] = s0s1s2[1..1 + PACKET_LEN].try_into().unwrap();
        let (s1_scheme, s1_digest) = find_digest(Signer::Server, &own_s1).unwrap();
        assert_eq!(s1_scheme, DigestScheme::Scheme0);
        let (c2, _) = completed(client.process(&s0s1s2));
        let c2: [u8; PACKET_LEN] = c2[..].try_into().unwrap();
        assert!(reply_is_signed(Signer::Client, &s1_digest, &c2));
        let (_, remaining) = completed(server.process(&c2));
        assert!(remaining.is_empty());
    }
}

/// C0 + C1 + C2: the whole of what one side receives.
const WHOLE_HANDSHAKE: usize = 1 + 2 * PACKET_LEN;

fn split_points() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0usize..4000, 0..8)
}

/// Feeds `input` split at `cuts`; panics if the bound is broken, returns the outcome.
fn feed_split(
    handshake: &mut Handshake,
    input: &[u8],
    cuts: &[usize],
) -> Result<Option<Bytes>, HandshakeError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut start = 0;
    for cut in cuts {
        let progress = handshake.process(&input[start..cut])?;
        assert!(handshake.buffered_len() <= MAX_BUFFERED_BYTES);
        start = cut;
        if let HandshakeProgress::Completed { remaining, .. } = progress {
            let mut rest = remaining.to_vec();
            rest.extend_from_slice(&input[start..]);
            return Ok(Some(Bytes::from(rest)));
        }
    }
    Ok(None)
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(
        mut input in proptest::collection::vec(any::<u8>(), 0..8000),
        cuts in split_points(),
        as_server in any::<bool>(),
        version_3 in any::<bool>(),
    ) {
        // Half the cases get past the version byte, so the later steps are exercised too.
        if let (true, Some(first)) = (version_3, input.first_mut()) {
            *first = 3;
        }
        let role = if as_server { HandshakeRole::Server } else { HandshakeRole::Client };
        let mut handshake = Handshake::new(role, 0);
        handshake.start();
        let outcome = feed_split(&mut handshake, &input, &cuts);
        prop_assert!(handshake.buffered_len() <= MAX_BUFFERED_BYTES);
        match input.first() {
            None => prop_assert_eq!(outcome, Ok(None)),
            Some(&3) if input.len() >= WHOLE_HANDSHAKE => {
                // Anything after version 3 completes, and nothing is lost.
                let remaining = outcome.unwrap().unwrap();
                prop_assert_eq!(&remaining[..], &input[WHOLE_HANDSHAKE..]);
            }
            Some(&3) => prop_assert_eq!(outcome, Ok(None)),
            Some(&v) => prop_assert_eq!(outcome, Err(HandshakeError::UnsupportedVersion(v))),
        }
    }

    #[test]
    fn mutated_client_hello_still_completes(
        flips in proptest::collection::vec((1usize..1 + 2 * PACKET_LEN, any::<u8>()), 1..16),
        trailing in proptest::collection::vec(any::<u8>(), 0..64),
        cuts in split_points(),
    ) {
        let mut client = test_client();
        let mut wire = client.start().to_vec();
        wire.extend_from_slice(&[0u8; PACKET_LEN]);
        for (at, xor) in flips {
            wire[at] ^= xor;
        }
        wire.extend_from_slice(&trailing);
        let mut server = test_server();
        let remaining = feed_split(&mut server, &wire, &cuts).unwrap().unwrap();
        prop_assert_eq!(&remaining[..], &trailing[..]);
    }
}
