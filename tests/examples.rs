//! Every example runs, against the relay or against ffmpeg, and does what it says: an
//! example that does not run is a defect.
//!
//! The examples run as the programs a user runs (`target/PROFILE/examples/NAME`, built by
//! [`example_path`] with this test's profile). Content is checked with ffprobe packet
//! hashes against the fixture.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::interop::*;
use common::library::*;
use common::*;
use rtmp_edge::blocking;
use rtmp_edge::flv::{FlvReader, FlvTag, FlvTagType};
use rtmp_edge::url::RtmpUrl;

const FIXTURE: &str = "h264_aac.flv";

/// The example `name`, built (once per test run) with the profile of this test.
///
/// `cargo test --all-targets` compiles examples as test harnesses, not as the programs
/// users run, so this builds them the ordinary way: `cargo build --examples` with the
/// same profile and target directory, which is quick once the library is built and never
/// leaves a stale binary behind.
fn example_path(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let examples_dir = BUILT.get_or_init(build_examples).as_ref().unwrap_or_else(|error| panic!("{error}"));
    examples_dir.join(name)
}

fn build_examples() -> Result<PathBuf, String> {
    let test_binary = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // target/PROFILE/deps/examples-HASH
    let profile_dir = test_binary.parent().and_then(Path::parent).ok_or("no target/PROFILE above the test binary")?;
    let target_dir = profile_dir.parent().ok_or("no target directory above target/PROFILE")?;
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") => "dev",
        Some(profile) => profile,
        None => return Err(format!("unreadable profile directory {}", profile_dir.display())),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let output = Command::new(cargo)
        .args(["build", "--examples", "--profile", profile, "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo to build the examples: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo build --examples failed:\n{}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok(profile_dir.join("examples"))
}

/// A running example: its stdout as lines on a channel, its stderr in a log file.
struct Example {
    child: ChildGuard,
    lines: Receiver<String>,
    seen: Vec<String>,
    log: PathBuf,
    label: String,
}

impl Example {
    fn start(name: &str, args: &[&str], dir: &TempDir) -> Example {
        let (stderr, log) = log_file(dir, &format!("{name}.log"));
        let mut command = Command::new(example_path(name));
        command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
        let mut child = ChildGuard::spawn(command, name);
        let stdout = child.take_stdout().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Example { child, lines, seen: Vec::new(), log, label: name.to_string() }
    }

    /// Waits for a stdout line that `wanted` accepts, and returns it.
    fn wait_for_line(&mut self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "{}: no such line within {timeout:?}; stdout so far: {:?}\nstderr:\n{}",
                    self.label,
                    self.seen,
                    tail(&self.log)
                ),
            }
        }
    }

    /// The address from the `listening on ADDR` line a server example prints first.
    fn listening_address(&mut self) -> SocketAddr {
        let line = self.wait_for_line(Duration::from_secs(10), |line| line.starts_with("listening on "));
        line.trim_start_matches("listening on ").parse().unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    /// Waits for the example to exit by itself, successfully; returns all it printed.
    fn finish(mut self, timeout: Duration) -> Vec<String> {
        match self.child.wait_timeout(timeout) {
            Some(status) => assert!(status.success(), "{} failed ({status}):\n{}", self.label, tail(&self.log)),
            None => panic!("{} did not exit within {timeout:?}; stdout: {:?}\n{}", self.label, self.seen, tail(&self.log)),
        }
        self.seen.extend(self.lines.iter());
        self.seen
    }
}

/// Runs a recording example (`args` name the URL and output file) against the relay
/// while ffmpeg publishes the fixture; the recording must be the whole fixture.
fn recording_example_records_what_ffmpeg_publishes(name: &str, args: impl Fn(&str, &Path) -> Vec<String>) {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new(name);
    let relay = start_relay(test_config());
    let source = live_url(relay.local_addr(), "s");
    let out = dir.join("recorded.flv");
    let args = args(&source, &out);
    let mut example = Example::start(name, &args.iter().map(String::as_str).collect::<Vec<_>>(), &dir);
    example.wait_for_line(Duration::from_secs(10), |line| line.starts_with("playing"));
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "ffmpeg-publisher", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    let printed = example.finish(Duration::from_secs(10));
    assert!(printed.iter().any(|line| line.starts_with("recorded ")), "{name}: {printed:?}");
    assert_same_packets(&fixture_packets(FIXTURE), &probe_packets(&out), name);
    relay.shutdown().unwrap();
}

#[test]
fn record_example_records_what_ffmpeg_publishes() {
    recording_example_records_what_ffmpeg_publishes("record", |url, out| vec![url.to_string(), out.display().to_string()]);
}

#[test]
fn blocking_client_example_records_what_ffmpeg_publishes() {
    recording_example_records_what_ffmpeg_publishes("blocking_client", |url, out| {
        vec!["play".to_string(), url.to_string(), out.display().to_string()]
    });
}

#[test]
fn blocking_client_example_publishes_what_ffmpeg_records() {
    let dir = TempDir::new("blocking-client-publish");
    let relay = start_relay(test_config());
    ffmpeg_records_what_is_published(relay, FIXTURE, &dir, |target| {
        let fixture_path = fixture(FIXTURE).display().to_string();
        let example = Example::start("blocking_client", &["publish", target, &fixture_path], &dir);
        let printed = example.finish(Duration::from_secs(30));
        assert!(printed.iter().any(|line| line.starts_with("published ")), "{printed:?}");
    });
}

#[test]
fn tokio_relay_example_relays_ffmpeg_to_ffmpeg() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("tokio-relay");
    let mut relay = Example::start("tokio_relay", &["127.0.0.1:0"], &dir);
    let address = relay.listening_address();
    let source = live_url(address, "s");
    let out = dir.join("play.flv");
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &source, &out, &dir, "ffmpeg-player", &[]);
    relay.wait_for_line(Duration::from_secs(10), |line| line == "play live/s (waiting for its publisher)");
    // A second player, ours: the example's accept_play_waiting must read as waiting.
    let waiting = blocking::connect(&RtmpUrl::parse(&source).unwrap()).unwrap().play().unwrap();
    assert!(waiting.is_waiting(), "tokio_relay accepted the play with accept_play_waiting");
    relay.wait_for_line(Duration::from_secs(10), |line| line == "play live/s (waiting for its publisher)");
    let recorder = std::thread::spawn(move || waiting.collect::<Result<Vec<FlvTag>, _>>());

    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "ffmpeg-publisher", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    relay.wait_for_line(Duration::from_secs(10), |line| line == "unpublish live/s");
    let interrupted = stop_player(&mut player, Duration::from_secs(10));
    let input = fixture_packets(FIXTURE);
    let output = check_output(&input, &out, &player_log, 1.0, interrupted, "ffmpeg player via tokio_relay");
    assert_eq!(assert_contiguous_run(&input, &output, "video", 1, "ffmpeg player"), 0, "from the first keyframe");

    let tags = recorder.join().unwrap().unwrap_or_else(|e| panic!("blocking player: {e}"));
    let recorded = dir.join("blocking.flv");
    write_flv(&tags, &recorded);
    assert_same_packets(&input, &probe_packets(&recorded), "blocking player via tokio_relay");
}

#[test]
fn blocking_server_example_prints_every_frame_ffmpeg_publishes() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("blocking-server");
    let mut server = Example::start("blocking_server", &["127.0.0.1:0"], &dir);
    let address = server.listening_address();
    let (mut publisher, publisher_log) =
        ffmpeg_publisher(&ffmpeg, FIXTURE, &live_url(address, "s"), &dir, "ffmpeg-publisher", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    let printed = server.finish(Duration::from_secs(10));
    assert!(printed.iter().any(|line| line == "publish \"s\""), "{printed:?}");
    // One line per message, with its timestamp and size: the same as the fixture's tags.
    let frames: Vec<String> = printed
        .iter()
        .filter(|line| line.starts_with("Audio at ") || line.starts_with("Video at ") || line.starts_with("metadata at "))
        .cloned()
        .collect();
    let expected: Vec<String> = FlvReader::open(fixture(FIXTURE))
        .unwrap()
        .map(|tag| {
            let tag = tag.unwrap();
            let kind = match tag.tag_type {
                FlvTagType::Audio => "Audio",
                FlvTagType::Video => "Video",
                FlvTagType::Script => "metadata",
            };
            format!("{kind} at {}: {} bytes", tag.timestamp, tag.data.len())
        })
        .collect();
    // ffmpeg writes its own onMetaData for a live output (other fields than the file's),
    // so the metadata line says only when and that it came; every media line is exact.
    assert!(expected[0].starts_with("metadata at 0ms: "), "the fixture starts with metadata: {}", expected[0]);
    assert!(frames.first().is_some_and(|line| line.starts_with("metadata at 0ms: ")), "{:?}", frames.first());
    assert_eq!(frames.len(), expected.len(), "lines printed vs tags in the fixture");
    if let Some(index) = (1..frames.len()).find(|&i| frames[i] != expected[i]) {
        panic!("line {index}: printed {:?}, the fixture's tag is {:?}", frames[index], expected[index]);
    }
}
