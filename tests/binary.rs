//! The `rtmp-edge` binary itself: options, SIGTERM shutdown, `--dump` and `inspect`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BINARY: &str = env!("CARGO_BIN_EXE_rtmp-edge");

/// Starts the binary on an ephemeral port and returns it with the address it logged.
fn start(extra: &[&str]) -> (ChildGuard, SocketAddr) {
    let mut command = Command::new(BINARY);
    command.args(["--listen", "127.0.0.1:0", "--log-level", "info"]).args(extra);
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(command, "rtmp-edge");
    let stderr = child.take_stderr().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(address) = line.split("listening on ").nth(1) {
            let address: SocketAddr = address.trim().parse().expect("listening address");
            // Keep draining the log so the relay never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return (child, address);
        }
    }
    panic!("rtmp-edge did not log its listening address");
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
    let (mut relay, address) = start(&["--dump", dir.to_str().unwrap()]);
    let mut publisher = RtmpTestClient::connect(address, "live").unwrap();
    publisher.publish("s?key=k").unwrap();
    let items = fixture_items("h264_aac.flv", 0);
    publisher.send_items(&items[..20], None).unwrap();
    publisher.stop().unwrap();
    drop(publisher);
    std::thread::sleep(Duration::from_millis(500));
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
