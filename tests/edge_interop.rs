//! Edge mode with real programs on loopback: nginx-rtmp (the Debian module) as origin and
//! as push target, ffmpeg as publisher and players. Content is checked by packet hashes:
//! every player's packets must be a contiguous run of the published file's (MD5 and size per
//! packet, via ffprobe), starting at a keyframe, with increasing timestamps.
//!
//! A missing program fails the test with its name; nothing is skipped silently.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rtmp_edge::relay::{Config, RelayHandle, RtmpUrl};

const FIXTURE: &str = "h264_aac.flv";

// ---------------------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------------------

/// An nginx-rtmp server with `application live { live on; }` on an ephemeral port and its
/// stat page (`rtmp_stat all`) on another; killed on drop.
struct Nginx {
    child: ChildGuard,
    rtmp_port: u16,
    http_port: u16,
    dir: TempDir,
}

impl Nginx {
    fn start(label: &str) -> Nginx {
        Self::start_on(label, free_port())
    }

    fn start_on(label: &str, rtmp_port: u16) -> Nginx {
        let nginx = require_program("nginx");
        let module = Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so");
        assert!(module.is_file(), "nginx rtmp module missing at {}", module.display());
        let dir = TempDir::new(label);
        let http_port = free_port();
        let d = dir.0.display();
        let conf = format!(
            "load_module {module};\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             error_log {d}/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{\n  server {{\n    listen 127.0.0.1:{rtmp_port};\n    chunk_size 4096;\n\
                 application live {{\n      live on;\n    }}\n  }}\n}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 127.0.0.1:{http_port};\n    location /stat {{ rtmp_stat all; }}\n  }}\n}}\n",
            module = module.display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let (stderr, log) = log_file(&dir, "nginx.stderr");
        let mut command = Command::new(nginx);
        command
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(stderr);
        let mut child = ChildGuard::spawn(command, label);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", rtmp_port)).is_err() {
            assert!(
                child.wait_timeout(Duration::from_millis(20)).is_none(),
                "nginx exited:\n{}",
                tail(&log)
            );
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {rtmp_port}:\n{}",
                tail(&log)
            );
        }
        Nginx {
            child,
            rtmp_port,
            http_port,
            dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.rtmp_port))
    }

    fn url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.rtmp_port)
    }

    /// The stat page XML (HTTP/1.0 GET over a plain socket).
    fn stat(&self) -> String {
        let mut socket = TcpStream::connect(("127.0.0.1", self.http_port)).expect("connect to nginx stat");
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        socket
            .write_all(b"GET /stat HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        let _ = socket.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.1 200"), "stat page: {response}");
        response
    }

    /// The `<stream>` element of `name` in the stat page, if nginx has it.
    fn stream_stat(&self, name: &str) -> Option<String> {
        let stat = self.stat();
        stat.split("<stream>")
            .skip(1)
            .find(|s| s.contains(&format!("<name>{name}</name>")))
            .map(|s| s.split("</stream>").next().unwrap_or(s).to_string())
    }

    /// `<client>` entries of stream `name`: (publishing?, address) each.
    fn stream_clients(&self, name: &str) -> Vec<(bool, String)> {
        let Some(stream) = self.stream_stat(name) else {
            return Vec::new();
        };
        stream
            .split("<client>")
            .skip(1)
            .map(|c| {
                let c = c.split("</client>").next().unwrap_or(c);
                let address = c
                    .split("<address>")
                    .nth(1)
                    .and_then(|a| a.split("</address>").next())
                    .unwrap_or("")
                    .to_string();
                (c.contains("<publishing/>"), address)
            })
            .collect()
    }

    fn error_log(&self) -> String {
        tail(&self.dir.join("error.log"))
    }
}

fn ffmpeg_player(ffmpeg: &Path, source: &str, out: &Path, dir: &TempDir, label: &str) -> (ChildGuard, PathBuf) {
    let (stderr, log) = log_file(dir, &format!("{label}.log"));
    let mut command = Command::new(ffmpeg);
    command
        .args(["-nostdin", "-hide_banner", "-loglevel", "warning"])
        .args(["-i", source, "-c", "copy", "-f", "flv", "-y"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(stderr);
    (ChildGuard::spawn(command, label), log)
}

fn ffmpeg_publisher(ffmpeg: &Path, target: &str, dir: &TempDir, label: &str, loops: u32) -> (ChildGuard, PathBuf) {
    let (stderr, log) = log_file(dir, &format!("{label}.log"));
    let mut command = Command::new(ffmpeg);
    command
        .args(["-nostdin", "-hide_banner", "-loglevel", "warning", "-re"])
        .args(["-stream_loop", &loops.to_string()])
        .arg("-i")
        .arg(fixture(FIXTURE))
        .args(["-c", "copy", "-f", "flv", target])
        .stdout(Stdio::null())
        .stderr(stderr);
    (ChildGuard::spawn(command, label), log)
}

fn expect_finished(child: &mut ChildGuard, log: &Path, timeout: Duration) {
    match child.wait_timeout(timeout) {
        Some(status) => assert!(status.success(), "{} failed ({status}):\n{}", child.label, tail(log)),
        None => panic!("{} did not finish within {timeout:?}:\n{}", child.label, tail(log)),
    }
}

/// Lets a player end by itself or stops it with SIGINT; true if it had to be interrupted.
///
/// An ffmpeg blocked in an RTMP read does not always act on SIGINT; SIGTERM follows, and
/// only then SIGKILL (which would lose what it buffered).
fn stop_player(child: &mut ChildGuard, timeout: Duration) -> bool {
    if child.wait_timeout(timeout).is_some() {
        return false;
    }
    child.interrupt();
    if child.wait_timeout(Duration::from_secs(3)).is_some() {
        return true;
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    if child.wait_timeout(Duration::from_secs(3)).is_none() {
        eprintln!("{}: still running after SIGINT and SIGTERM; killed", child.label);
        child.kill();
    }
    true
}

/// The fixture's packets repeated `times` (for `-stream_loop`).
fn repeated(input: &HashMap<String, Vec<Packet>>, times: usize) -> HashMap<String, Vec<Packet>> {
    input
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().cloned().cycle().take(v.len() * times).collect()))
        .collect()
}

/// A player's file: video and audio are contiguous runs of `input` (at least `min_fraction`
/// of it), video starting at a keyframe, dts increasing. A player stopped by SIGINT may have
/// written its last packet truncated, so that one is left out.
fn check_output(
    input: &HashMap<String, Vec<Packet>>,
    out: &Path,
    log: &Path,
    min_fraction: f64,
    interrupted: bool,
    label: &str,
) -> HashMap<String, Vec<Packet>> {
    assert!(
        out.is_file() && std::fs::metadata(out).map(|m| m.len()).unwrap_or(0) > 0,
        "{label}: no output file {}; log:\n{}",
        out.display(),
        tail(log)
    );
    let mut output = probe_packets(out);
    if interrupted {
        for packets in output.values_mut() {
            packets.pop();
        }
    }
    for codec_type in ["video", "audio"] {
        let total = input.get(codec_type).map(Vec::len).unwrap_or(0);
        let min = ((total as f64) * min_fraction).ceil() as usize;
        assert_contiguous_run(input, &output, codec_type, min.max(1), &format!("{label} {codec_type}"));
        assert_dts_increasing(&output[codec_type], &format!("{label} {codec_type}"));
    }
    output
}

fn assert_dts_increasing(packets: &[Packet], label: &str) {
    for pair in packets.windows(2) {
        let (a, b) = (pair[0].dts.unwrap_or(i64::MIN), pair[1].dts.unwrap_or(i64::MIN));
        assert!(b >= a, "{label}: dts went back from {a} to {b}");
    }
}

fn edge(origins: &[SocketAddr]) -> RelayHandle {
    start_relay(Config {
        origins: origins.iter().map(SocketAddr::to_string).collect(),
        pull_linger: Duration::from_millis(500),
        upstream_timeout: Duration::from_secs(2),
        ..test_config()
    })
}

fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn three_ffmpeg_players_through_the_edge_share_one_nginx_upstream() {
    let ffmpeg = require_program("ffmpeg");
    let nginx = Nginx::start("edge-nginx-origin");
    let dir = TempDir::new("edge-nginx-origin-out");
    let edge = edge(&[nginx.addr()]);
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, &nginx.url("s"), &dir, "publisher", 1);
    assert!(
        wait_until(Duration::from_secs(5), || nginx
            .stream_clients("s")
            .iter()
            .any(|(p, _)| *p)),
        "nginx never showed the publisher; {}",
        tail(&publisher_log)
    );
    let source = format!("rtmp://{}/live/s", edge.local_addr());
    let mut players: Vec<(ChildGuard, PathBuf, PathBuf)> = (0..3)
        .map(|i| {
            let out = dir.join(&format!("player-{i}.flv"));
            let (child, log) = ffmpeg_player(&ffmpeg, &source, &out, &dir, &format!("player-{i}"));
            (child, out, log)
        })
        .collect();
    // Let all three be playing, then look at nginx.
    std::thread::sleep(Duration::from_secs(3));
    let clients = nginx.stream_clients("s");
    let edge_port = edge.local_addr().port();
    let players_at_nginx: Vec<&(bool, String)> = clients.iter().filter(|(publishing, _)| !publishing).collect();
    let stat = nginx.stream_stat("s").unwrap_or_default();
    assert_eq!(
        players_at_nginx.len(),
        1,
        "nginx should see exactly one upstream connection from the edge (port {edge_port}) for three players: {clients:?}\n{stat}"
    );
    assert!(
        stat.contains("<nclients>2</nclients>"),
        "nginx nclients should be 2 (publisher + edge): {stat}"
    );
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    let input = repeated(&fixture_packets(FIXTURE), 2);
    for (i, (child, out, log)) in players.iter_mut().enumerate() {
        let interrupted = stop_player(child, Duration::from_secs(4));
        let result =
            std::panic::catch_unwind(|| check_output(&input, out, log, 0.4, interrupted, &format!("player {i}")));
        if let Err(panic) = result {
            eprintln!("nginx error.log:\n{}", nginx.error_log());
            std::panic::resume_unwind(panic);
        }
    }
}

/// ffmpeg publishes to our edge; the edge (with `config`) republishes to nginx, from which
/// ffmpeg plays. The player must get the stream in full.
fn publish_through_edge_played_from_nginx(label: &str, config: impl FnOnce(&Nginx) -> Config) {
    let ffmpeg = require_program("ffmpeg");
    let nginx = Nginx::start(label);
    let dir = TempDir::new(&format!("{label}-out"));
    let edge = start_relay(config(&nginx));
    let out = dir.join("from-nginx.flv");
    // The player joins once the stream is live at nginx: an ffmpeg player that waits at
    // nginx for a stream to start and gets only 4 s of it never finishes probing and writes
    // nothing, even when the publisher talks to nginx directly (checked by hand).
    let (mut publisher, publisher_log) = ffmpeg_publisher(
        &ffmpeg,
        &format!("rtmp://{}/live/s", edge.local_addr()),
        &dir,
        "publisher-to-edge",
        1,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (mut player, player_log) = ffmpeg_player(&ffmpeg, &nginx.url("s"), &out, &dir, "player-at-nginx");
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    let interrupted = stop_player(&mut player, Duration::from_secs(6));
    let input = repeated(&fixture_packets(FIXTURE), 2);
    let result = std::panic::catch_unwind(|| check_output(&input, &out, &player_log, 0.3, interrupted, label));
    if let Err(panic) = result {
        eprintln!("nginx error.log:\n{}", nginx.error_log());
        std::panic::resume_unwind(panic);
    }
    assert_eq!(edge.stats().protocol_errors, 0, "{:?}", edge.stats());
}

#[test]
fn ffmpeg_publishes_to_the_edge_forwarded_to_nginx_and_played_there() {
    publish_through_edge_played_from_nginx("edge-forward-nginx", |nginx| Config {
        origins: vec![nginx.addr().to_string()],
        upstream_timeout: Duration::from_secs(2),
        ..test_config()
    });
}

#[test]
fn push_to_a_dead_target_and_nginx_nginx_gets_the_full_stream() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    publish_through_edge_played_from_nginx("edge-push-nginx", |nginx| Config {
        push: vec![
            RtmpUrl::parse(&format!("rtmp://{dead}/live")).unwrap(),
            RtmpUrl::parse(&format!("rtmp://{}/live", nginx.addr())).unwrap(),
        ],
        ..test_config()
    });
}

#[test]
fn chain_origin_edge_edge_ffmpeg_player() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("edge-chain");
    let origin = start_relay(test_config());
    let edge1 = edge(&[origin.local_addr()]);
    let edge2 = edge(&[edge1.local_addr()]);
    let (mut publisher, publisher_log) = ffmpeg_publisher(
        &ffmpeg,
        &format!("rtmp://{}/live/s", origin.local_addr()),
        &dir,
        "publisher",
        1,
    );
    std::thread::sleep(Duration::from_millis(1000));
    let out = dir.join("end-of-chain.flv");
    let (mut player, player_log) = ffmpeg_player(
        &ffmpeg,
        &format!("rtmp://{}/live/s", edge2.local_addr()),
        &out,
        &dir,
        "player",
    );
    expect_finished(&mut publisher, &publisher_log, Duration::from_secs(20));
    let interrupted = stop_player(&mut player, Duration::from_secs(5));
    check_output(
        &repeated(&fixture_packets(FIXTURE), 2),
        &out,
        &player_log,
        0.4,
        interrupted,
        "ffmpeg at the end of origin -> edge -> edge",
    );
    assert_eq!(origin.stats().connections_accepted, 2, "{:?}", origin.stats());
    assert_eq!(edge1.stats().connections_accepted, 1, "{:?}", edge1.stats());
}

#[test]
fn nginx_origin_killed_and_restarted_players_resume() {
    let ffmpeg = require_program("ffmpeg");
    let dir = TempDir::new("edge-nginx-restart");
    let mut nginx = Nginx::start("edge-nginx-restart-1");
    let port = nginx.rtmp_port;
    let edge = edge(&[nginx.addr()]);
    let (mut publisher, publisher_log) = ffmpeg_publisher(&ffmpeg, &nginx.url("s"), &dir, "publisher-1", 1);
    std::thread::sleep(Duration::from_millis(1000));
    let out = dir.join("player.flv");
    let (mut player, player_log) = ffmpeg_player(
        &ffmpeg,
        &format!("rtmp://{}/live/s", edge.local_addr()),
        &out,
        &dir,
        "player",
    );
    std::thread::sleep(Duration::from_secs(3));
    // SIGKILL: no UnpublishNotify, the pull's TCP connection just dies.
    nginx.child.kill();
    publisher.kill();
    let _ = publisher_log;
    std::thread::sleep(Duration::from_millis(500));
    let nginx2 = Nginx::start_on("edge-nginx-restart-2", port);
    let (mut publisher2, publisher2_log) = ffmpeg_publisher(&ffmpeg, &nginx2.url("s"), &dir, "publisher-2", 1);
    expect_finished(&mut publisher2, &publisher2_log, Duration::from_secs(20));
    let interrupted = stop_player(&mut player, Duration::from_secs(4));
    assert!(
        interrupted || player.wait_timeout(Duration::ZERO).is_some_and(|s| s.success()),
        "player failed:\n{}",
        tail(&player_log)
    );
    let mut output = probe_packets(&out);
    if interrupted {
        for packets in output.values_mut() {
            packets.pop();
        }
    }
    // The file is two runs: some of the first publish, then a run of the second one
    // starting at a keyframe, with dts increasing across the cut.
    let input = repeated(&fixture_packets(FIXTURE), 2);
    for codec_type in ["video", "audio"] {
        let got = &output[codec_type];
        let source = &input[codec_type];
        assert_dts_increasing(got, &format!("{codec_type} across the restart"));
        let same = |a: &Packet, b: &Packet| a.hash == b.hash && a.size == b.size;
        let first_len = (0..source.len())
            .filter(|&s| same(&got[0], &source[s]))
            .map(|s| got.iter().zip(&source[s..]).take_while(|(g, i)| same(g, i)).count())
            .max()
            .unwrap_or(0);
        assert!(first_len > 0, "{codec_type}: first packet is not from the input");
        let second: HashMap<String, Vec<Packet>> = [(codec_type.to_string(), got[first_len..].to_vec())]
            .into_iter()
            .collect();
        let second_total = source.len();
        assert!(
            second[codec_type].len() >= second_total / 3,
            "{codec_type}: only {} packets after the restart ({} before): the player did not resume\n{}",
            second[codec_type].len(),
            first_len,
            tail(&player_log)
        );
        assert_contiguous_run(
            &input,
            &second,
            codec_type,
            1,
            &format!("{codec_type} after the restart"),
        );
    }
}
