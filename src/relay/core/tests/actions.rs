//! What the core asks of the driver: never work for a connection it has already closed.

use std::net::SocketAddr;
use std::time::Instant;

use super::harness::test_config;
use crate::relay::core::{Action, CloseReason, RelayCore};
use crate::relay::ListenerKind;

fn drain(core: &mut RelayCore) -> Vec<Action> {
    std::iter::from_fn(|| core.poll_action()).collect()
}

// Found by the relay_core fuzz target: one read held a handshake and then bytes that broke
// the chunk protocol. The handshake's answer asked for a Write, the error closed the
// connection, and the driver was handed `Write(id)` for a connection the core had already
// forgotten, before its `Close`. (A `Connect` asked for in such an input opened a socket
// only to close it.)
#[test]
fn an_input_that_closes_its_connection_hands_out_only_the_close() {
    let now = Instant::now();
    let mut core = RelayCore::new(test_config(), 7, now);
    let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let id = core.accept(peer, ListenerKind::Rtmp, now).unwrap();
    let mut input = vec![3u8]; // C0
    input.extend_from_slice(&[0; 1536]); // C1
    input.extend_from_slice(&[0; 1536]); // C2
    // A fmt 0 chunk on chunk stream 3: timestamp 0, length 0xFFFFFF (past the 8 MiB
    // message limit), type 20, stream 0.
    input.extend_from_slice(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x14, 0, 0, 0, 0]);
    core.handle_input(id, &input, now);
    let actions = drain(&mut core);
    assert!(matches!(actions.as_slice(), [Action::Close { id: closed, reason: CloseReason::ProtocolError(_) }] if *closed == id), "{actions:?}");
    assert!(!core.is_open(id));
}

#[test]
fn a_write_asked_for_before_the_peer_hung_up_is_not_handed_out() {
    let now = Instant::now();
    let mut core = RelayCore::new(test_config(), 7, now);
    let id = core.accept("127.0.0.1:50000".parse().unwrap(), ListenerKind::Rtmp, now).unwrap();
    let mut c0_c1 = vec![3u8];
    c0_c1.extend_from_slice(&[0; 1536]);
    // The driver read C0+C1 and then the end of the stream in one readiness event.
    core.handle_input(id, &c0_c1, now);
    core.handle_closed(id, CloseReason::PeerClosed, now);
    assert_eq!(drain(&mut core), vec![Action::Close { id, reason: CloseReason::PeerClosed }]);
}
