//! The status line, the ramp verdicts, the summary table and its JSON twin.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shared::Shared;
use crate::stats::{Counters, Gauges, Histogram};
use crate::Options;

/// Clock ticks per second in /proc/*/stat (USER_HZ, 100 on every Linux build in use).
const TICKS_PER_SECOND: f64 = 100.0;

/// This process's user + system CPU seconds, from /proc/self/stat.
fn own_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / TICKS_PER_SECOND
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// The run as the main thread follows it.
pub struct Run {
    shared: Arc<Shared>,
    mode: String,
    start: Instant,
    next_status: Instant,
    last_status: Instant,
    last_cpu: f64,
    total: Counters,
    interval: Counters,
    step: Counters,
    peak_open: u64,
    peak_behind: u64,
    /// Ramp: highest player count that passed.
    pub ramp_max: Option<u64>,
    /// Ramp: why the first failing step failed.
    pub ramp_failure: Option<String>,
    /// Churn: when the churning players started.
    pub churn_started: Option<Instant>,
}

impl Run {
    /// A run that has just started.
    pub fn new(shared: Arc<Shared>, mode: String) -> Run {
        let now = Instant::now();
        Run {
            shared,
            mode,
            start: now,
            next_status: now + Duration::from_secs(1),
            last_status: now,
            last_cpu: own_cpu_seconds(),
            total: Counters::default(),
            interval: Counters::default(),
            step: Counters::default(),
            peak_open: 0,
            peak_behind: 0,
            ramp_max: None,
            ramp_failure: None,
            churn_started: None,
        }
    }

    fn collect(&mut self) -> Gauges {
        let fresh = self.shared.take_counters();
        self.total.merge(&fresh);
        self.interval.merge(&fresh);
        self.step.merge(&fresh);
        let gauges = self.shared.gauges();
        self.peak_open = self.peak_open.max(gauges.open);
        gauges
    }

    /// Connections that have either been accepted or failed.
    pub fn settled(&mut self) -> u64 {
        self.collect();
        self.total.connected + self.total.failed()
    }

    /// Burst: connections that reached their first keyframe or failed.
    pub fn finished_once(&mut self) -> u64 {
        self.collect();
        self.total.churn_cycles + self.total.failed()
    }

    /// Sleeps for `duration`, printing the status line every second.
    pub fn sleep_with_status(&mut self, duration: Duration) {
        let end = Instant::now() + duration;
        loop {
            let now = Instant::now();
            if now >= end {
                return;
            }
            if now >= self.next_status {
                self.status_line(now);
                self.next_status += Duration::from_secs(1);
                if self.next_status < now {
                    self.next_status = now + Duration::from_secs(1);
                }
            }
            std::thread::sleep((end.min(self.next_status) - now).min(Duration::from_millis(50)));
        }
    }

    fn status_line(&mut self, now: Instant) {
        let gauges = self.collect();
        self.peak_behind = self.peak_behind.max(gauges.behind);
        let seconds = now.saturating_duration_since(self.last_status).as_secs_f64().max(1e-3);
        let cpu = own_cpu_seconds();
        let cpu_percent = (cpu - self.last_cpu) / seconds * 100.0;
        self.last_cpu = cpu;
        self.last_status = now;
        let interval = std::mem::take(&mut self.interval);
        let mut line = format!(
            "[{:6.1}s] open {} playing {} failed {} | {:8.1} Mbps",
            now.saturating_duration_since(self.start).as_secs_f64(),
            gauges.open,
            gauges.playing,
            self.total.failed(),
            interval.bytes as f64 * 8.0 / seconds / 1e6,
        );
        let latency = &interval.latency;
        if latency.count() > 0 {
            let _ = write!(
                line,
                " | latency p50 {:.2} p99 {:.2} max {:.2} ms",
                ms(latency.quantile(0.5)),
                ms(latency.quantile(0.99)),
                ms(latency.max())
            );
        } else {
            line.push_str(" | latency -");
        }
        if interval.latency_from_send.count() > 0 {
            let _ = write!(line, " (from send p99 {:.2})", ms(interval.latency_from_send.quantile(0.99)));
        }
        let _ = write!(line, " | behind {}", gauges.behind);
        if self.mode == "churn" {
            let _ = write!(
                line,
                " | churn {:.0}/s ttfk p50 {:.1} ms",
                interval.churn_cycles as f64 / seconds,
                ms(interval.first_keyframe.quantile(0.5))
            );
        }
        if self.shared.publish_start_us.load(Ordering::Relaxed) != crate::shared::NOT_STARTED {
            let _ = write!(line, " | published {}", self.shared.published_media.load(Ordering::Relaxed));
        }
        let _ = write!(line, " | cpu {cpu_percent:.0}%");
        println!("{line}");
    }

    /// Starts a new ramp step's measurement window.
    pub fn step_reset(&mut self) {
        self.collect();
        self.step = Counters::default();
    }

    /// "ok", or why the step failed.
    pub fn step_verdict(&mut self, target: u64, max_latency_ms: f64) -> String {
        let gauges = self.collect();
        let failed = self.step.failed();
        if failed > 0 {
            return format!("{failed} connections failed ({})", reasons(&self.step));
        }
        if gauges.open < target {
            return format!("only {} of {target} players connected", gauges.open);
        }
        if gauges.behind > 0 {
            return format!("{} players more than 1 s behind real time", gauges.behind);
        }
        if self.step.latency.count() == 0 {
            return "no media delivered".to_string();
        }
        let p99 = ms(self.step.latency.quantile(0.99));
        if p99 > max_latency_ms {
            return format!("latency p99 {p99:.1} ms > {max_latency_ms} ms");
        }
        "ok".to_string()
    }

    /// Collects the last figures and builds the report.
    pub fn finish(mut self, elapsed: Duration, options: &Options) -> Report {
        let gauges = self.collect();
        let publisher_lag = self.shared.publisher_lag.lock().map(|h| h.clone()).unwrap_or_default();
        let publisher_error = self.shared.publisher_error.lock().ok().and_then(|e| e.clone());
        let churn_seconds = self.churn_started.map(|s| s.elapsed().as_secs_f64());
        Report {
            mode: self.mode,
            target_players: options.players,
            elapsed,
            counters: self.total,
            final_gauges: gauges,
            peak_open: self.peak_open,
            peak_behind: self.peak_behind,
            published_media: self.shared.published_media.load(Ordering::SeqCst),
            publisher_lag,
            publisher_error,
            ramp_max: self.ramp_max,
            ramp_failure: self.ramp_failure,
            churn_seconds,
            loadgen_cpu_seconds: own_cpu_seconds(),
        }
    }
}

fn reasons(counters: &Counters) -> String {
    counters.errors.iter().map(|(reason, count)| format!("{count} x {reason}")).collect::<Vec<_>>().join(", ")
}

/// The end-of-run figures.
pub struct Report {
    mode: String,
    target_players: u64,
    elapsed: Duration,
    counters: Counters,
    final_gauges: Gauges,
    peak_open: u64,
    peak_behind: u64,
    published_media: u64,
    publisher_lag: Histogram,
    publisher_error: Option<String>,
    ramp_max: Option<u64>,
    ramp_failure: Option<String>,
    churn_seconds: Option<f64>,
    loadgen_cpu_seconds: f64,
}

impl Report {
    /// Whether connections were tried and not one got its connect accepted.
    pub fn all_failed(&self) -> bool {
        self.counters.attempts > 0 && self.counters.connected == 0
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let c = &self.counters;
        let seconds = self.elapsed.as_secs_f64().max(1e-3);
        let mut rows = vec![
            ("mode", self.mode.clone()),
            ("duration", format!("{seconds:.1} s")),
            ("connections tried", c.attempts.to_string()),
            ("connect accepted", c.connected.to_string()),
            ("play started", c.playing.to_string()),
            ("failed", c.failed().to_string()),
            ("open at end / peak", format!("{} / {}", self.final_gauges.open, self.peak_open)),
            ("media messages received", c.media_messages.to_string()),
            ("per player (min / max)", format!("{} / {}", self.final_gauges.min_player_messages, self.final_gauges.max_player_messages)),
            ("bytes received", c.bytes.to_string()),
            ("average Mbps", format!("{:.1}", c.bytes as f64 * 8.0 / seconds / 1e6)),
        ];
        if c.latency.count() > 0 {
            let l = &c.latency;
            rows.push((
                "latency ms p50/p99/max",
                format!("{:.2} / {:.2} / {:.2}", ms(l.quantile(0.5)), ms(l.quantile(0.99)), ms(l.max())),
            ));
        }
        if c.latency_from_send.count() > 0 {
            let l = &c.latency_from_send;
            rows.push((
                "from actual send p50/p99/max",
                format!("{:.2} / {:.2} / {:.2}", ms(l.quantile(0.5)), ms(l.quantile(0.99)), ms(l.max())),
            ));
        }
        if c.early_messages > 0 {
            rows.push(("messages before their time (timestamps rewritten?)", c.early_messages.to_string()));
        }
        rows.push(("players behind (peak / end)", format!("{} / {}", self.peak_behind, self.final_gauges.behind)));
        if self.published_media > 0 || self.publisher_error.is_some() {
            rows.push(("published media messages", self.published_media.to_string()));
            let lag = &self.publisher_lag;
            rows.push(("publisher lag ms p99/max", format!("{:.2} / {:.2}", ms(lag.quantile(0.99)), ms(lag.max()))));
        }
        if let Some(error) = &self.publisher_error {
            rows.push(("publisher error", error.clone()));
        }
        if let Some(max) = self.ramp_max {
            rows.push(("max sustained players", max.to_string()));
        }
        if let Some(failure) = &self.ramp_failure {
            rows.push(("ramp stopped at", failure.clone()));
        }
        if c.handshake.count() > 0 {
            let h = &c.handshake;
            rows.push((
                "handshake ms p50/p99/max",
                format!("{:.1} / {:.1} / {:.1}", ms(h.quantile(0.5)), ms(h.quantile(0.99)), ms(h.max())),
            ));
            // A SYN the server's backlog dropped is sent again after 1 s: a handshake that
            // took that long was almost always one.
            rows.push(("handshakes over 1 s", h.count_above(1_000_000).to_string()));
            let p = &c.play_start;
            rows.push((
                "play start ms p50/p99/max",
                format!("{:.1} / {:.1} / {:.1}", ms(p.quantile(0.5)), ms(p.quantile(0.99)), ms(p.max())),
            ));
        }
        if self.mode == "burst" {
            let k = &c.first_keyframe;
            rows.push(("reached a keyframe", c.churn_cycles.to_string()));
            rows.push((
                "first keyframe ms p50/p99/max",
                format!("{:.1} / {:.1} / {:.1}", ms(k.quantile(0.5)), ms(k.quantile(0.99)), ms(k.max())),
            ));
        }
        if let Some(churn_seconds) = self.churn_seconds {
            let k = &c.first_keyframe;
            rows.push(("churn connections/s", format!("{:.1}", c.churn_cycles as f64 / churn_seconds.max(1e-3))));
            rows.push((
                "first keyframe ms p50/p90/p99",
                format!("{:.1} / {:.1} / {:.1}", ms(k.quantile(0.5)), ms(k.quantile(0.9)), ms(k.quantile(0.99))),
            ));
        }
        let sequence = &c.sequence;
        if sequence.messages > 0 {
            rows.push((
                "sequence: stamped / lost / reordered",
                format!("{} / {} / {}", sequence.messages, sequence.lost, sequence.reordered),
            ));
            rows.push(("sequence: resumed at keyframe / new publisher", format!("{} / {}", sequence.resumed, sequence.new_publisher)));
        }
        rows.push(("load generator CPU s", format!("{:.2}", self.loadgen_cpu_seconds)));
        rows
    }

    /// Prints the summary table, errors by reason, and a clear line when all failed.
    pub fn print_summary(&self) {
        println!();
        println!("== rtmp-bench summary ==");
        let rows = self.rows();
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (key, value) in rows {
            println!("{key:<width$}  {value}");
        }
        if !self.counters.errors.is_empty() {
            println!("errors by reason:");
            for (reason, count) in &self.counters.errors {
                println!("  {count:>8}  {reason}");
            }
        }
        if self.all_failed() {
            println!(
                "ALL {} CONNECTIONS FAILED ({}); nothing was measured.",
                self.counters.attempts,
                reasons(&self.counters)
            );
        }
    }

    /// The same figures as JSON (written by hand: no serde dependency for one object).
    pub fn to_json(&self) -> String {
        let c = &self.counters;
        let seconds = self.elapsed.as_secs_f64().max(1e-3);
        let histogram = |h: &Histogram| {
            format!(
                "{{\"count\": {}, \"p50_ms\": {:.3}, \"p90_ms\": {:.3}, \"p99_ms\": {:.3}, \"max_ms\": {:.3}, \"min_ms\": {:.3}}}",
                h.count(),
                ms(h.quantile(0.5)),
                ms(h.quantile(0.9)),
                ms(h.quantile(0.99)),
                ms(h.max()),
                ms(h.min())
            )
        };
        let errors: Vec<String> = c.errors.iter().map(|(k, v)| format!("{}: {v}", json_string(k))).collect();
        let optional = |value: Option<u64>| value.map_or("null".to_string(), |v| v.to_string());
        let mut out = String::from("{\n");
        let _ = writeln!(out, "  \"mode\": {},", json_string(&self.mode));
        let _ = writeln!(out, "  \"target_players\": {},", self.target_players);
        let _ = writeln!(out, "  \"duration_s\": {seconds:.3},");
        let _ = writeln!(out, "  \"attempts\": {},", c.attempts);
        let _ = writeln!(out, "  \"connected\": {},", c.connected);
        let _ = writeln!(out, "  \"playing\": {},", c.playing);
        let _ = writeln!(out, "  \"failed\": {},", c.failed());
        let _ = writeln!(out, "  \"errors\": {{{}}},", errors.join(", "));
        let _ = writeln!(out, "  \"open_at_end\": {},", self.final_gauges.open);
        let _ = writeln!(out, "  \"peak_open\": {},", self.peak_open);
        let _ = writeln!(out, "  \"media_messages\": {},", c.media_messages);
        let _ = writeln!(out, "  \"min_player_messages\": {},", self.final_gauges.min_player_messages);
        let _ = writeln!(out, "  \"max_player_messages\": {},", self.final_gauges.max_player_messages);
        let _ = writeln!(out, "  \"bytes\": {},", c.bytes);
        let _ = writeln!(out, "  \"mbps\": {:.3},", c.bytes as f64 * 8.0 / seconds / 1e6);
        let _ = writeln!(out, "  \"latency\": {},", histogram(&c.latency));
        let _ = writeln!(out, "  \"latency_from_send\": {},", histogram(&c.latency_from_send));
        let _ = writeln!(out, "  \"early_messages\": {},", c.early_messages);
        let _ = writeln!(out, "  \"peak_behind\": {},", self.peak_behind);
        let _ = writeln!(out, "  \"published_media\": {},", self.published_media);
        let _ = writeln!(out, "  \"publisher_lag\": {},", histogram(&self.publisher_lag));
        let _ = writeln!(
            out,
            "  \"publisher_error\": {},",
            self.publisher_error.as_deref().map_or("null".to_string(), json_string)
        );
        let _ = writeln!(out, "  \"ramp_max_players\": {},", optional(self.ramp_max));
        let _ = writeln!(
            out,
            "  \"ramp_failure\": {},",
            self.ramp_failure.as_deref().map_or("null".to_string(), json_string)
        );
        let churn_rate = self.churn_seconds.map(|s| c.churn_cycles as f64 / s.max(1e-3));
        let _ = writeln!(out, "  \"churn_cycles\": {},", c.churn_cycles);
        let _ = writeln!(out, "  \"churn_per_s\": {},", churn_rate.map_or("null".to_string(), |r| format!("{r:.2}")));
        let _ = writeln!(out, "  \"first_keyframe\": {},", histogram(&c.first_keyframe));
        let _ = writeln!(out, "  \"handshake\": {},", histogram(&c.handshake));
        let _ = writeln!(out, "  \"handshakes_over_1s\": {},", c.handshake.count_above(1_000_000));
        let _ = writeln!(out, "  \"play_start\": {},", histogram(&c.play_start));
        let q = &c.sequence;
        let _ = writeln!(
            out,
            "  \"sequence\": {{\"messages\": {}, \"lost\": {}, \"reordered\": {}, \"resumed\": {}, \"new_publisher\": {}}},",
            q.messages, q.lost, q.reordered, q.resumed, q.new_publisher
        );
        let _ = writeln!(out, "  \"loadgen_cpu_s\": {:.3}", self.loadgen_cpu_seconds);
        out.push_str("}\n");
        out
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
