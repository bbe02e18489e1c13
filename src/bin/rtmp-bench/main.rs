//! rtmp-bench: an RTMP load generator (players, publisher, relay latency, ramp, churn,
//! burst).
//!
//! Players run on mio loops (one by default, `--threads N` for more); the publisher, when
//! there is one, has a thread of its own. The main thread only steers the run and prints a
//! status line every second, then a summary (and `--json FILE`).

mod flv_scan;
mod player;
mod publisher;
mod report;
mod scan;
mod sequence;
mod shared;
mod stats;
mod tls;
mod url;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use player::{LoopConfig, PlayerMode};
use publisher::Media;
use report::{Report, Run};
use shared::Shared;
use url::RtmpUrl;

const USAGE: &str = "\
Usage:
  rtmp-bench play URL -n N [--rate R] [--duration S]
  rtmp-bench publish URL --file F.flv [--duration S]
  rtmp-bench relay PUB_URL PLAY_URL --file F.flv -n N [--duration S]
  rtmp-bench ramp PUB_URL PLAY_URL --file F.flv [--step N] [--step-secs S] [--max-latency-ms MS]
  rtmp-bench churn [PUB_URL] PLAY_URL [--file F.flv] -n CONCURRENCY [--duration S]
  rtmp-bench burst PLAY_URL -n N --rate R [--timeout S]

URLs are rtmp:// or rtmps:// (TLS, verified against --tls-ca or the system's roots).
With --protocol http-flv or ws-flv, players read PLAY_URL, http://HOST:PORT/APP/NAME.flv,
as HTTP-FLV or WebSocket-FLV (rtmp-edge's --http-listen); publishing stays RTMP.";

/// What the command line asked for.
#[derive(Clone, Debug)]
struct Options {
    mode: String,
    publish_url: Option<RtmpUrl>,
    play_url: Option<RtmpUrl>,
    players: u64,
    rate: f64,
    duration: Duration,
    file: Option<String>,
    threads: usize,
    setup_timeout: Duration,
    json: Option<String>,
    step: u64,
    step_secs: u64,
    max_players: u64,
    max_latency_ms: f64,
    drain: Duration,
    /// TLS settings, when a URL is `rtmps://`.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// HTTP-FLV or WebSocket-FLV players: the request and whether it upgrades.
    flv: Option<(Vec<u8>, bool)>,
    /// The publisher stamps each media message with a sequence number (`sequence.rs`).
    sequence: bool,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut spec = getopts::Options::new();
    spec.optopt("n", "", "players (play, relay), concurrent connections (churn)", "N");
    spec.optopt("", "rate", "new connections per second (default 200; churn: unlimited)", "R");
    spec.optopt("", "duration", "seconds to run (default 30; 0 = until interrupted for publish)", "S");
    spec.optopt("", "file", "FLV file to publish", "F.flv");
    spec.optopt("", "threads", "player event loops (default 1)", "N");
    spec.optopt("", "timeout", "seconds a connection has to get connect accepted (default 10)", "S");
    spec.optopt("", "json", "also write the summary as JSON to FILE", "FILE");
    spec.optopt("", "step", "ramp: players added per step (default 100)", "N");
    spec.optopt("", "step-secs", "ramp: seconds per step (default 5)", "S");
    spec.optopt("", "max-players", "ramp: stop at this many players (default 10000)", "N");
    spec.optopt("", "max-latency-ms", "ramp: p99 latency bound per step (default 200)", "MS");
    spec.optopt("", "drain", "relay: seconds to keep reading after the publisher stops (default 1)", "S");
    spec.optopt("", "tls-ca", "rtmps://: verify the server against these PEM CAs (default: the system's)", "FILE");
    spec.optflag("", "tls-insecure", "rtmps://: do not verify the server's certificate");
    spec.optopt("", "protocol", "players: rtmp (default), http-flv or ws-flv (PLAY_URL is then http://...)", "P");
    spec.optflag(
        "",
        "sequence",
        "publisher: end each audio/video message with a sequence stamp that players check (the media no longer decodes)",
    );
    spec.optflag("h", "help", "print this help");
    let matches = spec.parse(args).map_err(|e| e.to_string())?;
    if matches.opt_present("h") || matches.free.is_empty() {
        return Err(spec.usage(USAGE));
    }
    let number = |name: &str, default: f64| -> Result<f64, String> {
        match matches.opt_str(name) {
            Some(text) => text.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).ok_or(format!("--{name}: not a number: {text}")),
            None => Ok(default),
        }
    };
    let mode = matches.free[0].clone();
    let protocol = matches.opt_str("protocol").unwrap_or_else(|| "rtmp".to_string());
    let websocket = match protocol.as_str() {
        "rtmp" => None,
        "http-flv" => Some(false),
        "ws-flv" => Some(true),
        other => return Err(format!("--protocol: {other}: rtmp, http-flv or ws-flv")),
    };
    let mut flv = None;
    let play_index = matches.free.len().saturating_sub(1);
    let urls = matches.free[1..]
        .iter()
        .enumerate()
        .map(|(index, text)| match websocket {
            // The play URL is the last one; the publisher still publishes over RTMP.
            Some(websocket) if index + 1 == play_index && mode != "publish" => {
                let (url, request) = url::parse_flv(text, websocket)?;
                flv = Some((request, websocket));
                Ok(url)
            }
            _ => RtmpUrl::parse(text),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (publish_url, play_url) = match (mode.as_str(), urls.as_slice()) {
        ("play", [play]) => (None, Some(play.clone())),
        ("publish", [publish]) => (Some(publish.clone()), None),
        ("relay" | "ramp", [publish, play]) => (Some(publish.clone()), Some(play.clone())),
        ("churn" | "burst", [play]) => (None, Some(play.clone())),
        ("churn", [publish, play]) => (Some(publish.clone()), Some(play.clone())),
        ("play" | "publish" | "relay" | "ramp" | "churn" | "burst", _) => return Err(format!("{mode}: wrong number of URLs\n{USAGE}")),
        _ => return Err(format!("unknown mode {mode}\n{USAGE}")),
    };
    let file = matches.opt_str("file");
    if publish_url.is_some() && file.is_none() {
        return Err(format!("{mode} publishes: --file F.flv is required"));
    }
    let churn = mode == "churn";
    let wants_tls = publish_url.iter().chain(play_url.iter()).any(|url| url.tls_server_name.is_some());
    let tls = match wants_tls {
        true => Some(tls::client_config(matches.opt_str("tls-ca").as_deref(), matches.opt_present("tls-insecure"))?),
        false => None,
    };
    Ok(Options {
        tls,
        flv,
        sequence: matches.opt_present("sequence"),
        players: number("n", if churn { 50.0 } else { 1.0 })? as u64,
        rate: number("rate", if churn { 0.0 } else { 200.0 })?,
        duration: Duration::from_secs_f64(number("duration", 30.0)?),
        threads: (number("threads", 1.0)? as usize).max(1),
        setup_timeout: Duration::from_secs_f64(number("timeout", 10.0)?),
        json: matches.opt_str("json"),
        step: (number("step", 100.0)? as u64).max(1),
        step_secs: (number("step-secs", 5.0)? as u64).max(2),
        max_players: number("max-players", 10_000.0)? as u64,
        max_latency_ms: number("max-latency-ms", 200.0)?,
        drain: Duration::from_secs_f64(number("drain", 1.0)?),
        mode,
        publish_url,
        play_url,
        file,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(report) => {
            report.print_summary();
            if let Some(path) = &options.json {
                if let Err(error) = std::fs::write(path, report.to_json()) {
                    eprintln!("cannot write {path}: {error}");
                    return ExitCode::from(2);
                }
            }
            if report.all_failed() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(message) => {
            eprintln!("rtmp-bench: {message}");
            ExitCode::from(2)
        }
    }
}

struct Threads {
    shared: Arc<Shared>,
    loops: Vec<JoinHandle<std::io::Result<()>>>,
    publisher: Option<JoinHandle<()>>,
}

impl Threads {
    fn stop(self) {
        self.shared.stop_publisher.store(true, Ordering::SeqCst);
        self.shared.stop.store(true, Ordering::SeqCst);
        for handle in self.loops {
            match handle.join() {
                Ok(Err(error)) => eprintln!("player loop failed: {error}"),
                Err(_) => eprintln!("player loop panicked"),
                Ok(Ok(())) => {}
            }
        }
        if let Some(handle) = self.publisher {
            let _ = handle.join();
        }
    }
}

fn start_loops(options: &Options, shared: &Arc<Shared>, mode: PlayerMode) -> Result<Vec<JoinHandle<std::io::Result<()>>>, String> {
    let Some(url) = options.play_url.clone() else { return Ok(Vec::new()) };
    let threads = options.threads;
    let config = LoopConfig {
        url,
        mode,
        rate: options.rate / threads as f64,
        setup_timeout: options.setup_timeout,
        tls: options.tls.clone(),
        flv: options.flv.clone(),
    };
    (0..threads)
        .map(|index| {
            let config = config.clone();
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name(format!("players-{index}"))
                .spawn(move || player::run_loop(index, config, shared))
                .map_err(|e| format!("cannot start a player loop: {e}"))
        })
        .collect()
}

fn start_publisher(options: &Options, shared: &Arc<Shared>, duration: Option<Duration>) -> Result<Option<JoinHandle<()>>, String> {
    let (Some(url), Some(file)) = (options.publish_url.clone(), options.file.as_deref()) else { return Ok(None) };
    let media = Arc::new(Media::load(file)?);
    let shared = Arc::clone(shared);
    let tls = options.tls.clone();
    let stamps = options.sequence.then(sequence::generation_now);
    std::thread::Builder::new()
        .name("publisher".to_string())
        .spawn(move || publisher::run(url, tls, media, shared, duration, stamps))
        .map(Some)
        .map_err(|e| format!("cannot start the publisher: {e}"))
}

/// Waits for the publisher to go live; false when it failed first.
fn wait_live(shared: &Shared, run: &mut Run) -> bool {
    while !shared.publisher_live.load(Ordering::SeqCst) {
        if shared.publisher_done.load(Ordering::SeqCst) {
            return false;
        }
        run.sleep_with_status(Duration::from_millis(50));
    }
    true
}

fn run(options: &Options) -> Result<Report, String> {
    let shared = Arc::new(Shared::new(options.threads));
    let mut run = Run::new(Arc::clone(&shared), options.mode.clone());
    let started = Instant::now();
    let duration = (!options.duration.is_zero()).then_some(options.duration);
    let mut threads = Threads { shared: Arc::clone(&shared), loops: Vec::new(), publisher: None };
    match options.mode.as_str() {
        "play" => {
            shared.set_target(options.players);
            threads.loops = start_loops(options, &shared, PlayerMode::Play)?;
            run.sleep_with_status(options.duration);
        }
        "publish" => {
            threads.publisher = start_publisher(options, &shared, duration)?;
            while !shared.publisher_done.load(Ordering::SeqCst) {
                run.sleep_with_status(Duration::from_millis(100));
            }
        }
        "relay" => {
            // Players first, so that every message the publisher sends is one they should
            // all receive: the counts must then match exactly.
            shared.set_target(options.players);
            threads.loops = start_loops(options, &shared, PlayerMode::Play)?;
            let setup_deadline = Instant::now() + options.setup_timeout + Duration::from_secs_f64(options.players as f64 / options.rate.max(1.0));
            while run.settled() < options.players && Instant::now() < setup_deadline {
                run.sleep_with_status(Duration::from_millis(50));
            }
            run.sleep_with_status(Duration::from_millis(200));
            threads.publisher = start_publisher(options, &shared, duration)?;
            while !shared.publisher_done.load(Ordering::SeqCst) {
                run.sleep_with_status(Duration::from_millis(100));
            }
            run.sleep_with_status(options.drain);
        }
        "ramp" => {
            threads.publisher = start_publisher(options, &shared, None)?;
            if wait_live(&shared, &mut run) {
                threads.loops = start_loops(options, &shared, PlayerMode::Play)?;
                ramp(options, &shared, &mut run);
            }
        }
        "burst" => {
            // -n new players at --rate per second, each to its first keyframe, once: a
            // reconnect storm. Ends when every one got there or failed (--timeout each).
            shared.set_target(options.players);
            threads.loops = start_loops(options, &shared, PlayerMode::Once)?;
            let open_time = Duration::from_secs_f64(options.players as f64 / options.rate.max(1.0));
            let deadline = Instant::now() + open_time + options.setup_timeout + Duration::from_secs(5);
            while run.finished_once() < options.players && Instant::now() < deadline {
                run.sleep_with_status(Duration::from_millis(50));
            }
        }
        "churn" => {
            threads.publisher = start_publisher(options, &shared, None)?;
            if threads.publisher.is_some() && wait_live(&shared, &mut run) {
                // Give the server a keyframe to start players at.
                run.sleep_with_status(Duration::from_secs(2));
            }
            run.churn_started = Some(Instant::now());
            shared.set_target(options.players);
            threads.loops = start_loops(options, &shared, PlayerMode::Churn)?;
            run.sleep_with_status(options.duration);
        }
        _ => return Err(format!("unknown mode {}", options.mode)),
    }
    threads.stop();
    Ok(run.finish(started.elapsed(), options))
}

/// Adds players step by step until a step fails; `run.ramp_max` gets the last good count.
fn ramp(options: &Options, shared: &Shared, run: &mut Run) {
    let mut target = 0;
    run.ramp_max = Some(0);
    while target + options.step <= options.max_players {
        target += options.step;
        shared.set_target(target);
        let step_start = Instant::now();
        // Let the new players connect and settle, then judge the rest of the step.
        let connect_time = Duration::from_secs_f64(options.step as f64 / options.rate.max(1.0)) + Duration::from_secs(1);
        run.sleep_with_status(connect_time);
        run.step_reset();
        let remaining = Duration::from_secs(options.step_secs).saturating_sub(step_start.elapsed()).max(Duration::from_secs(2));
        run.sleep_with_status(remaining);
        let verdict = run.step_verdict(target, options.max_latency_ms);
        println!("ramp: {target} players: {verdict}");
        if verdict != "ok" {
            run.ramp_failure = Some(format!("{target} players: {verdict}"));
            return;
        }
        run.ramp_max = Some(target);
        if shared.publisher_done.load(Ordering::SeqCst) {
            return;
        }
    }
}
