//! The blocking client (`rtmp_edge::blocking`): play a stream into an FLV file, or
//! publish an FLV file, each in a few lines.
//!
//! ```text
//! cargo run --example blocking_client -- play    rtmp://127.0.0.1/live/stream out.flv
//! cargo run --example blocking_client -- publish rtmp://127.0.0.1/live/stream in.flv [--fast]
//! ```
//!
//! `play` records until the publisher stops. `publish` sends in real time, pacing tags by
//! their timestamps as a live encoder would (ffmpeg's `-re`); `--fast` sends as fast as the
//! server takes them.

use std::fs::File;
use std::io::BufWriter;
use std::time::{Duration, Instant};

use rtmp_edge::blocking;
use rtmp_edge::flv::{FlvReader, FlvWriter};
use rtmp_edge::sessions::PublishMode;
use rtmp_edge::url::RtmpUrl;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["play", url, out] => play(&RtmpUrl::parse(url)?, out),
        ["publish", url, input] => publish(&RtmpUrl::parse(url)?, input, true),
        ["publish", url, input, "--fast"] => publish(&RtmpUrl::parse(url)?, input, false),
        _ => Err("usage: blocking_client play URL OUT.flv | publish URL IN.flv [--fast]".into()),
    }
}

fn play(url: &RtmpUrl, out: &str) -> Result<()> {
    let mut player = blocking::connect(url)?.play()?;
    println!("playing {url}");
    let mut writer = FlvWriter::new(BufWriter::new(File::create(out)?), true, true)?;
    let mut tags = 0usize;
    let mut announced_wait = false;
    while let Some(tag) = player.next() {
        // The first tag may be a while coming when the stream has no publisher yet.
        if player.is_waiting() && !announced_wait {
            println!("waiting for a publisher");
            announced_wait = true;
        }
        writer.write_tag(&tag?)?;
        tags += 1;
    }
    writer.flush()?;
    println!("recorded {tags} tags to {out}");
    Ok(())
}

fn publish(url: &RtmpUrl, input: &str, realtime: bool) -> Result<()> {
    let reader = FlvReader::open(input)?;
    let mut publisher = blocking::connect(url)?.publish(PublishMode::Live)?;
    println!("publishing {input} to {url}");
    let start = Instant::now();
    let mut first_timestamp = None;
    let mut tags = 0usize;
    for tag in reader {
        let tag = tag?;
        if realtime {
            let first = *first_timestamp.get_or_insert(tag.timestamp);
            // Signed: a tag a little earlier than the first (audio before video) is due now.
            let offset_ms = u64::try_from(tag.timestamp.signed_distance_from(first)).unwrap_or(0);
            let due = start + Duration::from_millis(offset_ms);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        publisher.send_tag(&tag)?;
        tags += 1;
    }
    publisher.finish()?;
    println!("published {tags} tags");
    Ok(())
}
