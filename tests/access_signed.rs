//! Signed, expiring stream URLs with real ffmpeg publishers and players: URLs made by
//! `rtmp-edge sign` are accepted; expired, tampered (name or exp), wrongly keyed and missing
//! signatures are refused with the reason. On an edge, every player is checked locally and
//! the pull carries the signature of the player that opened it.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::hooks::*;
use common::interop::*;
use common::*;
use rtmp_edge::relay::access::{signed_url, AccessConfig, Secret};
use rtmp_edge::relay::Config;
use rtmp_edge::sessions::ClientSessionEvent;

const FIXTURE: &str = "h264_aac.flv";
const BINARY: &str = env!("CARGO_BIN_EXE_rtmp-edge");

/// `rtmp-edge sign ARGS...`'s output line.
fn sign(args: &[&str]) -> String {
    let output = Command::new(BINARY).arg("sign").args(args).output().unwrap();
    assert!(output.status.success(), "rtmp-edge sign {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one line: {text:?}");
    text.trim().to_string()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn secrets(publish: &str, play: &str) -> AccessConfig {
    AccessConfig { publish_secret: Secret::new(publish), play_secret: Secret::new(play), ..AccessConfig::default() }
}

#[test]
fn urls_from_the_sign_subcommand_are_accepted_and_bad_signatures_refused() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("signed");
    let relay = start_relay(access_config(secrets("pub-secret", "play-secret")));
    let addr = relay.local_addr();
    let secret_file = dir.join("play.secret");
    std::fs::write(&secret_file, "play-secret\n").unwrap();
    let publish_url = sign(&["--secret", "pub-secret", "--expires", "120", &live_url(addr, "cam")]);
    let play_url = sign(&["--secret-file", secret_file.to_str().unwrap(), &live_url(addr, "cam")]);
    let (base, exp) = play_url.split_once("?exp=").unwrap();
    assert_eq!(base, live_url(addr, "cam"));
    let exp: u64 = exp.split('&').next().unwrap().parse().unwrap();
    assert!((now() + 3590..=now() + 3600).contains(&exp), "--expires defaults to an hour: {exp}");

    let out = dir.join("play.flv");
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &play_url, &out, &dir, "signed-player", &[]);
    wait_players(&relay, 1, "the signed player");
    let expired_at = now() - 10;
    let expired = format!("{}?{}", live_url(addr, "cam"), signed_url::signed_query(b"play-secret", "live", "cam", expired_at));
    let mismatch = "Access denied: the stream URL's signature does not match.".to_string();
    let unsigned = "Access denied: the stream URL is not signed (it needs ?exp=...&sig=...).".to_string();
    let tampered_exp = play_url.replacen(&format!("exp={exp}"), &format!("exp={}", exp + 1), 1);
    let play = |label, url, reason: &String| Refused { label, url, publish: false, reason: reason.clone() };
    let refused = vec![
        play("expired", expired, &format!("Access denied: the stream URL expired (exp={expired_at}).")),
        play("tampered-name", play_url.replacen("/cam?", "/cam2?", 1), &mismatch),
        play("tampered-exp", tampered_exp, &mismatch),
        play("publish-secret-for-play", publish_url.clone(), &mismatch),
        play("missing", live_url(addr, "cam"), &unsigned),
        Refused { label: "unsigned-publish", url: live_url(addr, "other"), publish: true, reason: unsigned.clone() },
    ];
    expect_all_refused(&ffmpeg, FIXTURE, &dir, refused);
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &publish_url, &dir, "signed-publisher", &[]);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    let samples = metrics(&relay);
    assert_eq!(metric(&samples, "rtmp_edge_access_denials_total", "action=play,reason=signature_invalid"), 3.0);
    assert_eq!(metric(&samples, "rtmp_edge_access_denials_total", "action=play,reason=signature_expired"), 1.0);
    assert_eq!(metric(&samples, "rtmp_edge_access_denials_total", "action=play,reason=signature_missing"), 1.0);
    assert_eq!(metric(&samples, "rtmp_edge_access_denials_total", "action=publish,reason=signature_missing"), 1.0);
    shut_down_and_let_players_end(relay, &mut [(&mut player, &player_log)]);
    check_output(&fixture_packets(FIXTURE), &out, &player_log, 1.0, false, "signed player");
}

/// Plays `name` on `addr` with the library's client: `Ok` once playing, `Err(description)`
/// when refused.
fn try_play(addr: std::net::SocketAddr, name: &str) -> Result<RtmpTestClient, String> {
    let mut client = RtmpTestClient::connect(addr, "live").unwrap();
    client.request_play(name).unwrap();
    let answer = client
        .wait_for(EXCHANGE_TIMEOUT, |event| {
            matches!(event, ClientSessionEvent::PlaybackStarted { .. } | ClientSessionEvent::RequestRejected { .. })
        })
        .unwrap();
    match answer {
        ClientSessionEvent::RequestRejected { status, .. } => Err(status.description),
        _ => Ok(client),
    }
}

#[test]
fn an_edge_checks_every_player_itself_and_its_pull_carries_the_openers_signature() {
    let origin = start_relay(Config { access: secrets("origin-publish", "play-secret"), ..test_config() });
    let edge_config = Config { access: secrets("edge-publish", "play-secret"), ..edge_config(&[origin.local_addr()]) };
    let edge = start_relay(edge_config);
    let edge_addr = edge.local_addr();

    // Refused at the edge: no pull, not even a connection to the origin.
    assert_eq!(try_play(edge_addr, "cam").err().as_deref(), Some("Access denied: the stream URL is not signed (it needs ?exp=...&sig=...)."));
    assert_eq!(origin.stats().connections_accepted, 0);
    assert_eq!(edge.stats().pulls, 0);

    // Allowed at the edge; the pull asks the origin with the same signed name.
    let signed = format!("cam?{}", signed_url::signed_query(b"play-secret", "live", "cam", now() + 60));
    let stop = PlayerStop { after_unpublish: 1, deadline: Duration::from_secs(20) };
    let player = PlayerThread::spawn(edge_addr, "live", &signed, stop, "edge player");
    player.wait_ready(Duration::from_secs(10));
    assert!(eventually(Duration::from_secs(10), || origin.stats().players == 1), "the origin accepted the edge's signed pull");

    // A second unsigned player is refused by the edge itself, although a pull is open.
    assert!(try_play(edge_addr, "cam").is_err());
    assert_eq!(origin.stats().players, 1);

    let items = fixture_items(FIXTURE, 0);
    let publish_name = format!("cam?{}", signed_url::signed_query(b"origin-publish", "live", "cam", now() + 60));
    let mut publisher = RtmpTestClient::connect(origin.local_addr(), "live").unwrap();
    publisher.publish(&publish_name).unwrap();
    publisher.send_items(&items, None).unwrap();
    publisher.stop().unwrap();
    let received = items_of(&player.join());
    assert_eq!(assert_late_join(&items, &received, "edge player"), 0, "the player waited from the start");
}

#[test]
fn a_sighup_reads_the_secret_file_again_for_the_next_plays() {
    sighup_rereads_the_secret_file(true);
}

// Review finding: without --config a reload had nothing to re-read, so a secret file given
// on the command line was never read again.
#[test]
fn a_sighup_rereads_a_secret_file_given_on_the_command_line_alone() {
    sighup_rereads_the_secret_file(false);
}

fn sighup_rereads_the_secret_file(with_config_file: bool) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};

    let dir = TempDir::new("signed-reload");
    let secret_file = dir.join("play.secret");
    std::fs::write(&secret_file, "first-secret\n").unwrap();
    let mut command = Command::new(BINARY);
    if with_config_file {
        let config = dir.join("rtmp-edge.toml");
        std::fs::write(&config, format!("listen = \"127.0.0.1:0\"\nplay-secret-file = {:?}\n", secret_file.display().to_string())).unwrap();
        command.arg("--config").arg(&config);
    } else {
        command.args(["--listen", "127.0.0.1:0", "--play-secret-file"]).arg(&secret_file);
    }
    command.args(["--log-level", "info"]).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut relay = ChildGuard::spawn(command, "rtmp-edge");
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let lines = BufReader::new(relay.take_stderr().unwrap()).lines();
    let collected = Arc::clone(&log);
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|line| collected.lock().unwrap().push(line)));
    let logged = |needle: &str| log.lock().unwrap().iter().find_map(|line| line.split(needle).nth(1).map(str::to_string));
    assert!(eventually(Duration::from_secs(10), || logged("listening on ").is_some()), "no listen line");
    let addr: std::net::SocketAddr = logged("listening on ").unwrap().trim().parse().unwrap();

    let signed_with = |secret: &str| {
        let url = sign(&["--secret", secret, &live_url(addr, "cam")]);
        url.rsplit('/').next().unwrap().to_string()
    };
    assert!(try_play(addr, &signed_with("first-secret")).is_ok());
    std::fs::write(&secret_file, "second-secret\n").unwrap();
    let status = Command::new("kill").args(["-HUP", &relay.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(eventually(Duration::from_secs(10), || logged("configuration reloaded").is_some()), "no reload line");
    assert_eq!(
        try_play(addr, &signed_with("first-secret")).err().as_deref(),
        Some("Access denied: the stream URL's signature does not match.")
    );
    assert!(try_play(addr, &signed_with("second-secret")).is_ok());
    assert!(logged("play live/cam denied: the stream URL's signature does not match").is_some(), "the denial is logged with the peer and stream");
}
