//! Hostile and broken peers on RTMPS, in-process. Each closes only its own connection,
//! with the reason counted by label (`/metrics`), while a well-behaved TLS client is still
//! served: plain RTMP on the TLS port, TLS on the plain port, a stalled TLS handshake,
//! random bytes after the handshake, a record header claiming more than TLS allows,
//! a TLS 1.2 renegotiation attempt (OpenSSL's s_client), and a player that stops reading
//! (its backlog stays in the core's queue, where the hard limit closes it). RTMP in one-byte
//! TLS records still works.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::tls::*;
use common::*;
use rtmp_edge::relay::{Config, RelayHandle};

const FIXTURE: &str = "h264_aac.flv";

struct Setup {
    _dir: TempDir,
    ca: TestCa,
    relay: RelayHandle,
}

impl Setup {
    fn new(label: &str, config: impl FnOnce(Config) -> Config) -> Setup {
        let dir = TempDir::new(label);
        let ca = TestCa::new(&dir, "test");
        let cert = ca.issue(&dir, "relay", &["localhost", "127.0.0.1"]);
        let base = Config { http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..tls_config(&cert) };
        let relay = start_relay(config(base));
        Setup { _dir: dir, ca, relay }
    }

    fn tls_addr(&self) -> SocketAddr {
        self.relay.tls_addr().unwrap()
    }

    fn closed(&self, reason: &str) -> u64 {
        closes_counted(&self.relay, reason)
    }

    fn wait_closed(&self, reason: &str, count: u64) {
        assert!(
            eventually(Duration::from_secs(10), || self.closed(reason) >= count),
            "no {count} closes for {reason}: {}",
            http::get(self.relay.http_addr().unwrap(), "/metrics", None).text()
        );
    }

    /// A well-behaved client still gets the handshake, the certificate and an RTMP play.
    fn assert_still_serving(&self) {
        let mut stream = tls_connect(self.tls_addr(), "localhost", &self.ca.pem).expect("a good TLS client after the hostile one");
        play_over_tls(&mut stream, "other", write_whole).expect("RTMP play over TLS after the hostile client");
    }
}

#[test]
fn plain_rtmp_on_the_tls_port_is_closed_as_not_tls() {
    let setup = Setup::new("tls-hostile-plain", |c| c);
    let mut socket = raw_socket(setup.tls_addr());
    let mut c0_c1 = vec![3u8];
    c0_c1.extend_from_slice(&[0u8; 1536]);
    socket.write_all(&c0_c1).unwrap();
    assert!(socket_closed_within(&mut socket, Duration::from_secs(5)), "plain RTMP on the TLS port stayed open");
    setup.wait_closed("tls_failed", 1);
    assert_eq!(setup.relay.stats().protocol_errors, 1);
    setup.assert_still_serving();
}

#[test]
fn tls_on_the_plain_port_fails_the_rtmp_handshake() {
    let setup = Setup::new("tls-hostile-on-plain", |c| c);
    let refused = tls_connect(setup.relay.local_addr(), "localhost", &setup.ca.pem);
    assert!(refused.is_err(), "a TLS handshake succeeded on the plain RTMP port");
    setup.wait_closed("handshake_failed", 1);
    setup.assert_still_serving();
}

#[test]
fn a_stalled_tls_handshake_is_closed_by_the_handshake_timeout() {
    let setup = Setup::new("tls-hostile-stall", |c| Config { handshake_timeout: Duration::from_secs(1), ..c });
    // Half a ClientHello's record, then nothing.
    let mut half = raw_socket(setup.tls_addr());
    half.write_all(&[0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00]).unwrap();
    // And a connection that sends nothing at all.
    let mut silent = raw_socket(setup.tls_addr());
    assert!(socket_closed_within(&mut half, Duration::from_secs(10)), "a stalled TLS handshake stayed open");
    assert!(socket_closed_within(&mut silent, Duration::from_secs(10)), "a silent TLS connection stayed open");
    setup.wait_closed("handshake_timeout", 2);
    setup.assert_still_serving();
}

#[test]
fn random_bytes_after_the_tls_handshake_close_that_connection() {
    let setup = Setup::new("tls-hostile-garbage", |c| c);
    // Bytes that are no record at all, and a well-formed record header over bytes that
    // do not decrypt.
    let garbage: [&[u8]; 2] = [b"\x99not a tls record at all\xff\xfe", &[0x17, 0x03, 0x03, 0x00, 0x20, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]];
    for (index, bytes) in garbage.iter().enumerate() {
        let mut stream = tls_connect(setup.tls_addr(), "localhost", &setup.ca.pem).unwrap();
        // After the handshake, straight to the socket, around rustls.
        stream.sock.write_all(bytes).unwrap();
        assert!(tls_closed_within(&mut stream, Duration::from_secs(5)), "garbage #{index} did not close the connection");
        setup.wait_closed("tls_failed", index as u64 + 1);
    }
    setup.assert_still_serving();
}

#[test]
fn a_record_longer_than_tls_allows_is_refused_at_its_header() {
    let setup = Setup::new("tls-hostile-huge", |c| c);
    // Before the handshake: a 65535-byte handshake record (TLS allows 16 KiB + 2048).
    let mut socket = raw_socket(setup.tls_addr());
    socket.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0xff, 0xfb]).unwrap();
    assert!(socket_closed_within(&mut socket, Duration::from_secs(5)), "a huge record header did not close");
    setup.wait_closed("tls_failed", 1);
    // After it: a huge application data record.
    let mut stream = tls_connect(setup.tls_addr(), "localhost", &setup.ca.pem).unwrap();
    stream.sock.write_all(&[0x17, 0x03, 0x03, 0xff, 0xff]).unwrap();
    stream.sock.write_all(&[0u8; 1000]).unwrap();
    assert!(tls_closed_within(&mut stream, Duration::from_secs(5)), "a huge record after the handshake did not close");
    setup.wait_closed("tls_failed", 2);
    setup.assert_still_serving();
}

#[test]
fn rtmp_in_one_byte_tls_records_plays() {
    let setup = Setup::new("tls-hostile-tiny", |c| c);
    let mut stream = tls_connect(setup.tls_addr(), "localhost", &setup.ca.pem).unwrap();
    // About 3,500 records of one byte each: the handshake, connect and play.
    play_over_tls(&mut stream, "s", write_in_tiny_records).expect("a play sent one byte per record");
    assert_eq!(setup.relay.stats().players, 1);
    assert_eq!(setup.relay.stats().protocol_errors, 0);
}

#[test]
fn a_tls12_renegotiation_attempt_harms_nobody() {
    let openssl = require_program("openssl");
    let setup = Setup::new("tls-hostile-renegotiation", |c| Config { handshake_timeout: Duration::from_secs(2), ..c });
    // s_client's "R" command asks for a renegotiation (rustls never renegotiates). Its
    // input stays open longer than the relay's handshake timeout (s_client quits at its
    // end, and -ign_eof would turn the command off).
    let script = format!(
        "(printf 'R\\n'; sleep 6) | {} s_client -tls1_2 -connect {} -servername localhost",
        openssl.display(),
        setup.tls_addr()
    );
    let mut command = Command::new("sh");
    command.args(["-c", &script]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut client = ChildGuard::spawn(command, "openssl s_client");
    let output = client.take_stdout_reader();
    // rustls answers with a no_renegotiation warning; OpenSSL takes that as the end and
    // sends a fatal handshake_failure alert, which closes that connection, by name.
    assert!(client.wait_timeout(Duration::from_secs(15)).is_some(), "s_client's connection was never closed");
    let output = String::from_utf8_lossy(&output.join().unwrap()).into_owned();
    assert!(output.contains("TLSv1.2"), "s_client did not negotiate TLS 1.2:\n{output}");
    setup.wait_closed("tls_failed", 1);
    assert_eq!(setup.closed("handshake_failed"), 0, "the R command reached RTMP as data");
    setup.assert_still_serving();
}

#[test]
fn tls_1_0_and_1_1_clients_are_refused() {
    let openssl = require_program("openssl");
    let setup = Setup::new("tls-hostile-old", |c| c);
    for (count, version) in [(1, "-tls1"), (2, "-tls1_1")] {
        // SECLEVEL=0 lets OpenSSL offer these versions at all.
        let output = Command::new(&openssl)
            .args(["s_client", version, "-cipher", "DEFAULT@SECLEVEL=0", "-connect", &setup.tls_addr().to_string()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(text.contains("alert handshake failure"), "{version} was not refused with an alert:\n{text}");
        setup.wait_closed("tls_failed", count);
    }
    setup.assert_still_serving();
}

#[test]
fn a_tls_player_that_stops_reading_is_closed_by_the_queue_limit_in_the_core() {
    let setup = Setup::new("tls-hostile-slow", |c| Config {
        queue_hard_limit_bytes: 1024 * 1024,
        queue_soft_limit_ms: 60_000,
        queue_hard_limit_ms: 120_000,
        ..c
    });
    let mut stream = tls_connect(setup.tls_addr(), "localhost", &setup.ca.pem).unwrap();
    play_over_tls(&mut stream, "s", write_whole).unwrap();
    // From here the player reads nothing: the socket buffers fill, rustls's 64 KiB fill,
    // and the rest waits in the core's queue.
    let items = fixture_items(FIXTURE, 0);
    let mut publisher = RtmpTestClient::connect(setup.relay.local_addr(), "live").unwrap();
    publisher.publish("s").unwrap();
    let mut offset = 0;
    let closed = eventually(Duration::from_secs(60), || {
        if setup.relay.stats().slow_players_disconnected > 0 {
            return true;
        }
        let shifted: Vec<Item> = items.iter().filter(|i| !i.is_sequence_header()).map(|i| i.with_timestamp(i.timestamp() + offset)).collect();
        offset += 10_000;
        publisher.send_items(&shifted, None).is_err()
    });
    assert!(closed, "the player that stopped reading was never closed: {:?}", setup.relay.stats());
    setup.wait_closed("too_slow", 1);
    assert_eq!(setup.closed("tls_failed"), 0);
}
