//! The PROXY protocol in the core, from exact header bytes: the header's address is the
//! client's for the per-IP limit, IP rules, hooks and the API; a missing or broken header,
//! or one that does not come in time, closes the connection with a line naming the
//! balancer; a LOCAL header keeps the socket's address; a balancer's check that connects
//! and closes is logged at debug only.

use std::net::SocketAddr;
use std::time::Duration;

use super::harness::{test_config, Harness};
use super::log_capture;
use crate::relay::access::{AccessConfig, IpRules};
use crate::relay::core::{CloseReason, ConnId, Refusal};
use crate::proxy_protocol::{ProxyError, ProxyHeader, V2_SIGNATURE};
use crate::relay::{Config, ListenerKind, ProxyProtocolListeners};
use crate::sessions::{ClientSessionEvent, RejectedRequestKind};

const BALANCER: &str = "10.0.0.2:40000";

fn balancer() -> SocketAddr {
    BALANCER.parse().unwrap()
}

fn proxied(config: Config) -> Config {
    Config { proxy_protocol: ProxyProtocolListeners { rtmp: true, ..Default::default() }, ..config }
}

/// HAProxy's `send-proxy` line for a TCP4 client.
fn v1(client: &str, port: u16) -> Vec<u8> {
    format!("PROXY TCP4 {client} 10.0.0.1 {port} 1935\r\n").into_bytes()
}

/// HAProxy's `send-proxy-v2` header for a TCP4 client (no TLVs).
fn v2(client: [u8; 4], port: u16) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0x00, 0x0C]);
    header.extend_from_slice(&client);
    header.extend_from_slice(&[10, 0, 0, 1]);
    header.extend_from_slice(&port.to_be_bytes());
    header.extend_from_slice(&1935u16.to_be_bytes());
    header
}

/// v2 LOCAL: what `check-send-proxy` health checks send.
fn v2_local() -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    header
}

fn play(h: &mut Harness, id: ConnId, name: &str) {
    let session = h.peer(id).client();
    session.connect("live", "rtmp://edge/live").unwrap();
    session.request_playback(name).unwrap();
    h.send_outbound(id);
    h.pump();
}

fn playing(h: &mut Harness, id: ConnId) -> bool {
    h.peer(id).count_events(|e| matches!(e, ClientSessionEvent::PlaybackStarted { .. })) == 1
}

#[test]
fn the_headers_address_is_the_client_in_the_api_rules_and_the_limit() {
    let rules = IpRules::parse(&[(false, "192.0.2.0/24")]).unwrap();
    let config = Config {
        max_connections_per_ip: 2,
        access: AccessConfig { play_rules: rules, ..AccessConfig::default() },
        ..proxied(test_config())
    };
    let mut h = Harness::new(config);
    let allowed = h.connect_client_through(balancer(), &v2([198, 51, 100, 9], 50000));
    play(&mut h, allowed, "s");
    assert!(playing(&mut h, allowed), "198.51.100.9 may play");
    let denied = h.connect_client_through(balancer(), &v1("192.0.2.7", 50001));
    play(&mut h, denied, "s");
    let rejected = h.peer(denied).client_events.iter().any(|event| {
        matches!(event, ClientSessionEvent::RequestRejected { kind: RejectedRequestKind::Play, .. })
    });
    assert!(rejected, "the deny rule for 192.0.2.0/24 applies to the header's address");

    let views = h.core.client_views(h.now);
    let seen: Vec<(String, u16, Option<String>)> =
        views.iter().map(|view| (view.ip.clone(), view.port, view.proxied_by.clone())).collect();
    assert_eq!(seen, [("198.51.100.9".to_string(), 50000, Some(BALANCER.to_string()))], "{views:?}");

    // The limit counts the client's address, not the balancer's: two from 198.51.100.9
    // (the player and one more) fill it, a third is refused, others still come in.
    let second = h.connect_client_through(balancer(), &v2([198, 51, 100, 9], 50002));
    assert!(h.core.is_open(second));
    let third = h.connect_client_through(balancer(), &v2([198, 51, 100, 9], 50003));
    let refusal = Refusal::TooManyFromAddress { ip: "198.51.100.9".parse().unwrap(), max: 2 };
    assert_eq!(h.close_reason(third), Some(&CloseReason::Refused(refusal)));
    let other = h.connect_client_through(balancer(), &v2([198, 51, 100, 10], 50004));
    assert!(h.core.is_open(other), "the balancer's own address is not limited");
    assert_eq!(h.stats().connections_refused, 1);
    // Closing gives the place back.
    h.core.handle_closed(second, CloseReason::PeerClosed, h.now);
    h.pump();
    let again = h.connect_client_through(balancer(), &v2([198, 51, 100, 9], 50005));
    assert!(h.core.is_open(again));
}

#[test]
fn hooks_get_the_headers_address() {
    let access = AccessConfig {
        hook_url: Some("http://127.0.0.1:9/hook".parse().unwrap()),
        hook_timeout: Duration::from_secs(1),
        ..AccessConfig::default()
    };
    let mut h = Harness::new(Config { access, ..proxied(test_config()) });
    let id = h.connect_client_through(balancer(), &v1("203.0.113.5", 61000));
    h.peer(id).client().connect("live", "rtmp://edge/live").unwrap();
    h.send_outbound(id);
    h.pump();
    let calls: Vec<serde_json::Value> = h.hooks.iter().map(|(_, call, _)| serde_json::from_str(&call.body).unwrap()).collect();
    assert_eq!(calls.len(), 1);
    assert_eq!((&calls[0]["action"], &calls[0]["ip"]), (&"connect".into(), &"203.0.113.5".into()));
}

#[test]
fn local_keeps_the_socket_address_and_counts_it() {
    let mut h = Harness::new(Config { max_connections_per_ip: 1, ..proxied(test_config()) });
    let check = h.connect_client_through(balancer(), &v2_local());
    play(&mut h, check, "s");
    assert!(playing(&mut h, check), "a LOCAL connection is served like a direct one");
    let views = h.core.client_views(h.now);
    assert_eq!((views[0].ip.as_str(), views[0].port, views[0].proxied_by.as_deref()), ("10.0.0.2", 40000, None));
    let second = h.connect_client_through("10.0.0.2:40001".parse().unwrap(), &v1("192.0.2.1", 1));
    assert!(h.core.is_open(second), "a proxied client is counted under its own address");
    let another_local = h.connect_client_through("10.0.0.2:40002".parse().unwrap(), b"PROXY UNKNOWN\r\n");
    assert!(matches!(h.close_reason(another_local), Some(CloseReason::Refused(_))), "LOCAL counts the balancer's address");
}

#[test]
fn a_missing_or_broken_header_closes_with_a_warning_naming_the_balancer() {
    let mut h = Harness::new(proxied(test_config()));
    log_capture::start();
    // An RTMP client that reached the PROXY listener directly: its C0 is not a header.
    let direct = h.connect_client_through(balancer(), &[0x03; 1537]);
    assert_eq!(h.close_reason(direct), Some(&CloseReason::ProxyHeaderFailed("no PROXY protocol header".into())));
    let warnings: Vec<String> =
        log_capture::take().into_iter().filter(|(level, _)| *level == log::Level::Warn).map(|(_, line)| line).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with(&format!("{BALANCER}: connection {direct} closed: ")), "{}", warnings[0]);
    assert!(warnings[0].ends_with(": no PROXY protocol header"), "{}", warnings[0]);

    let broken = h.connect_client_through(balancer(), b"PROXY TCP4 10.0.0.1 ::1 1 2\r\n");
    let reason = ProxyError::BadV1("address does not match the family").to_string();
    assert_eq!(h.close_reason(broken), Some(&CloseReason::ProxyHeaderFailed(reason)));
    assert_eq!(h.stats().protocol_errors, 2);
    assert_eq!(h.core.connection_count(), 0);
    assert!(h.core.client_views(h.now).is_empty());
}

#[test]
fn bytes_passed_before_the_header_close_the_connection() {
    let mut h = Harness::new(proxied(test_config()));
    let id = h.core.accept(balancer(), ListenerKind::Rtmp, h.now).unwrap();
    h.send_raw(id, &[0x03]);
    h.pump();
    assert!(matches!(h.close_reason(id), Some(CloseReason::ProxyHeaderFailed(_))));
}

#[test]
fn a_balancer_check_that_connects_and_closes_is_logged_at_debug_only() {
    let mut h = Harness::new(proxied(test_config()));
    log_capture::start();
    // HAProxy's plain `check`: connect, then close (or reset) without a byte.
    let silent = h.core.accept(balancer(), ListenerKind::Rtmp, h.now).unwrap();
    h.core.handle_closed(silent, CloseReason::PeerClosed, h.now);
    let reset = h.core.accept(balancer(), ListenerKind::Rtmp, h.now).unwrap();
    h.core.handle_closed(reset, CloseReason::ReadFailed("Connection reset by peer (os error 104)".into()), h.now);
    // `check-send-proxy`: a LOCAL header, then close.
    let local = h.core.accept(balancer(), ListenerKind::Rtmp, h.now).unwrap();
    h.core.handle_proxy_header(local, Ok(ProxyHeader::Local), h.now);
    h.core.handle_closed(local, CloseReason::PeerClosed, h.now);
    h.pump();
    let lines = log_capture::take();
    let loud: Vec<&(log::Level, String)> = lines.iter().filter(|(level, _)| *level <= log::Level::Info).collect();
    assert!(loud.is_empty(), "checks logged above debug: {loud:?}");
    let closed = lines.iter().filter(|(_, line)| line.contains(" closed: ")).count();
    assert_eq!(closed, 3, "each close is still logged at debug: {lines:?}");
    assert_eq!(h.stats().protocol_errors, 0);

    // A client whose connection got past the header is logged as usual.
    let client = h.connect_client_through(balancer(), &v1("192.0.2.8", 4242));
    h.core.handle_closed(client, CloseReason::PeerClosed, h.now);
    h.pump();
    let info = log_capture::containing("192.0.2.8:4242");
    let levels: Vec<log::Level> = info.iter().map(|(level, _)| *level).collect();
    assert_eq!(levels, [log::Level::Info, log::Level::Info], "opened and closed: {info:?}");
    assert!(info[0].1.ends_with(&format!("rtmp connection {client} opened (PROXY header from {BALANCER})")), "{}", info[0].1);
}

#[test]
fn the_header_must_come_within_the_handshake_timeout_on_every_listener() {
    let config = Config {
        handshake_timeout: Duration::from_secs(5),
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        proxy_protocol: ProxyProtocolListeners { rtmp: true, rtmps: false, http: true },
        ..test_config()
    };
    let mut h = Harness::new(config);
    let rtmp = h.core.accept(balancer(), ListenerKind::Rtmp, h.now).unwrap();
    let http = h.core.accept(balancer(), ListenerKind::Http, h.now).unwrap();
    let rtmps = h.core.accept(balancer(), ListenerKind::Rtmps, h.now).unwrap();
    assert_eq!(
        [rtmp, http, rtmps].map(|id| h.core.awaits_proxy_header(id)),
        [true, true, false],
        "only the listeners named wait for a header"
    );
    h.advance(Duration::from_secs(5));
    assert!(h.closes.is_empty(), "closed before the timeout: {:?}", h.closes);
    h.advance(Duration::from_millis(300));
    for id in [rtmp, http] {
        assert_eq!(h.close_reason(id), Some(&CloseReason::ProxyHeaderTimeout(Duration::from_secs(5))));
    }
    assert_eq!(h.close_reason(rtmps), Some(&CloseReason::HandshakeTimeout(Duration::from_secs(5))), "its own timer");
}
