//! The status page in a real browser: Debian's Chromium, headless, driven by Playwright
//! (`tests/browser/status_page.js`, `playwright-core` pinned in tests/browser/package.json
//! and installed by scripts/test.sh). While an ffmpeg publisher is live, the page must show
//! the stream's name and one player, then two once another ffmpeg player joins. The
//! screenshot is saved as target/status-page.png.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::interop::*;
use common::*;
use rtmp_edge::relay::Config;

const FIXTURE: &str = "h264_aac.flv";

#[test]
fn the_status_page_shows_the_stream_and_its_players_updating_in_chromium() {
    let ffmpeg = require_program("ffmpeg");
    let node = require_program("node");
    require_program("chromium");
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("browser");
    assert!(
        browser_dir.join("node_modules").join("playwright-core").is_dir(),
        "playwright-core is not installed in {}: run scripts/test.sh (install_browser_deps) or npm ci there",
        browser_dir.display()
    );
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("status-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let dir = TempDir::new("status-page");
    let relay = start_relay(Config { http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..test_config() });
    let page = format!("http://{}/", relay.http_addr().unwrap());
    let source = live_url(relay.local_addr(), "lobby");
    // Looped until the test ends (the guard kills it).
    let (_publisher, _) = ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "publisher", &["-stream_loop", "-1"]);
    assert!(eventually(Duration::from_secs(10), || relay.stats().publishers == 1), "the publisher did not start");
    let (_first, _) = ffmpeg_player(&ffmpeg, &source, &dir.join("first.flv"), &dir, "first-player", &[]);
    assert!(eventually(Duration::from_secs(10), || relay.stats().players == 1), "the first player did not start");

    let (stderr, browser_log) = log_file(&dir, "browser.log");
    let mut command = Command::new(node);
    command
        .arg(browser_dir.join("status_page.js"))
        .args([page.as_str(), "live/lobby"])
        .arg(&screenshot)
        .args(["1", "2"])
        .current_dir(&browser_dir)
        .stdout(Stdio::piped())
        .stderr(stderr);
    let mut browser = ChildGuard::spawn(command, "chromium via playwright");
    let (lines_in, lines) = mpsc::channel();
    let stdout = browser.take_stdout().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_in.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| {
        lines
            .recv_timeout(Duration::from_secs(90))
            .unwrap_or_else(|_| panic!("the page never showed {what}; browser log:\n{}", tail(&browser_log)))
    };

    // The heading reads the stream's name, then its live badge.
    let first = next_line("the stream with one player");
    assert!(first.starts_with("seen heading=\"live/lobby") && first.ends_with("\" players=1"), "{first}");
    let (_second, _) = ffmpeg_player(&ffmpeg, &source, &dir.join("second.flv"), &dir, "second-player", &[]);
    let second = next_line("the second player");
    assert!(second.starts_with("seen heading=\"live/lobby") && second.ends_with("\" players=2"), "{second}");
    let saved = next_line("the screenshot");
    assert!(saved.starts_with("screenshot "), "{saved}");
    let status = browser.wait_timeout(Duration::from_secs(30)).expect("the browser script did not exit");
    assert!(status.success(), "browser script failed:\n{}", tail(&browser_log));
    let png = std::fs::read(&screenshot).expect("screenshot saved");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "not a real screenshot");
    relay.shutdown().unwrap();
}
