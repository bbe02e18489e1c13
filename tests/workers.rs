//! `--workers N`: several single-threaded loops on one port (SO_REUSEPORT), in-process and
//! as the binary.
//!
//! The kernel picks the worker of each new connection, so the tests do not guess: they
//! connect players one at a time, see on which worker each landed (every worker's own
//! counters, `RelayHandle::worker_stats`, or the API's `worker` field), and go on until
//! every worker has one. With two workers, 32 tries all landing on one worker would happen
//! once in 2^31 runs.

mod common;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::http::{check_metrics_text, get, request, sample};
use common::interop::*;
use common::*;
use rtmp_edge::relay::{Config, RelayHandle, Workers};

const APP: &str = "live";
const FIXTURE: &str = "h264_aac.flv";
/// Players started before giving up on reaching every worker.
const MAX_TRIES: usize = 32;

fn two_workers(config: Config) -> RelayHandle {
    let relay = start_relay(Config { workers: Workers::Count(2), ..config });
    assert_eq!(relay.workers(), 2);
    relay
}

fn players_per_worker(relay: &RelayHandle) -> Vec<u64> {
    (0..relay.workers()).map(|worker| relay.worker_stats(worker).map_or(0, |stats| stats.players)).collect()
}

/// Starts players with `start` one at a time, each counted by `relay` before the next,
/// until every worker serves at least one. Returns them with the worker each landed on.
fn players_on_every_worker<P>(relay: &RelayHandle, mut start: impl FnMut(usize) -> P) -> Vec<(P, usize)> {
    let mut players = Vec::new();
    let mut before = players_per_worker(relay);
    while before.contains(&0) {
        assert!(players.len() < MAX_TRIES, "{MAX_TRIES} players and still a worker without one: {before:?}");
        let player = start(players.len());
        let total = players.len() as u64 + 1;
        assert!(
            eventually(Duration::from_secs(10), || players_per_worker(relay).iter().sum::<u64>() == total),
            "player {} was not counted: {:?}",
            players.len(),
            players_per_worker(relay)
        );
        let now = players_per_worker(relay);
        let landed = (0..now.len()).find(|&worker| now[worker] > before[worker]).expect("a worker counted it");
        players.push((player, landed));
        before = now;
    }
    players
}

/// The worker that has a publisher now (waits for one).
fn publisher_worker(relay: &RelayHandle) -> usize {
    let mut found = None;
    assert!(
        eventually(Duration::from_secs(10), || {
            found = (0..relay.workers()).find(|&w| relay.worker_stats(w).is_some_and(|stats| stats.publishers == 1));
            found.is_some()
        }),
        "no worker has the publisher"
    );
    found.unwrap_or_default()
}

#[test]
fn a_stream_published_on_one_worker_is_played_from_every_worker() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("workers-ffmpeg");
    let relay = two_workers(test_config());
    let source = live_url(relay.local_addr(), "s");
    let mut players = players_on_every_worker(&relay, |index| {
        let out = dir.join(&format!("player-{index}.flv"));
        let (child, log) = ffmpeg_player(&ffmpeg, &source, &out, &dir, &format!("ffmpeg-player-{index}"), &[]);
        (child, log, out)
    });
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, FIXTURE, &source, &dir, "ffmpeg-publisher", &[]);
    let publishing_on = publisher_worker(&relay);
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    let mut ending: Vec<(&mut ChildGuard, &std::path::Path)> =
        players.iter_mut().map(|((child, log, _), _)| (child, log.as_path())).collect();
    shut_down_and_let_players_end(relay, &mut ending);

    let input = fixture_packets(FIXTURE);
    assert!(players.iter().any(|(_, worker)| *worker != publishing_on), "a player on a worker without the publisher");
    for ((_, log, out), worker) in &players {
        let label = format!("{} (worker {worker}, publisher on worker {publishing_on})", out.display());
        let output = check_output(&input, out, log, 1.0, false, &label);
        let start = assert_contiguous_run(&input, &output, "video", 1, &label);
        assert_eq!(start, 0, "{label}: waiting from the start, it gets the first keyframe");
    }
}

#[test]
fn edge_workers_pull_once_each_from_the_origin() {
    let origin = start_relay(test_config());
    let edge = two_workers(edge_config(&[origin.local_addr()]));
    let mut players = players_on_every_worker(&edge, |index| {
        let player = PlayerThread::spawn(edge.local_addr(), APP, "s", PlayerStop { after_unpublish: 1, deadline: Duration::from_secs(30) }, &format!("edge-player-{index}"));
        player.wait_ready(EXCHANGE_TIMEOUT);
        player
    });
    // More players on each worker share its pull.
    for index in 0..4 {
        let label = format!("edge-player-more-{index}");
        let player = PlayerThread::spawn(edge.local_addr(), APP, "s", PlayerStop { after_unpublish: 1, deadline: Duration::from_secs(30) }, &label);
        player.wait_ready(EXCHANGE_TIMEOUT);
        players.push((player, usize::MAX));
    }
    // Counted at the origin: one play per edge worker, and each worker has one pull.
    wait_players(&origin, 2, "the edge workers' pulls");
    for worker in 0..2 {
        assert_eq!(edge.worker_stats(worker).map(|stats| stats.pulls), Some(1), "worker {worker}");
    }
    let published = fixture_items(FIXTURE, 0);
    let mut publisher = RtmpTestClient::connect(origin.local_addr(), APP).unwrap();
    publisher.publish("s").unwrap();
    publisher.send_items(&published, None).unwrap();
    for (player, _) in &players {
        assert!(
            player.wait_until(Duration::from_secs(10), |log| items_of(log).len() == published.len()),
            "{}: {}",
            player.label,
            summarize(&player.snapshot())
        );
    }
    publisher.stop().unwrap();
    assert_eq!(origin.stats().players, 2, "still one pull per worker, for {} players", players.len());
    for (player, _) in players {
        let label = player.label.clone();
        let log = player.join();
        assert_items_equal(&published, &items_of(&log), &label);
    }
    edge.shutdown().unwrap();
    origin.shutdown().unwrap();
}

#[test]
fn a_publisher_killed_on_one_worker_dries_every_workers_players_and_they_resume_with_the_next() {
    let relay = two_workers(test_config());
    let addr = relay.local_addr();
    let forever = PlayerStop { after_unpublish: 0, deadline: Duration::from_secs(60) };
    let players = players_on_every_worker(&relay, |index| {
        let player = PlayerThread::spawn(addr, APP, "s", forever, &format!("player-{index}"));
        player.wait_ready(EXCHANGE_TIMEOUT);
        player
    });
    let published = fixture_items(FIXTURE, 0);
    // Publishers come and go (each killed: the connection just drops) until one has
    // landed on each worker.
    let mut publishers_on = Vec::new();
    while publishers_on.len() < 2 || !(publishers_on.contains(&0) && publishers_on.contains(&1)) {
        assert!(publishers_on.len() < 16, "publishers all landed on one worker: {publishers_on:?}");
        let round = publishers_on.len() + 1;
        let mut publisher = RtmpTestClient::connect(addr, APP).unwrap();
        publisher.publish("s").unwrap();
        publishers_on.push(publisher_worker(&relay));
        // Players on the other worker are live once its pull plays (StreamBegin); a
        // publisher sending faster than real time would otherwise be ahead of them by
        // more than the GOP cache holds.
        for (player, worker) in &players {
            let live = |log: &[Received]| log.iter().filter(|r| **r == Received::StreamBegin).count() == round;
            assert!(player.wait_until(Duration::from_secs(10), live), "{} (worker {worker}): no StreamBegin", player.label);
        }
        publisher.send_items(&published, None).unwrap();
        for (player, worker) in &players {
            assert!(
                player.wait_until(Duration::from_secs(10), |log| items_of(log).len() == round * published.len()),
                "{} (worker {worker}), round {round}: {}",
                player.label,
                summarize(&player.snapshot())
            );
        }
        drop(publisher);
        for (player, worker) in &players {
            let dry = |log: &[Received]| log.iter().filter(|r| **r == Received::StreamDry).count() == round;
            assert!(
                player.wait_until(Duration::from_secs(10), dry),
                "{} (worker {worker}): no StreamDry after publisher {round} (worker {}) left: {}",
                player.label,
                publishers_on[round - 1],
                summarize(&player.snapshot())
            );
        }
        assert!(eventually(Duration::from_secs(10), || relay.stats().publishers == 0));
    }
    relay.shutdown().unwrap();
    let rounds = publishers_on.len();
    for (player, worker) in players {
        let label = format!("{} (worker {worker}, publishers on {publishers_on:?})", player.label);
        let log = player.join();
        let markers: Vec<&Received> =
            log.iter().filter(|r| matches!(r, Received::StreamBegin | Received::StreamDry | Received::Closed)).collect();
        let mut expected: Vec<&Received> = [&Received::StreamBegin, &Received::StreamDry].repeat(rounds);
        expected.push(&Received::Closed);
        assert_eq!(markers, expected, "{label}: {}", summarize(&log));
        assert!(!statuses_of(&log).iter().any(|code| code.contains("Unpublish")), "{label}: {:?}", statuses_of(&log));
        // Every round from the start: its first publisher's items exactly, then the same
        // payloads again each round, timestamps still increasing.
        let items = items_of(&log);
        assert_items_equal(&published, &items[..published.len()], &format!("{label} round 1"));
        for round in 1..rounds {
            let got = &items[round * published.len()..(round + 1) * published.len()];
            let bodies = |items: &[Item]| items.iter().map(|item| item.with_timestamp(0)).collect::<Vec<_>>();
            assert!(bodies(got) == bodies(&published), "{label}: round {} payloads differ", round + 1);
            assert!(got[0].timestamp() > items[round * published.len() - 1].timestamp(), "{label}: time went back");
        }
    }
}

#[test]
fn the_api_counts_every_worker_and_kicks_and_reloads_reach_them() {
    let config = Config { http_listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))), ..test_config() };
    let reloaded = Config { max_connections_per_ip: 0, ..config.clone() };
    let reloader: rtmp_edge::relay::Reloader = Box::new(move || Ok(Config { workers: Workers::Count(2), ..reloaded.clone() }));
    let relay = rtmp_edge::relay::spawn_with_reloader(Config { workers: Workers::Count(2), ..config }, Some(reloader)).unwrap();
    let api = relay.http_addr().unwrap();
    let addr = relay.local_addr();
    let forever = PlayerStop { after_unpublish: 0, deadline: Duration::from_secs(30) };
    let players = players_on_every_worker(&relay, |index| {
        let player = PlayerThread::spawn(addr, APP, "s", forever, &format!("player-{index}"));
        player.wait_ready(EXCHANGE_TIMEOUT);
        player
    });
    let mut publisher = RtmpTestClient::connect(addr, APP).unwrap();
    publisher.publish("s").unwrap();
    let publishing_on = publisher_worker(&relay);
    let viewers = players.len() as u64;
    // The other worker pulls once from the publisher's.
    assert!(eventually(Duration::from_secs(10), || {
        let clients = get(api, "/api/v1/clients", None).json();
        clients.as_array().is_some_and(|all| all.iter().filter(|c| c["role"] == "sibling").count() == 1)
    }));

    let clients = get(api, "/api/v1/clients", None).json();
    let clients = clients.as_array().unwrap();
    let by_role = |role: &str| clients.iter().filter(|c| c["role"] == role).collect::<Vec<_>>();
    assert_eq!(by_role("player").len() as u64, viewers);
    assert_eq!(by_role("publisher")[0]["worker"], publishing_on);
    assert_eq!(by_role("sibling")[0]["worker"], publishing_on, "the publisher's worker serves the pull");
    assert_eq!(by_role("sibling_pull")[0]["worker"], 1 - publishing_on);
    let mut ids: Vec<u64> = clients.iter().map(|c| c["client_id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), clients.len(), "client ids are unique across workers");
    for (player, worker) in &players {
        let on_worker = by_role("player").iter().filter(|c| c["worker"] == *worker).count();
        assert!(on_worker > 0, "{} on worker {worker}", player.label);
    }

    let streams = get(api, "/api/v1/streams", None).json();
    assert_eq!(streams.as_array().map(Vec::len), Some(1), "{streams}");
    assert_eq!((streams[0]["players"].as_u64(), streams[0]["sibling_pulls"].as_u64()), (Some(viewers), Some(1)));
    assert!(streams[0]["publisher"].is_object());
    let summary = get(api, "/api/v1/summary", None).json();
    assert_eq!((summary["players"].as_u64(), summary["publishers"].as_u64()), (Some(viewers), Some(1)));
    assert_eq!((summary["streams"].as_u64(), summary["workers"].as_u64()), (Some(1), Some(2)));
    let metrics = check_metrics_text(&get(api, "/metrics", None).text());
    assert_eq!(sample(&metrics, "rtmp_edge_players{}"), Some(viewers as f64));
    assert_eq!(sample(&metrics, "rtmp_edge_stream_players{app=live,stream=s}"), Some(viewers as f64));
    assert_eq!(sample(&metrics, "rtmp_edge_connections{role=sibling}"), Some(1.0));
    assert_eq!(sample(&metrics, "rtmp_edge_connections{role=sibling_pull}"), Some(1.0));
    assert_eq!(relay.stats().players, viewers);

    // A kick through worker 0's HTTP reaches a player on worker 1.
    let target = by_role("player").into_iter().find(|c| c["worker"] == 1).expect("a player on worker 1");
    let id = target["client_id"].as_u64().unwrap();
    let kicked = request(api, "DELETE", &format!("/api/v1/clients/{id}"), None).unwrap();
    assert_eq!((kicked.status, kicked.json()["role"].as_str()), (200, Some("player")));
    assert!(eventually(Duration::from_secs(10), || relay.stats().players == viewers - 1));
    assert_eq!(request(api, "DELETE", &format!("/api/v1/clients/{id}"), None).unwrap().status, 404);

    // A reload reaches both workers: with no connection allowed per address, each refuses.
    let reload = request(api, "POST", "/api/v1/reload", None).unwrap();
    assert_eq!(reload.status, 200, "{}", reload.text());
    let refused = |worker: usize| relay.worker_stats(worker).map_or(0, |stats| stats.connections_refused);
    for _ in 0..MAX_TRIES {
        if refused(0) > 0 && refused(1) > 0 {
            break;
        }
        let mut socket = TcpStream::connect(addr).unwrap();
        assert!(socket_closed_within(&mut socket, Duration::from_secs(10)), "a refused connection is closed");
    }
    assert!(refused(0) > 0 && refused(1) > 0, "refusals per worker: {} and {}", refused(0), refused(1));
    drop(publisher);
    relay.shutdown().unwrap();
    drop(players);
}

#[test]
fn the_binary_runs_workers_caps_the_backlog_and_stops_them_all_on_sigterm() {
    let binary = env!("CARGO_BIN_EXE_rtmp-edge");
    let dir = TempDir::new("workers-binary");
    let listen = own_loopback_addr();
    let (stderr, log) = log_file(&dir, "rtmp-edge.log");
    let mut command = Command::new(binary);
    command
        .args(["--listen", &listen.to_string(), "--workers", "2", "--listen-backlog", "65535"])
        .stdout(Stdio::null())
        .stderr(stderr);
    let mut relay = ChildGuard::spawn(command, "rtmp-edge --workers 2");
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(eventually(Duration::from_secs(10), || text().contains("2 workers, one thread each")), "{}", tail(&log));
    let expected = if somaxconn < 65_535 {
        format!("listen backlog {somaxconn}: --listen-backlog 65535 is capped by net.core.somaxconn")
    } else {
        "listen backlog 65535".to_string()
    };
    assert!(text().contains(&expected), "{expected:?} not in:\n{}", tail(&log));
    // A player and a publisher, wherever they land, then SIGTERM: every worker shuts down.
    let published = fixture_items(FIXTURE, 0);
    let player = PlayerThread::spawn(listen, APP, "s", PlayerStop { after_unpublish: 0, deadline: Duration::from_secs(30) }, "player");
    player.wait_ready(EXCHANGE_TIMEOUT);
    let mut publisher = RtmpTestClient::connect(listen, APP).unwrap();
    publisher.publish("s").unwrap();
    // Live on the player's worker (at once, or when its pull from the other one plays).
    assert!(player.wait_until(Duration::from_secs(10), |log| log.contains(&Received::StreamBegin)));
    publisher.send_items(&published, None).unwrap();
    assert!(player.wait_until(Duration::from_secs(10), |log| items_of(log).len() == published.len()));
    let _ = Command::new("kill").args(["-TERM", &relay.id().to_string()]).status();
    let status = relay.wait_timeout(Duration::from_secs(10)).expect("rtmp-edge exits after SIGTERM");
    assert!(status.success(), "{status}: {}", tail(&log));
    assert_eq!(text().matches("shutdown complete").count(), 2, "both workers finished:\n{}", tail(&log));
    assert_items_equal(&published, &items_of(&player.join()), "player");
}

#[test]
fn auto_starts_one_worker_per_core_and_the_count_is_bounded() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let relay = start_relay(Config { workers: Workers::Auto, listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() });
    assert_eq!(relay.workers(), cores.min(rtmp_edge::relay::MAX_WORKERS));
    relay.shutdown().unwrap();
    assert_eq!("auto".parse::<Workers>(), Ok(Workers::Auto));
    assert_eq!("3".parse::<Workers>(), Ok(Workers::Count(3)));
    for refused in ["0", "65", "-1", "two", ""] {
        assert!(refused.parse::<Workers>().is_err(), "{refused:?} is not a worker count");
    }
}

// A backlog of many turns' worth of connections (the loop accepts 128 a turn from one
// listener, so that players are fed in a storm) is taken up in full: the listener is
// edge-triggered and sends no new event for what it already holds. The relay is stopped
// while they connect, so all of them wait in the backlog at once.
#[test]
fn a_backlog_of_many_turns_is_accepted_in_full_and_every_handshake_answered() {
    use std::io::{Read, Write};
    let binary = env!("CARGO_BIN_EXE_rtmp-edge");
    let dir = TempDir::new("backlog-turns");
    let listen = own_loopback_addr();
    let (stderr, log) = log_file(&dir, "rtmp-edge.log");
    let mut command = Command::new(binary);
    command.args(["--listen", &listen.to_string()]).stdout(Stdio::null()).stderr(stderr);
    let relay = ChildGuard::spawn(command, "rtmp-edge");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(eventually(Duration::from_secs(10), || text().contains("listening on")), "{}", tail(&log));
    let pid = relay.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let mut hello = vec![3u8];
    hello.extend([0u8; 1536]);
    let clients: Vec<TcpStream> = (0..600)
        .map(|_| {
            let mut client = TcpStream::connect(listen).unwrap();
            client.write_all(&hello).unwrap();
            client
        })
        .collect();
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    for (index, mut client) in clients.into_iter().enumerate() {
        // Not a timing assertion: a connection stranded in the backlog fails, not hangs.
        client.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut answer = [0u8; 3073];
        let read = client.read_exact(&mut answer);
        assert!(read.is_ok(), "connection {index}: {read:?}\n{}", tail(&log));
        assert_eq!(answer[0], 3, "connection {index}: S0");
    }
    drop(relay);
}
