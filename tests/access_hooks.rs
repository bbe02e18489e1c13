//! HTTP hooks against a real hook server (`tests/common/hook_server.py`, Python's
//! http.server) with real ffmpeg publishers and players: allow and deny for connect,
//! publish and play, `{"code":1}`, a hook server that is down (fail closed and open), one
//! that accepts and never answers while another stream plays intact, `*_done` events with
//! byte counts, hostile answers, and a flood that tries to exhaust the pending bound.

mod common;

use std::process::Command;
use std::time::Duration;

use common::hooks::*;
use common::interop::*;
use common::*;
use rtmp_edge::relay::access::{AccessConfig, HookFailPolicy};

const FIXTURE: &str = "h264_aac.flv";

/// What the hook server is sent for each action: exactly these fields.
const DECISION_FIELDS: [&str; 9] = ["action", "app", "client_id", "ip", "param", "protocol", "server_id", "stream", "tc_url"];

fn with_done_fields(fields: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = fields.iter().chain(["bytes_in", "bytes_out", "duration_ms"].iter()).map(|f| f.to_string()).collect();
    all.sort();
    all
}

#[test]
fn the_hook_decides_connect_publish_and_play_and_hears_when_they_end() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("hooks-decide");
    let hooks = HookServer::start(&dir);
    let relay = start_relay(access_config(with_hook(&hooks.url(), 3000, AccessConfig::default())));
    let addr = relay.local_addr();

    let out = dir.join("play.flv");
    let (mut player, player_log) = ffmpeg_player(
        &ffmpeg,
        &live_url(addr, "ok?token=p1"),
        &out,
        &dir,
        "player",
        &["-rtmp_pageurl", "http://example.test/watch"],
    );
    wait_players(&relay, 1, "the allowed player");
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &live_url(addr, "ok?key=k1"), &dir, "publisher", &[]);
    let denied = "Access denied: hook answered HTTP 403.".to_string();
    let refused = vec![
        Refused { label: "publish-403", url: live_url(addr, "deny-pub"), publish: true, reason: denied.clone() },
        Refused {
            label: "publish-code1",
            url: live_url(addr, "code1-pub"),
            publish: true,
            reason: "Access denied: hook answered code 1.".to_string(),
        },
        Refused { label: "play-403", url: live_url(addr, "deny-play"), publish: false, reason: denied.clone() },
        Refused { label: "connect-403", url: format!("rtmp://{addr}/denyapp/x"), publish: false, reason: denied },
    ];
    expect_all_refused(&ffmpeg, FIXTURE, &dir, refused);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));

    let publish_done = hooks.wait_for_event("publish_done", "ok");
    assert_eq!(keys(&publish_done), with_done_fields(&DECISION_FIELDS));
    assert_eq!(publish_done["param"], "?key=k1");
    let file_size = std::fs::metadata(fixture(FIXTURE)).unwrap().len();
    let bytes_in = publish_done["bytes_in"].as_u64().unwrap();
    assert!(bytes_in > file_size && bytes_in < file_size * 2, "publish_done bytes_in {bytes_in}, the file has {file_size}");
    assert!(publish_done["bytes_out"].as_u64().unwrap() > 0);
    // ffmpeg -re sends the 4 s file no faster than real time.
    assert!(publish_done["duration_ms"].as_u64().unwrap() >= 3000, "{publish_done}");

    let samples = metrics(&relay);
    let decisions = "rtmp_edge_hook_decisions_total";
    assert_eq!(metric(&samples, decisions, "action=publish,result=allow"), 1.0);
    assert_eq!(metric(&samples, decisions, "action=publish,result=deny"), 2.0);
    assert_eq!(metric(&samples, decisions, "action=play,result=allow"), 1.0);
    assert_eq!(metric(&samples, decisions, "action=play,result=deny"), 1.0);
    assert_eq!(metric(&samples, decisions, "action=connect,result=deny"), 1.0);
    assert_eq!(metric(&samples, decisions, "action=connect,result=allow"), 5.0);
    assert_eq!(metric(&samples, "rtmp_edge_access_denials_total", "action=publish,reason=hook_denied"), 2.0);
    assert_eq!(metric(&samples, "rtmp_edge_hook_notifications_total", "action=publish_done,result=sent"), 1.0);
    assert_eq!(metric(&samples, "rtmp_edge_hook_pending", ""), 0.0);

    // The shutdown ends the player; its play_done goes out before the relay is gone.
    shut_down_and_let_players_end(relay, &mut [(&mut player, &player_log)]);
    let play_done = hooks.wait_for_event("play_done", "ok");
    let mut with_page = DECISION_FIELDS.to_vec();
    with_page.push("page_url");
    assert_eq!(keys(&play_done), with_done_fields(&with_page));
    assert_eq!((&play_done["param"], &play_done["page_url"]), (&"?token=p1".into(), &"http://example.test/watch".into()));
    let bytes_out = play_done["bytes_out"].as_u64().unwrap();
    assert!(bytes_out > file_size, "play_done bytes_out {bytes_out}, the file has {file_size}");
    check_output(&fixture_packets(FIXTURE), &out, &player_log, 1.0, false, "allowed player");

    // Every request, as the hook server got it.
    let entries = hooks.entries();
    assert!(entries.iter().all(|e| e["path"] == "/rtmp-hook" && e["content_type"] == "application/json"), "{entries:#?}");
    let play = hooks.wait_for_event("play", "ok");
    assert_eq!(keys(&play), {
        let mut fields: Vec<String> = with_page.iter().map(|f| f.to_string()).collect();
        fields.sort();
        fields
    });
    assert_eq!((&play["app"], &play["ip"], &play["param"]), (&"live".into(), &"127.0.0.1".into(), &"?token=p1".into()));
    assert_eq!(play["tc_url"], format!("rtmp://{addr}/live"));
    assert_eq!(play["client_id"], play_done["client_id"]);
    let connect = hooks.wait_for("the denied connect", |body| body["action"] == "connect" && body["app"] == "denyapp");
    assert_eq!(keys(&connect), DECISION_FIELDS.map(String::from).to_vec());
    assert_eq!(connect["stream"], "");
    let server_ids: std::collections::HashSet<String> = hooks.requests().iter().map(|b| b["server_id"].to_string()).collect();
    assert_eq!(server_ids.len(), 1, "one relay, one server_id");
}

#[test]
fn a_hook_server_that_is_down_denies_with_fail_closed_and_allows_with_fail_open() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("hooks-down");
    // Held, never listening: connects to it are refused for the whole test.
    let down = common::ports::RefusedPort::new();
    let nobody = format!("http://{}/hook", down.addr());
    let closed = start_relay(access_config(with_hook(&nobody, 2000, AccessConfig::default())));
    let open = AccessConfig { hook_fail: HookFailPolicy::Open, ..AccessConfig::default() };
    let open = start_relay(access_config(with_hook(&nobody, 2000, open)));
    let (mut refused, refused_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &live_url(closed.local_addr(), "s"), &dir, "closed", &[]);
    let (mut allowed, allowed_log) =
        ffmpeg_publisher(&ffmpeg, FIXTURE, &live_url(open.local_addr(), "s"), &dir, "open", &["-t", "1"]);
    // With hook-fail closed the connect is the first request refused.
    expect_refused(&mut refused, &refused_log, "Access denied: the authorization hook is unavailable.");
    assert!(eventually(Duration::from_secs(10), || open.stats().publishers == 1), "{}", tail(&allowed_log));
    expect_finished(&mut allowed, &allowed_log, Duration::from_secs(10));
    let closed_samples = metrics(&closed);
    assert_eq!(metric(&closed_samples, "rtmp_edge_hook_decisions_total", "action=connect,result=error"), 1.0);
    assert_eq!(metric(&closed_samples, "rtmp_edge_access_denials_total", "action=connect,reason=hook_error"), 1.0);
    let open_samples = metrics(&open);
    assert_eq!(metric(&open_samples, "rtmp_edge_hook_decisions_total", "action=publish,result=error"), 1.0);
    assert_eq!(metric(&open_samples, "rtmp_edge_access_denials_total", "action=publish,reason=hook_error"), 0.0);
}

#[test]
fn a_hook_that_accepts_and_never_answers_costs_only_its_own_publishes() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("hooks-hang");
    let hooks = HookServer::start(&dir);
    let relay = start_relay(access_config(with_hook(&hooks.url(), 1500, AccessConfig::default())));
    let addr = relay.local_addr();
    let out = dir.join("play.flv");
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &live_url(addr, "ok"), &out, &dir, "player", &[]);
    wait_players(&relay, 1, "player");
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &live_url(addr, "ok"), &dir, "publisher", &[]);
    assert!(eventually(Duration::from_secs(10), || relay.stats().publishers == 1), "{}", tail(&publisher_log));
    // More hung publishes at once than a fixed pool of a few threads would have.
    let mut hung = Vec::new();
    for index in 0..6 {
        let label = format!("hang-{index}");
        hung.push(ffmpeg_publisher(&ffmpeg, FIXTURE, &live_url(addr, &label), &dir, &label, &[]));
    }
    hooks.wait_for("six hung publishes", |_| {
        hooks.requests().iter().filter(|b| b["action"] == "publish" && b["stream"].as_str().unwrap_or("").starts_with("hang")).count() == 6
    });
    for (child, log) in &mut hung {
        expect_refused(child, log, "Access denied: the authorization hook did not answer in time.");
    }
    assert_eq!(relay.stats().publishers, 1, "the stream being played kept its publisher");
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    let samples = metrics(&relay);
    assert_eq!(metric(&samples, "rtmp_edge_hook_decisions_total", "action=publish,result=timeout"), 6.0);
    assert_eq!(metric(&samples, "rtmp_edge_access_denials_total", "action=publish,reason=hook_timeout"), 6.0);
    assert_eq!(metric(&samples, "rtmp_edge_hook_pending", ""), 0.0);
    shut_down_and_let_players_end(relay, &mut [(&mut player, &player_log)]);
    // Every packet, in order, with the source's hashes.
    check_output(&fixture_packets(FIXTURE), &out, &player_log, 1.0, false, "player during the hung hooks");
}

#[test]
fn hostile_hook_answers_deny_or_fail_and_never_stall_the_relay() {
    let dir = TempDir::new("hooks-hostile");
    let hooks = HookServer::start(&dir);
    let relay = start_relay(access_config(with_hook(&hooks.url(), 1000, AccessConfig::default())));
    let cases = [
        ("garbage", Err("Access denied: hook answered 2xx with a body that is not empty, 0 or {\"code\":N}.")),
        ("huge", Err("Access denied: the authorization hook is unavailable.")),
        ("drip", Err("Access denied: the authorization hook did not answer in time.")),
        ("json0", Ok(())),
        ("slow", Ok(())),
    ];
    let threads: Vec<_> = cases
        .into_iter()
        .map(|(name, expected)| {
            let addr = relay.local_addr();
            std::thread::spawn(move || {
                let mut client = RtmpTestClient::connect(addr, "live").unwrap();
                let got = client.try_publish(name).unwrap().map(|_| ()).map_err(|status| status.description);
                assert_eq!(got, expected.map_err(String::from), "{name}");
                client
            })
        })
        .collect();
    let _clients: Vec<RtmpTestClient> = threads.into_iter().map(|thread| thread.join().unwrap()).collect();
    let samples = metrics(&relay);
    assert_eq!(metric(&samples, "rtmp_edge_access_denials_total", "action=publish,reason=hook_denied"), 1.0);
    assert_eq!(metric(&samples, "rtmp_edge_access_denials_total", "action=publish,reason=hook_error"), 1.0);
    assert_eq!(metric(&samples, "rtmp_edge_access_denials_total", "action=publish,reason=hook_timeout"), 1.0);
    assert_eq!(relay.stats().publishers, 2);
}

#[test]
fn a_flood_of_hung_publishes_from_one_address_cannot_starve_another() {
    let new_ffmpeg = new_ffmpeg();
    let dir = TempDir::new("hooks-flood");
    let hooks = HookServer::start(&dir);
    // 16 decisions at once in all, 4 from one address.
    let access = AccessConfig { hook_max_pending: 16, ..AccessConfig::default() };
    let relay = start_relay(access_config(with_hook(&hooks.url(), 5000, access)));
    let addr = relay.local_addr();
    let clients: Vec<RtmpTestClient> = (0..30).map(|_| RtmpTestClient::connect(addr, "live").unwrap()).collect();
    let flood: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(index, mut client)| {
            std::thread::spawn(move || client.try_publish(&format!("hang-{index}")).unwrap().map_err(|status| status.description))
        })
        .collect();
    let overloaded = "Access denied: too many requests are waiting for authorization; try again.";
    assert!(
        eventually(Duration::from_secs(10), || {
            let samples = metrics(&relay);
            metric(&samples, "rtmp_edge_access_denials_total", "action=publish,reason=hook_overloaded") == 26.0
                && metric(&samples, "rtmp_edge_hook_pending", "") == 4.0
        }),
        "26 refused at once and 4 waiting"
    );
    // Meanwhile a publisher from another address is decided, and publishes.
    let (stderr, log) = log_file(&dir, "other-address.log");
    let mut command = Command::new(&new_ffmpeg);
    command
        .args(["-nostdin", "-hide_banner", "-loglevel", "warning", "-re", "-i"])
        .arg(fixture(FIXTURE))
        .args(["-t", "1", "-c", "copy", "-local_addr", "127.0.0.3", "-f", "flv"])
        .arg(live_url(addr, "other"))
        .stdout(std::process::Stdio::null())
        .stderr(stderr);
    let mut other = ChildGuard::spawn(command, "publisher from 127.0.0.3");
    assert!(eventually(Duration::from_secs(10), || relay.stats().publishers == 1), "{}", tail(&log));
    // Decided while the flood still waits: no hung call held up its connect or publish.
    let samples = metrics(&relay);
    assert_eq!(metric(&samples, "rtmp_edge_hook_pending", ""), 4.0);
    assert_eq!(metric(&samples, "rtmp_edge_hook_decisions_total", "action=publish,result=timeout"), 0.0);
    let publish = hooks.wait_for_event("publish", "other");
    assert_eq!(publish["ip"], "127.0.0.3");
    expect_finished(&mut other, &log, Duration::from_secs(10));
    let results: Vec<Result<u32, String>> = flood.into_iter().map(|thread| thread.join().unwrap()).collect();
    let refused_at_once = results.iter().filter(|r| r.as_ref().err().map(String::as_str) == Some(overloaded)).count();
    let timed_out = results
        .iter()
        .filter(|r| r.as_ref().err().map(String::as_str) == Some("Access denied: the authorization hook did not answer in time."))
        .count();
    assert_eq!((refused_at_once, timed_out), (26, 4), "{results:?}");
}
