//! The PROXY protocol on real sockets. HAProxy on loopback puts v1 and v2 headers in front
//! of plain RTMP, RTMPS and HTTP listeners, with health checks, and the relay sees the
//! clients' own loopback addresses (the newer ffmpeg's `-local_addr`) in the API and its IP
//! rules, while players keep the source's packet hashes. Raw sockets then send headers the
//! way no balancer should: in pieces, with the client's bytes in the same segment, cut off,
//! stalled, missing, and before TLS.

mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use common::hooks::expect_refused;
use common::http;
use common::interop::*;
use common::proxy::*;
use common::tls::*;
use common::*;
use rtmp_edge::relay::access::{AccessConfig, IpRules};
use rtmp_edge::relay::{Config, ProxyProtocolListeners};
use rtmp_edge::sessions::ClientSessionEvent;
use rustls::pki_types::ServerName;

const FIXTURE: &str = "h264_aac.flv";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The clients the relay lists whose address came from a PROXY header, as
/// (ip, protocol, role), sorted.
fn proxied_clients(clients: &serde_json::Value, balancer_ip: &str) -> Vec<(String, String, String)> {
    let mut seen: Vec<(String, String, String)> = clients
        .as_array()
        .expect("clients array")
        .iter()
        .filter(|client| client.get("proxied_by").is_some())
        .map(|client| {
            let by = client["proxied_by"].as_str().unwrap();
            assert!(by.starts_with(&format!("{balancer_ip}:")), "proxied by HAProxy's address: {client}");
            let text = |key: &str| client[key].as_str().unwrap().to_string();
            (text("ip"), text("protocol"), text("role"))
        })
        .collect();
    seen.sort();
    seen
}

#[test]
fn haproxy_v1_and_v2_in_front_of_rtmp_rtmps_and_http() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("proxy-haproxy");
    let ca = TestCa::new(&dir, "proxy");
    let cert = ca.issue(&dir, "relay", &["localhost", "127.0.0.1"]);
    let access = AccessConfig { play_rules: IpRules::parse(&[(false, "127.0.0.8")]).unwrap(), ..AccessConfig::default() };
    let relay = start_relay(Config {
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        proxy_protocol: ProxyProtocolListeners { rtmp: true, rtmps: true, http: true },
        access,
        ..tls_config(&cert)
    });
    let [rtmp_v2, rtmp_v1, rtmps, api] = [(); 4].map(|()| own_loopback_addr());
    // Health checks every 200 ms: LOCAL headers on the v2 servers, a header-less connect
    // and close on the v1 one (a plain `check` without check-send-proxy).
    let config = format!(
        "global\n  maxconn 200\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  timeout check 2s\n\
         listen rtmp_v2\n  bind {rtmp_v2}\n  server relay {} send-proxy-v2 check inter 200\n\
         listen rtmp_v1\n  bind {rtmp_v1}\n  server relay {} send-proxy check inter 200 no-check-send-proxy\n\
         listen rtmps\n  bind {rtmps}\n  server relay {} send-proxy-v2 check inter 200\n\
         listen api\n  bind {api}\n  server relay {} send-proxy check inter 200\n",
        relay.local_addr(),
        relay.local_addr(),
        relay.tls_addr().unwrap(),
        relay.http_addr().unwrap(),
    );
    let haproxy = HaProxy::start(&dir, &config);
    haproxy.explain_failure(|| {
        let get = |path: &str| get_on(connect_from(ip("127.0.0.9"), api), path);
        assert!(
            eventually(Duration::from_secs(10), || TcpStream::connect(api).is_ok() && get("/healthz").status == 200),
            "the API through HAProxy"
        );
        let out_v1 = dir.join("player-v1.flv");
        let (mut player_v1, player_v1_log) = ffmpeg_from("127.0.0.6", &live_url(rtmp_v1, "s"), Some(&out_v1), &dir, "player-v1");
        let out_tls = dir.join("player-tls.flv");
        let (mut player_tls, player_tls_log) = ffmpeg_from("127.0.0.7", &rtmps_url(rtmps, "s"), Some(&out_tls), &dir, "player-tls");
        wait_players(&relay, 2, "players through HAProxy (v1, and v2 before TLS)");
        let (mut denied, denied_log) = ffmpeg_from("127.0.0.8", &live_url(rtmp_v2, "s"), Some(&dir.join("denied.flv")), &dir, "denied");
        expect_refused(&mut denied, &denied_log, "Access denied: not allowed from this address.");
        let (mut publisher, publisher_log) = ffmpeg_from("127.0.0.5", &live_url(rtmp_v2, "s"), None, &dir, "publisher");
        wait_publishers(&relay, 1, "the publisher through HAProxy (v2)");

        let clients = get("/api/v1/clients").json();
        let expected = [
            ("127.0.0.5", "rtmp", "publisher"),
            ("127.0.0.6", "rtmp", "player"),
            ("127.0.0.7", "rtmps", "player"),
            ("127.0.0.9", "http", "http"),
        ]
        .map(|(ip, protocol, role)| (ip.to_string(), protocol.to_string(), role.to_string()));
        assert_eq!(proxied_clients(&clients, "127.0.0.1"), expected, "{clients:#}");

        // A client that reaches the PROXY listener without the balancer is closed.
        let (mut direct, direct_log) = ffmpeg_player(&ffmpeg, &live_url(relay.local_addr(), "s"), &dir.join("direct.flv"), &dir, "direct", &[]);
        assert!(direct.wait_timeout(Duration::from_secs(15)).is_some_and(|status| !status.success()), "{}", tail(&direct_log));

        expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
        let metrics = get("/metrics").text();
        let closed = |reason: &str| -> u64 {
            let prefix = format!("rtmp_edge_connections_closed_total{{reason=\"{reason}\"}} ");
            metrics.lines().find_map(|line| line.strip_prefix(&prefix)).map_or(0, |n| n.trim().parse().unwrap())
        };
        assert_eq!(closed("proxy_header_failed"), 1, "only the direct client:\n{metrics}");
        assert_eq!(closed("proxy_header_timeout"), 0);
        let checks = closed("peer_closed") + closed("read_failed");
        assert!(checks >= 8, "HAProxy's health checks came and went ({checks}):\n{metrics}");
        assert!(!haproxy.log().contains(" is DOWN"), "a health check failed:\n{}", haproxy.log());
        shut_down_and_let_players_end(relay, &mut [(&mut player_v1, &player_v1_log), (&mut player_tls, &player_tls_log)]);
        let input = fixture_packets(FIXTURE);
        check_output(&input, &out_v1, &player_v1_log, 0.5, false, "player through send-proxy");
        check_output(&input, &out_tls, &player_tls_log, 0.5, false, "RTMPS player through send-proxy-v2");
    });
}

/// A relay whose RTMP listener requires the PROXY protocol, with a plain HTTP listener for
/// the API and metrics, a 2 s handshake timeout and one connection per address.
fn raw_relay() -> rtmp_edge::relay::RelayHandle {
    start_relay(Config {
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        proxy_protocol: ProxyProtocolListeners { rtmp: true, ..ProxyProtocolListeners::default() },
        handshake_timeout: Duration::from_secs(2),
        max_connections_per_ip: 1,
        ..test_config()
    })
}

fn clients(relay: &rtmp_edge::relay::RelayHandle) -> Vec<serde_json::Value> {
    let answer = http::get(relay.http_addr().unwrap(), "/api/v1/clients", None).json();
    answer.as_array().unwrap().iter().filter(|client| client["protocol"] == "rtmp").cloned().collect()
}

fn closes(relay: &rtmp_edge::relay::RelayHandle, reason: &str) -> u64 {
    http::closes_by_reason(relay.http_addr().unwrap()).get(reason).copied().unwrap_or(0)
}

#[test]
fn headers_in_pieces_with_the_first_bytes_cut_off_stalled_or_missing() {
    let relay = raw_relay();
    let to = relay.local_addr();
    let client = |port: u16| SocketAddr::new(ip("192.0.2.10"), port);

    // v1 in three segments, then the client's handshake: the header is taken off whole.
    let mut stream = TcpStream::connect(to).unwrap();
    stream.set_nodelay(true).unwrap();
    let header = v1_header(client(1234), to);
    for piece in header.chunks(header.len() / 3 + 1) {
        stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(30)); // separate segments, not synchronisation
    }
    let mut player = RtmpTestClient::connect_on(stream, "live").expect("connect after a v1 header in pieces");
    player.request_play("s").unwrap();
    player
        .wait_for(EXCHANGE_TIMEOUT, |event| matches!(event, ClientSessionEvent::PlaybackStarted { .. }))
        .expect("play");
    let listed = clients(&relay);
    assert_eq!((listed.len(), &listed[0]["ip"], &listed[0]["port"]), (1, &"192.0.2.10".into(), &1234.into()), "{listed:?}");

    // The same client again: over max-connections-per-ip = 1 for 192.0.2.10, whatever the
    // balancer's address. A v2 header with the client's C0+C1 in the same segment.
    let mut again = TcpStream::connect(to).unwrap();
    let mut bytes = v2_header(client(1235), to);
    bytes.push(3);
    bytes.extend_from_slice(&[0; 1536]);
    again.write_all(&bytes).unwrap();
    assert!(socket_closed_within(&mut again, Duration::from_secs(5)), "a second connection from 192.0.2.10");
    assert_eq!(closes(&relay, "refused"), 1);
    assert_eq!(relay.stats().connections_refused, 1);
    // Another client through the same balancer address comes in.
    let mut other = TcpStream::connect(to).unwrap();
    other.write_all(&v2_header(SocketAddr::new(ip("192.0.2.11"), 9), to)).unwrap();
    let other = RtmpTestClient::connect_on(other, "live").expect("another client's address");
    assert_eq!(clients(&relay).len(), 2);

    // No header; part of one, then the end; part of one, then nothing (the timeout); an
    // empty connect-and-close (a health check).
    assert!(RtmpTestClient::handshake_only(to).is_err(), "RTMP without a header");
    let mut cut = TcpStream::connect(to).unwrap();
    cut.write_all(&header[..10]).unwrap();
    cut.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(socket_closed_within(&mut cut, Duration::from_secs(5)));
    let mut stalled = TcpStream::connect(to).unwrap();
    stalled.write_all(&header[..10]).unwrap();
    drop(TcpStream::connect(to).unwrap());
    assert!(socket_closed_within(&mut stalled, Duration::from_secs(5)), "closed at the 2 s handshake timeout");
    assert!(eventually(Duration::from_secs(5), || closes(&relay, "peer_closed") == 1), "the empty connect");
    assert_eq!(
        (closes(&relay, "proxy_header_failed"), closes(&relay, "proxy_header_timeout")),
        (2, 1),
        "no header, and a header cut off; a header stalled"
    );
    assert_eq!(clients(&relay).len(), 2, "the players are untouched");
    drop((player, other));
}

#[test]
fn the_header_comes_off_before_tls() {
    let dir = TempDir::new("proxy-tls");
    let ca = TestCa::new(&dir, "proxy-tls");
    let cert = ca.issue(&dir, "relay", &["localhost"]);
    let relay = start_relay(Config {
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        proxy_protocol: ProxyProtocolListeners { rtmps: true, ..ProxyProtocolListeners::default() },
        ..tls_config(&cert)
    });
    let to = relay.tls_addr().unwrap();
    let mut socket = TcpStream::connect(to).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    socket.write_all(&v2_header(SocketAddr::new(ip("198.51.100.20"), 4443), to)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(client_config(&ca.pem), name).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, socket);
    play_over_tls(&mut stream, "s", write_whole).expect("RTMPS play after a v2 header");
    let clients = http::get(relay.http_addr().unwrap(), "/api/v1/clients", None).json();
    let player: Vec<&serde_json::Value> = clients.as_array().unwrap().iter().filter(|c| c["protocol"] == "rtmps").collect();
    assert_eq!((&player[0]["ip"], &player[0]["port"], &player[0]["role"]), (&"198.51.100.20".into(), &4443.into(), &"player".into()));
    // The plain listener does not take headers: a header there is not RTMP.
    let mut plain = TcpStream::connect(relay.local_addr()).unwrap();
    plain.write_all(&v1_header(SocketAddr::new(ip("198.51.100.21"), 1), relay.local_addr())).unwrap();
    assert!(socket_closed_within(&mut plain, Duration::from_secs(5)));
    assert_eq!(closes_counted(&relay, "handshake_failed"), 1);
}
