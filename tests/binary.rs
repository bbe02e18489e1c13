//! The `rtmp-edge` binary itself: options, SIGTERM shutdown, `--dump` and `inspect`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rtmp_edge::sessions::MediaKind;

const BINARY: &str = env!("CARGO_BIN_EXE_rtmp-edge");

/// The binary's log lines so far, read on a thread (so the relay never blocks on a full pipe).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    /// Waits up to 10 s for a line containing `text`; true if one came.
    fn wait_for(&self, text: &str) -> bool {
        eventually(Duration::from_secs(10), || self.contains(text))
    }

    fn contains(&self, text: &str) -> bool {
        self.0.lock().unwrap().iter().any(|line| line.contains(text))
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// Starts the binary on an ephemeral port and returns it with the address it logged.
fn start(extra: &[&str]) -> (ChildGuard, SocketAddr) {
    let (child, address, _) = start_logged(extra);
    (child, address)
}

/// [`start`], with the log kept.
fn start_logged(extra: &[&str]) -> (ChildGuard, SocketAddr, Log) {
    let mut command = Command::new(BINARY);
    command.args(["--listen", "127.0.0.1:0", "--log-level", "info"]).args(extra);
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(command, "rtmp-edge");
    let stderr = child.take_stderr().expect("stderr piped");
    let log = Log::default();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.0.lock().unwrap().push(line);
            }
        });
    }
    assert!(log.wait_for("listening on "), "rtmp-edge did not log its listening address: {}", log.text());
    let address = log
        .0
        .lock()
        .unwrap()
        .iter()
        .find_map(|line| line.split("listening on ").nth(1).map(|a| a.trim().parse::<SocketAddr>().expect("listening address")))
        .unwrap();
    (child, address, log)
}

fn signal(child: &ChildGuard, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success(), "kill -{name}");
}

#[test]
fn help_and_version_describe_the_binary() {
    let help = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--listen", "--chunk-size", "--gop-cache", "--max-connections", "--max-connections-per-ip",
        "--max-message-size", "--queue-soft-limit", "--queue-hard-limit", "--handshake-timeout",
        "--idle-timeout", "--origin", "--push", "--pull-linger", "--upstream-timeout", "--dump",
        "--log-level", "--version", "inspect",
    ] {
        assert!(text.contains(option), "--help does not mention {option}:\n{text}");
    }
    let version = Command::new(BINARY).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("rtmp-edge {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_options_are_refused_with_a_reason() {
    for (args, reason) in [
        (vec!["--gop-cache", "maybe"], "--gop-cache"),
        (vec!["--chunk-size", "0"], "--chunk-size"),
        (vec!["--push", "http://x/live"], "--push"),
        (vec!["--queue-soft-limit", "9000", "--queue-hard-limit", "100"], "--queue-soft-limit"),
        (vec!["--listen", "nowhere"], "--listen"),
    ] {
        let output = Command::new(BINARY).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

#[test]
fn sigterm_tells_players_the_stream_ended_and_exits_zero() {
    let (mut relay, address) = start(&[]);
    let player = PlayerThread::spawn(
        address,
        "live",
        "s",
        PlayerStop { after_unpublish: 0, deadline: Duration::from_secs(15) },
        "player",
    );
    player.wait_ready(Duration::from_secs(5));
    let status = Command::new("kill").args(["-TERM", &relay.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = relay.wait_timeout(Duration::from_secs(10)).expect("relay exits after SIGTERM");
    assert!(exit.success(), "exit status {exit}");
    let log = player.join();
    assert!(
        statuses_of(&log).iter().any(|code| code == "NetStream.Play.Stop"),
        "player statuses: {:?}",
        statuses_of(&log)
    );
}

#[test]
fn dump_then_inspect_shows_the_publish() {
    let dir = std::env::temp_dir().join(format!("rtmp-edge-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut relay, address, log) = start_logged(&["--dump", dir.to_str().unwrap()]);
    let mut publisher = RtmpTestClient::connect(address, "live").unwrap();
    publisher.publish("s?key=k").unwrap();
    let items = fixture_items("h264_aac.flv", 0);
    publisher.send_items(&items[..20], None).unwrap();
    publisher.stop().unwrap();
    drop(publisher);
    // The relay writes the dump as it reads; once it closed the connection, all is there.
    assert!(log.wait_for("closed: publisher of live/s"), "{}", log.text());
    relay.interrupt();
    relay.wait_timeout(Duration::from_secs(10)).expect("relay exits after SIGINT");
    let dumps: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    let inspect = Command::new(BINARY).arg("inspect").arg(&dumps[0]).output().unwrap();
    assert!(inspect.status.success());
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(text.starts_with("handshake: C0+C1+C2"), "{text}");
    assert!(text.contains("name: \"connect\""), "{text}");
    assert!(text.contains("Utf8String(\"s?key=k\")"), "{text}");
    let media_lines = text.lines().filter(|line| line.contains("type=8 ") || line.contains("type=9 ")).count();
    let media_items = items[..20].iter().filter(|item| !matches!(item, Item::Metadata { .. })).count();
    assert_eq!(media_lines, media_items, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A relay with its API on, two players that stopped reading while the relay queued part
/// of what was published for each, and the publisher (still connected).
fn relay_with_two_backlogged_players() -> (ChildGuard, SocketAddr, Log, [PlayerThread; 2], Vec<Item>, RtmpTestClient) {
    let (relay, address, log) = start_logged(&["--http-listen", "127.0.0.1:0"]);
    assert!(log.wait_for("HTTP API, metrics and status page on http://"), "{}", log.text());
    let api: SocketAddr = log
        .text()
        .split("status page on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("the API's address");
    let until_closed = PlayerStop { after_unpublish: 0, deadline: Duration::from_secs(30) };
    let players = [0, 1].map(|i| PlayerThread::spawn(address, "live", "s", until_closed, &format!("player-{i}")));
    for player in &players {
        player.wait_ready(Duration::from_secs(5));
        player.hold_reading();
    }
    let mut publisher = RtmpTestClient::connect(address, "live").unwrap();
    publisher.publish("s").unwrap();
    let mut published = Vec::new();
    let backlogged = || {
        let players = http::clients_with_role(api, "player");
        players.len() == 2 && players.iter().all(|p| p["queue_bytes"].as_u64().unwrap_or(0) > 0)
    };
    let mut n = 0u32;
    while !backlogged() {
        assert!(n < 5_000, "the relay queued nothing for players that do not read");
        for _ in 0..10 {
            let mut data = vec![if n % 25 == 0 { 0x17 } else { 0x27 }, 0x01, 0, 0, 0];
            data.extend((0..64 * 1024u32).map(|i| i.wrapping_mul(31).wrapping_add(n) as u8));
            let frame = Item::Media { kind: MediaKind::Video, timestamp: n * 40, data: data.into() };
            publisher.send_item(&frame).unwrap();
            published.push(frame);
            n += 1;
        }
        publisher.drain_nonblocking().unwrap();
    }
    (relay, address, log, players, published, publisher)
}

#[test]
fn sigterm_refuses_new_connections_flushes_a_reader_and_closes_a_non_reader_at_the_deadline() {
    let (mut relay, address, log, [reader, stalled], published, _publisher) = relay_with_two_backlogged_players();
    signal(&relay, "TERM");
    assert!(log.wait_for("shutting down: no new connections"), "{}", log.text());
    // The listener is gone: refused at once, not accepted and then closed.
    match TcpStream::connect(address) {
        Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused, "{error}"),
        Ok(_) => panic!("a connection was accepted after SIGTERM"),
    }
    // The reader reads again: it gets everything, then Play.Stop and StreamEOF, last.
    reader.resume_reading();
    assert_flushed_then_stopped(&published, &reader.join(), "the reader");
    // The other one never reads again: the flush waits for it up to its deadline, then the
    // relay closes it and exits.
    let exit = relay.wait_timeout(Duration::from_secs(10)).expect("relay exits after the flush deadline");
    assert!(exit.success(), "exit status {exit}");
    assert!(log.contains("shutdown: 1 connections closed at the deadline"), "{}", log.text());
    assert!(!log.contains("second signal"), "{}", log.text());
    drop(stalled);
}

#[test]
fn a_second_signal_exits_at_once_without_waiting_for_the_flush() {
    let (mut relay, _address, log, players, _published, _publisher) = relay_with_two_backlogged_players();
    signal(&relay, "TERM");
    assert!(log.wait_for("shutting down: no new connections"), "{}", log.text());
    signal(&relay, "TERM");
    let exit = relay.wait_timeout(Duration::from_secs(10)).expect("relay exits after a second signal");
    assert!(log.contains("second signal: exiting now"), "{}", log.text());
    assert!(!log.contains("closed at the deadline"), "it waited for the flush deadline: {}", log.text());
    assert!(exit.success(), "exit status {exit}");
    drop(players);
}
