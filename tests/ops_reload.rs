//! The `rtmp-edge` binary with a `--config` file: reload by `POST /api/v1/reload` and by
//! SIGHUP while ffmpeg plays, refusing bad files (with their line) on reload and at
//! start, `check-config`, and the command line winning over the file.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http;
use common::interop::*;
use common::*;

const BINARY: &str = env!("CARGO_BIN_EXE_rtmp-edge");
const FIXTURE: &str = "h264_aac.flv";

/// The binary, running, with its log collected.
struct Edge {
    child: ChildGuard,
    rtmp: SocketAddr,
    http: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Edge {
    fn start(config: &Path, extra: &[&str]) -> Edge {
        let mut command = Command::new(BINARY);
        command.arg("--config").arg(config).args(["--log-level", "info"]).args(extra);
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(command, "rtmp-edge");
        let log = child.collect_stderr_lines();
        let mut edge = Edge { child, rtmp: SocketAddr::from(([0, 0, 0, 0], 0)), http: SocketAddr::from(([0, 0, 0, 0], 0)), log };
        let found = eventually(Duration::from_secs(10), || {
            let log = edge.log.lock().unwrap();
            let rtmp = log.iter().find_map(|line| line.split("listening on ").nth(1)).map(|a| a.trim().parse().unwrap());
            let http = log
                .iter()
                .find_map(|line| line.split("status page on http://").nth(1))
                .map(|a| a.trim().trim_end_matches('/').parse().unwrap());
            match (rtmp, http) {
                (Some(rtmp), Some(http)) => {
                    edge.rtmp = rtmp;
                    edge.http = http;
                    true
                }
                _ => false,
            }
        });
        assert!(found, "rtmp-edge did not log its addresses:\n{}", edge.log_text());
        edge
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until `count` log lines contain `needle`.
    fn wait_log(&self, needle: &str, count: usize) -> bool {
        eventually(Duration::from_secs(10), || self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count() >= count)
    }

    fn sighup(&self) {
        let status = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

/// A configuration file with `max-connections-per-ip` and `extra` lines.
fn write_config(path: &Path, per_ip: usize, extra: &str) {
    let text = format!(
        "# written by tests/ops_reload.rs\nlisten = \"127.0.0.1:0\"\nhttp-listen = \"127.0.0.1:0\"\n\
         max-connections-per-ip = {per_ip}\nqueue-soft-limit = 60000\nqueue-hard-limit = 120000\n{extra}"
    );
    std::fs::write(path, text).unwrap();
}

fn reload_over_http(edge: &Edge) -> http::HttpAnswer {
    http::request(edge.http, "POST", "/api/v1/reload", None).expect("POST /api/v1/reload")
}

#[test]
fn reloads_while_ffmpeg_plays_leave_no_gap_and_a_new_limit_applies_to_the_next_connection() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("ops-reload");
    let config = dir.join("rtmp-edge.toml");
    write_config(&config, 50, "");
    let edge = Edge::start(&config, &[]);
    let source = live_url(edge.rtmp, "r");
    let out = dir.join("player.flv");
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &source, &out, &dir, "player", &[]);
    let waiting = eventually(Duration::from_secs(10), || {
        http::get(edge.http, "/api/v1/summary", None).json()["players"] == 1
    });
    assert!(waiting, "the player did not start");
    let (mut publisher, publisher_log) =
        ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "publisher", &["-stream_loop", "3"]);
    let live = eventually(Duration::from_secs(10), || {
        let streams = http::get(edge.http, "/api/v1/streams", None).json();
        streams[0]["live"] == true && streams[0]["frames_in"].as_u64() > Some(30)
    });
    assert!(live, "the stream did not go live");

    // Two connections come from 127.0.0.1 now (publisher and player): at a limit of two,
    // the next is refused; the two go on.
    write_config(&config, 2, "");
    let answer = reload_over_http(&edge);
    assert_eq!((answer.status, answer.json()["reloaded"].as_bool()), (200, Some(true)), "{}", answer.text());
    assert!(edge.wait_log("configuration reloaded", 1));
    let refused = RtmpTestClient::connect(edge.rtmp, "live");
    assert!(refused.is_err(), "a third connection from 127.0.0.1 was accepted after the reload");
    assert!(edge.wait_log("--max-connections-per-ip", 1), "{}", edge.log_text());

    // SIGHUP re-reads the file too: back to 50, the next connection is accepted.
    write_config(&config, 50, "");
    edge.sighup();
    assert!(edge.wait_log("configuration reloaded", 2), "{}", edge.log_text());
    let mut accepted = RtmpTestClient::connect(edge.rtmp, "live").expect("accepted after the second reload");
    assert!(accepted.request_play("other").is_ok());
    drop(accepted);

    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(60));
    // An ffmpeg player ended by its connection writes everything it received.
    let drained = eventually(Duration::from_secs(10), || {
        let clients = http::get(edge.http, "/api/v1/clients", None).json();
        clients.as_array().unwrap().iter().any(|c| c["role"] == "player" && c["queue_bytes"] == 0)
    });
    assert!(drained);
    let clients = http::get(edge.http, "/api/v1/clients", None).json();
    for client in clients.as_array().unwrap().iter().filter(|c| c["role"] == "player" && c["name"] == "r") {
        let id = client["client_id"].as_u64().unwrap();
        assert_eq!(http::request(edge.http, "DELETE", &format!("/api/v1/clients/{id}"), None).unwrap().status, 200);
    }
    let interrupted = stop_player(&mut player, Duration::from_secs(10));
    let input = repeated(&fixture_packets(FIXTURE), 4);
    // No gap: one contiguous run of what was published, from the first keyframe, with both
    // reloads inside it.
    let output = check_output(&input, &out, &player_log, 0.95, interrupted, "player");
    assert_eq!(assert_contiguous_run(&input, &output, "video", 1, "player video"), 0);
}

#[test]
fn a_bad_file_is_refused_on_reload_and_at_start_with_its_line() {
    let dir = TempDir::new("ops-bad-config");
    let config = dir.join("rtmp-edge.toml");
    write_config(&config, 50, "");
    let edge = Edge::start(&config, &[]);

    // Line 7: a key the relay does not know.
    write_config(&config, 1, "max-conections = 3\n");
    let answer = reload_over_http(&edge);
    assert_eq!(answer.status, 422, "{}", answer.text());
    let error = answer.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("line 7") && error.contains("max-conections"), "{error}");
    assert!(edge.wait_log("configuration reload refused", 1));
    assert!(edge.log_text().contains("line 7"), "{}", edge.log_text());
    edge.sighup();
    assert!(edge.wait_log("configuration reload refused", 2), "{}", edge.log_text());
    // The running configuration stays: per-IP 50, not the file's 1.
    let first = RtmpTestClient::connect(edge.rtmp, "live").expect("accepted");
    let second = RtmpTestClient::connect(edge.rtmp, "live").expect("still accepted: the bad file was not applied");
    drop((first, second));
    // Line 4: a value out of range.
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nhttp-listen = \"127.0.0.1:0\"\n\nchunk-size = 64\n").unwrap();
    let answer = reload_over_http(&edge);
    assert_eq!(answer.status, 422);
    assert!(answer.json()["error"].as_str().unwrap().contains("line 4, column 14: chunk-size"), "{}", answer.text());
    let metrics = http::get(edge.http, "/metrics", None).text();
    assert!(metrics.contains("rtmp_edge_config_reloads_total{result=\"refused\"} 3\n"), "{metrics}");

    // At start: the same file is refused, with its line, and nothing starts.
    write_config(&config, 1, "max-conections = 3\n");
    let output = Command::new(BINARY).arg("--config").arg(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 7") && stderr.contains("max-conections"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");

    // check-config says the same, and that the shipped example is fine.
    let check = Command::new(BINARY).arg("check-config").arg(&config).output().unwrap();
    assert_eq!(check.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(stdout.contains(&format!("{}: line 7, column 1:", config.display())), "{stdout}");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("rtmp-edge.example.toml");
    let check = Command::new(BINARY).arg("check-config").arg(&example).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), format!("{}: ok", example.display()));
}

#[test]
fn the_command_line_wins_over_the_file_at_start_and_after_a_reload() {
    let dir = TempDir::new("ops-flags");
    let config = dir.join("rtmp-edge.toml");
    write_config(&config, 50, "http-token = \"from-file\"\n");
    let edge = Edge::start(&config, &["--http-token", "from-flag"]);
    for round in 0..2 {
        assert_eq!(http::get(edge.http, "/api/v1/summary", Some("from-file")).status, 401, "round {round}");
        assert_eq!(http::get(edge.http, "/api/v1/summary", Some("from-flag")).status, 200, "round {round}");
        write_config(&config, 50, "http-token = \"changed-in-file\"\n");
        let answer = http::request(edge.http, "POST", "/api/v1/reload", Some("from-flag")).unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    assert_eq!(http::get(edge.http, "/api/v1/summary", Some("changed-in-file")).status, 401);
}

#[test]
fn help_names_the_operations_options() {
    let help = Command::new(BINARY).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for option in ["--config", "check-config", "--http-listen", "--http-token", "--http-max-connections", "--http-header-timeout"] {
        assert!(text.contains(option), "--help does not mention {option}:\n{text}");
    }
}

#[test]
fn at_start_the_open_files_limit_is_raised_to_the_hard_limit_and_logged() {
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    let soft = 512.min(hard);
    let mut command = Command::new("bash");
    command
        .args(["-c", &format!("ulimit -Sn {soft} && exec \"$0\" --listen 127.0.0.1:0 --log-level info"), BINARY])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = ChildGuard::spawn(command, "rtmp-edge with a low soft limit");
    let lines = BufReader::new(child.take_stderr().unwrap()).lines();
    let line = lines.map_while(Result::ok).find(|line| line.contains("open files limit")).expect("a line about the limit");
    if soft < hard {
        assert!(line.contains(&format!("raised from {soft} to {hard}")), "{line}");
    } else {
        assert!(line.contains("the hard limit"), "{line}");
    }
}
