//! The status page plays a stream in a real browser: Debian's Chromium, headless, driven by
//! Playwright (`tests/browser/watch.js`, `playwright-core` pinned in
//! tests/browser/package.json). While an ffmpeg publisher is live, the script presses the
//! stream's "watch" button (HTTP-FLV, played by the vendored mpegts.js through Media Source
//! Extensions), requires the `<video>` element's currentTime to advance by at least 3 s,
//! then does the same with "watch over WebSocket" (WebSocket-FLV). While each plays, the
//! relay's API must show the browser as a player of that protocol. The publisher's clock
//! starts an hour in; the relay's FLV timestamps start at 0 wherever a player joins. The
//! screenshot of the page playing is saved as target/http-flv-player.png.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::http;
use common::interop::*;
use common::*;
use rtmp_edge::relay::Config;

const FIXTURE: &str = "h264_aac.flv";

/// The protocols of the players the API lists for `live/NAME`.
fn player_protocols(api: SocketAddr, name: &str) -> Vec<String> {
    let clients = http::get(api, "/api/v1/clients", None).json();
    clients
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == "player" && c["name"] == name)
        .map(|c| c["protocol"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_status_page_plays_http_flv_and_websocket_flv_in_chromium() {
    let ffmpeg = require_program("ffmpeg");
    let node = require_program("node");
    require_program("chromium");
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("browser");
    assert!(
        browser_dir.join("node_modules").join("playwright-core").is_dir(),
        "playwright-core is not installed in {}: run scripts/test.sh (install_browser_deps) or npm ci there",
        browser_dir.display()
    );
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("http-flv-player.png");
    let _ = std::fs::remove_file(&screenshot);
    let dir = TempDir::new("http-flv-browser");
    let relay = start_relay(Config { http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))), ..test_config() });
    let api = relay.http_addr().unwrap();
    // Looped until the test ends (the guard kills it), on a clock an hour in, as a stream
    // that has been live for a while: the page's player still starts at 0.
    let (_publisher, _) = ffmpeg_publisher(
        &ffmpeg,
        FIXTURE,
        &live_url(relay.local_addr(), "lobby"),
        &dir,
        "publisher",
        &["-stream_loop", "-1", "-itsoffset", "3600"],
    );
    wait_publishers(&relay, 1, "the publisher");

    let (stderr, browser_log) = log_file(&dir, "browser.log");
    let mut command = Command::new(node);
    command
        .arg(browser_dir.join("watch.js"))
        .arg(format!("http://{api}/"))
        .arg("live/lobby")
        .arg(&screenshot)
        .args(["http-flv", "ws-flv"])
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
    for protocol in ["http-flv", "ws-flv"] {
        let played = next_line(&format!("{protocol} playing"));
        assert!(played.starts_with(&format!("played protocol={protocol} from=")), "{played}");
        let times: Vec<f64> = played.split(['=', ' ']).filter_map(|field| field.parse().ok()).collect();
        assert!(times.len() == 2 && times[1] - times[0] >= 3.0, "{played}");
        // The page plays one stream at a time: the browser is this protocol's player now.
        assert!(
            eventually(Duration::from_secs(5), || player_protocols(api, "lobby") == [protocol]),
            "the API shows players {:?} while the page plays {protocol}",
            player_protocols(api, "lobby")
        );
    }
    let saved = next_line("the screenshot");
    assert!(saved.starts_with("screenshot "), "{saved}");
    let status = browser.wait_timeout(Duration::from_secs(30)).expect("the browser script did not exit");
    assert!(status.success(), "browser script failed:\n{}", tail(&browser_log));
    let png = std::fs::read(&screenshot).expect("screenshot saved");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "not a real screenshot");
    relay.shutdown().unwrap();
}
