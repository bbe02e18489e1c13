//! IP rules with real ffmpeg clients: IPv4 loopback aliases (127.0.0.2, 127.0.0.3...) as
//! distinct clients through the newer ffmpeg's `-local_addr`, IPv6 on ::1, and rules that
//! change with a reload for the next requests.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::hooks::*;
use common::http;
use common::interop::*;
use common::*;
use rtmp_edge::relay::access::{AccessConfig, IpRules};
use rtmp_edge::relay::{config_file, spawn_with_reloader, Config};

const FIXTURE: &str = "h264_aac.flv";

const NOT_ALLOWED: &str = "Access denied: not allowed from this address.";

#[test]
fn ipv4_rules_tell_loopback_aliases_apart() {
    let dir = TempDir::new("ip-v4");
    let access = AccessConfig {
        publish_rules: IpRules::parse(&[(true, "127.0.0.2")]).unwrap(),
        play_rules: IpRules::parse(&[(false, "127.0.0.3"), (true, "127.0.0.0/8"), (false, "127.0.0.4")]).unwrap(),
        ..AccessConfig::default()
    };
    let relay = start_relay(access_config(access));
    let url = live_url(relay.local_addr(), "s");
    let out = dir.join("play.flv");
    // Allowed by 127.0.0.0/8 before the later deny of 127.0.0.4: the first match wins.
    let (mut player, player_log) = ffmpeg_from("127.0.0.4", &url, Some(&out), &dir, "player-4");
    wait_players(&relay, 1, "the player from 127.0.0.4");
    let (mut denied_player, denied_player_log) = ffmpeg_from("127.0.0.3", &url, Some(&dir.join("3.flv")), &dir, "player-3");
    let (mut denied_publisher, denied_publisher_log) = ffmpeg_from("127.0.0.1", &url, None, &dir, "publisher-1");
    expect_refused(&mut denied_player, &denied_player_log, NOT_ALLOWED);
    expect_refused(&mut denied_publisher, &denied_publisher_log, NOT_ALLOWED);
    let (mut publisher, publisher_log) = ffmpeg_from("127.0.0.2", &url, None, &dir, "publisher-2");
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    let samples = metrics(&relay);
    assert_eq!(metric(&samples, "rtmp_edge_access_denials_total", "action=publish,reason=ip_rule"), 1.0);
    assert_eq!(metric(&samples, "rtmp_edge_access_denials_total", "action=play,reason=ip_rule"), 1.0);
    shut_down_and_let_players_end(relay, &mut [(&mut player, &player_log)]);
    check_output(&fixture_packets(FIXTURE), &out, &player_log, 1.0, false, "player from 127.0.0.4");
}

#[test]
fn ipv6_rules_match_clients_on_ipv6() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("ip-v6");
    let access = AccessConfig {
        publish_rules: IpRules::parse(&[(true, "::1/128")]).unwrap(),
        // An allow rule that ::1 is not in: everyone else is denied.
        play_rules: IpRules::parse(&[(true, "2001:db8::/32"), (true, "127.0.0.1")]).unwrap(),
        ..AccessConfig::default()
    };
    let relay = start_relay(Config { listen: "[::1]:0".parse().unwrap(), ..access_config(access) });
    let url = format!("rtmp://[::1]:{}/live/s", relay.local_addr().port());
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &url, &dir.join("play.flv"), &dir, "player-v6", &[]);
    expect_refused(&mut player, &player_log, NOT_ALLOWED);
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &url, &dir, "publisher-v6", &["-t", "1"]);
    assert!(eventually(Duration::from_secs(10), || relay.stats().publishers == 1), "{}", tail(&publisher_log));
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(10));
}

#[test]
fn a_reload_changes_the_rules_for_new_requests_and_running_streams_go_on() {
    let dir = TempDir::new("ip-reload");
    let file = dir.join("rtmp-edge.toml");
    std::fs::write(&file, "").unwrap();
    let base = access_config(AccessConfig::default());
    let reloader = {
        let (file, base) = (file.clone(), base.clone());
        Box::new(move || config_file::load(&file, base.clone()).map(|(config, _)| config).map_err(|problems| problems.join("\n")))
    };
    let relay = spawn_with_reloader(base, Some(reloader)).unwrap();
    let api: SocketAddr = relay.http_addr().unwrap();
    let mut publisher = RtmpTestClient::connect(relay.local_addr(), "live").unwrap();
    publisher.publish("s").unwrap();

    std::fs::write(&file, "deny-publish = [\"127.0.0.0/8\"]\nallow-play = [\"10.0.0.0/8\"]\n").unwrap();
    assert_eq!(http::request(api, "POST", "/api/v1/reload", None).unwrap().status, 200);
    let mut refused = RtmpTestClient::connect(relay.local_addr(), "live").unwrap();
    let status = refused.try_publish("t").unwrap().unwrap_err();
    assert_eq!((status.code.as_str(), status.description.as_str()), ("NetStream.Publish.BadName", NOT_ALLOWED));
    let mut player = RtmpTestClient::connect(relay.local_addr(), "live").unwrap();
    player.request_play("s").unwrap();
    let answer = player
        .wait_for(EXCHANGE_TIMEOUT, |event| matches!(event, rtmp_edge::sessions::ClientSessionEvent::RequestRejected { .. }))
        .unwrap();
    assert!(format!("{answer:?}").contains("NetStream.Play.Failed"), "{answer:?}");
    publisher.send_items(&fixture_items(FIXTURE, 0)[..20], None).unwrap();
    assert_eq!(relay.stats().publishers, 1, "the running publish goes on");

    // A file with a bad rule is refused with its line; the rules in force stay.
    std::fs::write(&file, "\ndeny-publish = [\"127.0.0.1/8\"]\n").unwrap();
    let answer = http::request(api, "POST", "/api/v1/reload", None).unwrap();
    assert_eq!(answer.status, 422);
    assert!(answer.text().contains("line 2"), "{}", answer.text());
    let mut still_refused = RtmpTestClient::connect(relay.local_addr(), "live").unwrap();
    assert!(still_refused.try_publish("u").unwrap().is_err());
}
