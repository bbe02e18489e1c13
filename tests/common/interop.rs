//! Driving real programs against the relay: ffmpeg publishers and players, an nginx-rtmp
//! server, and the content checks on what a player wrote (ffprobe packet hashes).
//!
//! Shared by the interop test binaries so that every one of them stops players, waits for
//! publishers and judges output files the same way.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rtmp_edge::relay::RelayHandle;
use rtmp_edge::sessions::MediaKind;

use super::{
    assert_contiguous_run, fixture, log_file, new_ffmpeg, Item, own_loopback_addr, probe_packets, require_program, tail, ChildGuard, Packet,
    TempDir,
};

/// `rtmp://ADDR/live/NAME`.
pub fn live_url(addr: SocketAddr, name: &str) -> String {
    format!("rtmp://{addr}/live/{name}")
}

/// `ffmpeg -i URL -c copy -f flv OUT`, with `extra` input options (e.g. -copyts) before -i.
pub fn ffmpeg_player(
    ffmpeg: &Path,
    source: &str,
    out: &Path,
    dir: &TempDir,
    label: &str,
    extra: &[&str],
) -> (ChildGuard, PathBuf) {
    let (stderr, log) = log_file(dir, &format!("{label}.log"));
    let mut command = Command::new(ffmpeg);
    command
        .args(["-nostdin", "-hide_banner", "-loglevel", "warning"])
        .args(extra)
        .args(["-i", source, "-c", "copy", "-f", "flv", "-y"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(stderr);
    (ChildGuard::spawn(command, label), log)
}

/// `rtmpdump -r URL --live -o OUT`: librtmp's player, which writes the FLV tags as they
/// arrived (no muxer in between), so its file can be read tag by tag.
pub fn rtmpdump_player(source: &str, out: &Path, dir: &TempDir, label: &str) -> (ChildGuard, PathBuf) {
    let (stderr, log) = log_file(dir, &format!("{label}.log"));
    let mut command = Command::new(require_program("rtmpdump"));
    command
        .args(["-r", source, "--live", "-o"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(stderr);
    (ChildGuard::spawn(command, label), log)
}

/// `gst-launch-1.0 -e rtmp2src location=URL ! filesink location=OUT buffer-mode=unbuffered`:
/// GStreamer's player, whose source element emits the stream as FLV; the file holds its
/// tags unchanged, each written as it arrives (see [`wait_for_flv_tags`]).
pub fn gst_player(source: &str, out: &Path, dir: &TempDir, label: &str) -> (ChildGuard, PathBuf) {
    let (stderr, log) = log_file(dir, &format!("{label}.log"));
    let mut command = Command::new(require_program("gst-launch-1.0"));
    command
        .args(["-e", "rtmp2src", &format!("location={source}"), "!", "filesink", "buffer-mode=unbuffered"])
        .arg(format!("location={}", out.display()))
        .stdout(Stdio::null())
        .stderr(stderr);
    (ChildGuard::spawn(command, label), log)
}

/// Waits up to 10 s until the FLV file a player is writing holds `count` whole tags; true if
/// it does. rtmp2src hands each message from its connection thread to its streaming thread
/// through one slot, and StreamEOF (which the relay's shutdown sends after
/// `NetStream.Play.Stop`) stops both at once: a message still in the slot is lost. A test
/// that wants every tag in the file waits for them before shutting the relay down.
pub fn wait_for_flv_tags(path: &Path, count: usize) -> bool {
    let whole_tags = || {
        let Ok(file) = std::fs::read(path) else { return 0 };
        match rtmp_edge::flv::FlvReader::new(bytes::Bytes::from(file)) {
            Ok(reader) => reader.take_while(Result::is_ok).count(),
            Err(_) => 0,
        }
    };
    super::eventually_every(Duration::from_millis(20), Duration::from_secs(10), || whole_tags() >= count)
}

/// What rtmpdump and rtmp2src write of `published`: both drop video messages of 5 bytes or
/// fewer (librtmp: "ignoring too small video packet", rtmp2src: "Ignoring too small video
/// message (5 < 6)"), which leaves out the fixture's 5-byte AVC end-of-sequence tag.
pub fn kept_by_librtmp_and_rtmp2src(published: &[Item]) -> Vec<Item> {
    published
        .iter()
        .filter(|item| !matches!(item, Item::Media { kind: MediaKind::Video, data, .. } if data.len() <= 5))
        .cloned()
        .collect()
}

/// rtmp2src writes the relay's `|RtmpSampleAccess` data message (sent at play) as the
/// file's first script tag; it is not the stream's metadata.
pub fn without_sample_access(mut items: Vec<Item>, label: &str) -> Vec<Item> {
    let is_sample_access = |item: &Item| {
        matches!(item, Item::Metadata { raw, .. } if raw.windows(17).any(|w| w == b"|RtmpSampleAccess"))
    };
    assert!(items.first().is_some_and(is_sample_access), "{label}: no |RtmpSampleAccess first: {:?}", items.first());
    items.remove(0);
    assert!(!items.iter().any(is_sample_access), "{label}: a second |RtmpSampleAccess");
    items
}

/// `ffmpeg -re -i tests/fixtures/FIXTURE -c copy -f flv URL`, with `extra` options (e.g.
/// `-stream_loop 1`) before -i.
pub fn ffmpeg_publisher(
    ffmpeg: &Path,
    fixture_name: &str,
    target: &str,
    dir: &TempDir,
    label: &str,
    extra: &[&str],
) -> (ChildGuard, PathBuf) {
    let (stderr, log) = log_file(dir, &format!("{label}.log"));
    let mut command = Command::new(ffmpeg);
    command
        .args(["-nostdin", "-hide_banner", "-loglevel", "warning", "-re"])
        .args(extra)
        .arg("-i")
        .arg(fixture(fixture_name))
        .args(["-c", "copy", "-f", "flv", target])
        .stdout(Stdio::null())
        .stderr(stderr);
    (ChildGuard::spawn(command, label), log)
}

/// Waits for a publisher to finish and requires success; the failure shows its log.
pub fn expect_finished(child: &mut ChildGuard, log: &Path, timeout: Duration) {
    match child.wait_timeout(timeout) {
        Some(status) => assert!(status.success(), "{} failed ({status}):\n{}", child.label, tail(log)),
        None => panic!("{} did not finish within {timeout:?}:\n{}", child.label, tail(log)),
    }
}

/// Shuts `relay` down, then requires every player to end by itself within 10 s.
///
/// Players stay connected when a publisher leaves (the relay sends StreamDry; nginx-rtmp
/// sends StreamEOF, which would end GStreamer's rtmp2src), so a test ends them the way an operator's restart would: the shutdown
/// sends `NetStream.Play.Stop`, flushes and closes. ffmpeg, rtmpdump and GStreamer then
/// write out everything they hold. Signals are no substitute: ffmpeg 5.1 blocked in an RTMP
/// read ignores the first, and exits on the second without writing what its muxer holds.
pub fn shut_down_and_let_players_end(relay: RelayHandle, players: &mut [(&mut ChildGuard, &Path)]) {
    relay.shutdown().unwrap();
    for (player, log) in players.iter_mut() {
        match player.wait_timeout(Duration::from_secs(10)) {
            Some(_) => {}
            None => panic!("{} did not end at the relay's shutdown:\n{}", player.label, tail(log)),
        }
    }
}

/// Waits until `relay` has `count` players (subscriptions), or fails with `what`.
pub fn wait_players(relay: &RelayHandle, count: u64, what: &str) {
    assert!(
        super::eventually(Duration::from_secs(10), || relay.stats().players == count),
        "{what}: the relay has {} players, not {count}",
        relay.stats().players
    );
}

/// Waits until `relay` has `count` publishers (an edge's forward or push is one at its
/// target), or fails with `what`.
pub fn wait_publishers(relay: &RelayHandle, count: u64, what: &str) {
    assert!(
        super::eventually(Duration::from_secs(10), || relay.stats().publishers == count),
        "{what}: the relay has {} publishers, not {count}",
        relay.stats().publishers
    );
}

/// Lets a player end by itself (ffmpeg and rtmpdump do on NetStream.Play.Stop) or stops it
/// with SIGINT; true if it had to be interrupted.
///
/// An ffmpeg blocked in an RTMP read does not always act on SIGINT; SIGTERM follows, and
/// only then SIGKILL (which would lose what it buffered).
pub fn stop_player(child: &mut ChildGuard, timeout: Duration) -> bool {
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

/// Leaves out the last packet of each stream: a player stopped by a signal may be cut in
/// the middle of reading a packet and write it truncated (ffmpeg's demuxer returns what it
/// has).
pub fn drop_last_packets(output: &mut HashMap<String, Vec<Packet>>) {
    for packets in output.values_mut() {
        packets.pop();
    }
}

/// Checks a player's file: video and audio are contiguous runs of `input`'s packets, at
/// least `min_fraction` of the input's packets each, video starting at a keyframe. With
/// `interrupted`, the last packet of each stream is left out (see [`drop_last_packets`]).
pub fn check_output(
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
        eprintln!("{label}: player did not stop by itself after the stream ended; interrupted");
        drop_last_packets(&mut output);
    }
    for codec_type in ["video", "audio"] {
        let total = input.get(codec_type).map(Vec::len).unwrap_or(0);
        let min = ((total as f64) * min_fraction).ceil() as usize;
        assert_contiguous_run(input, &output, codec_type, min.max(1), &format!("{label} {codec_type}"));
    }
    output
}

/// The fixture's packets repeated `times` (for looped publishing, `-stream_loop`).
pub fn repeated(input: &HashMap<String, Vec<Packet>>, times: usize) -> HashMap<String, Vec<Packet>> {
    input
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().cloned().cycle().take(v.len() * times).collect()))
        .collect()
}

/// Runs `check` (which asserts); if it fails, prints nginx's error log before passing the
/// failure on, since the cause is often only there.
pub fn with_nginx_log_on_failure<T>(nginx: &Nginx, check: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
        Ok(value) => value,
        Err(panic) => {
            eprintln!("nginx error.log:\n{}", nginx.error_log());
            std::panic::resume_unwind(panic)
        }
    }
}

/// An nginx-rtmp server (the Debian module) with `application live { live on; ... }` on a
/// loopback address and its stat page (`rtmp_stat all`) on another, both of this test
/// process's own (see tests/common/ports.rs); killed on drop.
pub struct Nginx {
    /// The nginx process.
    pub child: ChildGuard,
    /// Where it listens for RTMP.
    pub rtmp_addr: SocketAddr,
    http_addr: SocketAddr,
    dir: TempDir,
}

impl Nginx {
    /// On an address of its own, with a plain `live on` application.
    pub fn start(label: &str) -> Nginx {
        Self::start_with(label, own_loopback_addr(), "")
    }

    /// On `rtmp_addr` (e.g. to restart on the same one), with a plain `live on` application.
    pub fn start_on(label: &str, rtmp_addr: SocketAddr) -> Nginx {
        Self::start_with(label, rtmp_addr, "")
    }

    /// On `rtmp_addr` (from [`own_loopback_addr`]), with `application_directives` (e.g. `pull rtmp://ADDR/live;`) added
    /// to the `live` application. Returns once nginx accepts connections.
    pub fn start_with(label: &str, rtmp_addr: SocketAddr, application_directives: &str) -> Nginx {
        let nginx = require_program("nginx");
        let module = Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so");
        assert!(module.is_file(), "nginx rtmp module missing at {}", module.display());
        let dir = TempDir::new(label);
        let http_addr = own_loopback_addr();
        let d = dir.0.display();
        let conf = format!(
            "load_module {module};\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             error_log {d}/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{\n  server {{\n    listen {rtmp_addr};\n    chunk_size 4096;\n\
                 application live {{\n      live on;\n      {application_directives}\n    }}\n  }}\n}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen {http_addr};\n    location /stat {{ rtmp_stat all; }}\n  }}\n}}\n",
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
        while TcpStream::connect(rtmp_addr).is_err() {
            assert!(
                child.wait_timeout(Duration::from_millis(20)).is_none(),
                "nginx exited:\n{}",
                tail(&log)
            );
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {rtmp_addr}:\n{}",
                tail(&log)
            );
        }
        Nginx {
            child,
            rtmp_addr,
            http_addr,
            dir,
        }
    }

    /// The RTMP address.
    pub fn addr(&self) -> SocketAddr {
        self.rtmp_addr
    }

    /// `rtmp://ADDR/live/NAME`.
    pub fn url(&self, name: &str) -> String {
        live_url(self.addr(), name)
    }

    /// The stat page XML (HTTP/1.0 GET over a plain socket).
    pub fn stat(&self) -> String {
        let mut socket = TcpStream::connect(self.http_addr).expect("connect to nginx stat");
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
    pub fn stream_stat(&self, name: &str) -> Option<String> {
        let stat = self.stat();
        stat.split("<stream>")
            .skip(1)
            .find(|s| s.contains(&format!("<name>{name}</name>")))
            .map(|s| s.split("</stream>").next().unwrap_or(s).to_string())
    }

    /// `<client>` entries of stream `name`: (publishing?, address) each.
    pub fn stream_clients(&self, name: &str) -> Vec<(bool, String)> {
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

    /// Asks nginx for a fast shutdown (SIGTERM): it closes every connection and exits.
    pub fn terminate(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
    }

    /// The last lines of nginx's error.log.
    pub fn error_log(&self) -> String {
        tail(&self.dir.join("error.log"))
    }
}

/// The newer ffmpeg (it has `-local_addr`) playing `url` into `out`, or publishing the
/// fixture `h264_aac.flv` to it when `out` is `None`, from the loopback address `from`.
pub fn ffmpeg_from(from: &str, url: &str, out: Option<&Path>, dir: &TempDir, label: &str) -> (ChildGuard, PathBuf) {
    let (stderr, log) = log_file(dir, &format!("{label}.log"));
    let mut command = Command::new(new_ffmpeg());
    command.args(["-nostdin", "-hide_banner", "-loglevel", "warning"]);
    match out {
        Some(out) => {
            if url.starts_with("rtmps://") {
                // This ffmpeg verifies certificates by default; the test CA is not the system's.
                command.args(["-tls_verify", "0"]);
            }
            command.args(["-local_addr", from, "-i", url, "-c", "copy", "-f", "flv", "-y"]).arg(out);
        }
        None => {
            command.args(["-re", "-i"]).arg(fixture("h264_aac.flv"));
            command.args(["-c", "copy", "-local_addr", from, "-f", "flv", url]);
        }
    }
    command.stdout(Stdio::null()).stderr(stderr);
    (ChildGuard::spawn(command, label), log)
}
