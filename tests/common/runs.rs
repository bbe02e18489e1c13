//! Checks on what a player really received, tag by tag: its own FLV file read directly
//! (rtmpdump's output, GStreamer's `rtmp2src ! filesink`) or the library client's log.
//!
//! ffmpeg's muxer clamps timestamps that go back and drops packets before the first
//! keyframe, so claims about timestamps and keyframes are checked here, on raw output; an
//! ffmpeg player's file is only good for packet hashes.

use rtmp_edge::sessions::MediaKind;

use super::{frames_of, Item};

/// One run of a source (one publish, start to end) as a player got it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Index among the published frames (no metadata, no sequence headers) where it starts.
    pub start: usize,
    /// What the relay added to each published timestamp of the run (wrapping).
    pub shift: u32,
}

/// Whether `later` is at or after `earlier` in RTMP's wrapping time.
fn not_before(earlier: u32, later: u32) -> bool {
    later.wrapping_sub(earlier) < 1 << 31
}

/// How a run's metadata is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataCheck {
    /// The published `onMetaData`, byte for byte (what this relay passes on).
    Exact,
    /// Some `onMetaData`, whatever its content: nginx-rtmp (`meta on`, its default) sends
    /// its own, rebuilt from what it parsed.
    Rebuilt,
}

/// `got` must be exactly one run of each of `runs` (what each publish sent), one after the
/// other, each as a player that waited for the source gets it: metadata (see
/// [`MetadataCheck`]; none when none was published), then the published frames from a start
/// index to the end, with the same bytes, and each published sequence header once, before
/// the first frame of its kind.
/// The start is at most the published first keyframe (a run may begin at it, or with the
/// audio before it), and the run's first video frame is a keyframe. Every timestamp of a
/// run (but the metadata's, which the relay stamps with its own clock) is the published one
/// plus one constant, and each run begins after the last frame of the run before it. Over
/// the whole of `got`, audio and video timestamps never go back. Returns where each run
/// started and its shift.
pub fn assert_runs(runs: &[&[Item]], got: &[Item], metadata_check: MetadataCheck, label: &str) -> Vec<Run> {
    let mut rest = got;
    let mut found = Vec::new();
    let mut previous_end: Option<u32> = None;
    for (run, published) in runs.iter().enumerate() {
        let what = format!("{label}: run {} of {}", run + 1, runs.len());
        let metadata = published.iter().find(|item| matches!(item, Item::Metadata { .. }));
        let headers: Vec<&Item> = published.iter().filter(|item| item.is_sequence_header()).collect();
        let frames = frames_of(published);
        let keyframe = frames.iter().position(Item::is_video_keyframe).unwrap_or(0);
        if let Some(Item::Metadata { raw, .. }) = metadata {
            match rest.first() {
                Some(Item::Metadata { raw: got_raw, .. })
                    if got_raw == raw || (metadata_check == MetadataCheck::Rebuilt && is_on_metadata(got_raw)) =>
                {
                    rest = &rest[1..]
                }
                other => panic!("{what}: expected the published metadata first ({metadata_check:?}), got {other:?}"),
            }
        }
        let metadata_bounds_runs = metadata.is_some();
        // Where the next run begins: its metadata, or (without metadata) a sequence header
        // after this run's first frame.
        let first_frame = rest.iter().position(Item::is_frame).unwrap_or(rest.len());
        let end = if metadata_bounds_runs {
            rest.iter().position(|item| matches!(item, Item::Metadata { .. })).unwrap_or(rest.len())
        } else {
            rest[first_frame..].iter().position(Item::is_sequence_header).map_or(rest.len(), |at| at + first_frame)
        };
        let run_items = &rest[..end];
        let same_message = |a: &Item, b: &Item| a.with_timestamp(0) == b.with_timestamp(0);
        let (got_headers, run_frames) = split_headers(run_items, &headers, &what);
        assert!(!run_frames.is_empty(), "{what}: no frames");
        assert!(
            run_frames.len() <= frames.len(),
            "{what}: {} frames, only {} were published",
            run_frames.len(),
            frames.len()
        );
        let start = frames.len() - run_frames.len();
        if !same_message(&run_frames[0], &frames[start]) {
            let began_at = frames.iter().position(|frame| same_message(frame, &run_frames[0]));
            panic!(
                "{what}: {} frames, the first {:?} is published frame #{began_at:?}: the run does not reach the published end (frame #{}), or has gaps",
                run_frames.len(),
                run_frames[0],
                frames.len() - 1
            );
        }
        assert!(
            start <= keyframe,
            "{what}: starts at published frame #{start}, after the first keyframe (#{keyframe}); first got {:?}",
            run_frames[0]
        );
        let first_video = run_frames.iter().find(|item| item.is_video_frame());
        if let Some(first_video) = first_video {
            assert!(first_video.is_video_keyframe(), "{what}: the first video frame is not a keyframe: {first_video:?}");
        }
        let shift = run_frames[0].timestamp().wrapping_sub(frames[start].timestamp());
        let shifted = |item: &Item| item.with_timestamp(item.timestamp().wrapping_add(shift));
        for (index, (want, have)) in frames[start..].iter().map(shifted).zip(&run_frames).enumerate() {
            assert!(
                want == *have,
                "{what}: frame {index} differs (kind, bytes, or timestamp shifted by {shift}): expected {want:?}, got {have:?}"
            );
        }
        for header in &got_headers {
            let published_header = headers.iter().find(|h| same_message(h, header)).copied();
            assert_eq!(published_header.map(shifted).as_ref(), Some(*header), "{what}: header timestamp (shift {shift})");
        }
        let rest_after = &rest[end..];
        let rest_run = run_items;
        let run_start = rest_run.iter().filter(|item| !matches!(item, Item::Metadata { .. })).map(Item::timestamp).next().unwrap_or(0);
        if let Some(previous_end) = previous_end {
            assert!(
                run_start != previous_end && not_before(previous_end, run_start),
                "{what}: begins at {run_start} ms, not after the run before it ended ({previous_end} ms)"
            );
        }
        let furthest = rest_run
            .iter()
            .filter(|item| !matches!(item, Item::Metadata { .. }))
            .map(|item| item.timestamp().wrapping_sub(run_start))
            .max()
            .unwrap_or(0);
        previous_end = Some(run_start.wrapping_add(furthest));
        found.push(Run { start, shift });
        rest = rest_after;
    }
    assert!(
        rest.is_empty(),
        "{label}: {} items after the last of {} runs, first {:?}",
        rest.len(),
        runs.len(),
        rest.first()
    );
    assert_kinds_monotonic(got, label);
    found
}

/// Splits a run's items into its sequence headers and its frames, checking that each
/// published header arrives once, before the first frame of its kind (nginx-rtmp sends each
/// just before that kind's first frame; this relay sends them all first), and that nothing
/// else (no metadata) is among them.
fn split_headers<'a>(run_items: &'a [Item], headers: &[&Item], what: &str) -> (Vec<&'a Item>, Vec<Item>) {
    let same_message = |a: &Item, b: &Item| a.with_timestamp(0) == b.with_timestamp(0);
    let got_headers: Vec<&Item> = run_items.iter().filter(|item| item.is_sequence_header()).collect();
    assert!(
        got_headers.len() == headers.len() && headers.iter().all(|h| got_headers.iter().any(|g| same_message(g, h))),
        "{what}: sequence headers {got_headers:?}, published {headers:?}"
    );
    let kind_of = |item: &Item| match item {
        Item::Media { kind, .. } => Some(*kind),
        Item::Metadata { .. } => None,
    };
    for (at, header) in run_items.iter().enumerate().filter(|(_, item)| item.is_sequence_header()) {
        let first_of_kind = run_items.iter().position(|item| item.is_frame() && kind_of(item) == kind_of(header));
        assert!(first_of_kind.is_none_or(|first| at < first), "{what}: {header:?} comes after a frame of its kind");
    }
    let frames: Vec<Item> = run_items.iter().filter(|item| !item.is_sequence_header()).cloned().collect();
    assert!(frames.iter().all(Item::is_frame), "{what}: metadata among the frames: {:?}", frames.iter().find(|i| !i.is_frame()));
    (got_headers, frames)
}

/// `got` is `passes` copies of `fixture` as an ffmpeg publisher sends them
/// (`-stream_loop`), as a player that waited gets them: some `onMetaData`, then the frames
/// of every pass in order, from the first keyframe (or before it) to the end, with the same
/// bytes, each sequence header once before the first frame of its kind, timestamps never
/// going back. ffmpeg chooses the timestamps of the later passes, so only their order is
/// checked. Its FLV demuxer does not pass on the input's AVC end-of-sequence tags; its FLV
/// muxer writes one at the very end.
pub fn assert_payload_run(fixture: &[Item], passes: usize, got: &[Item], label: &str) {
    let same = |a: &Item, b: &Item| a.with_timestamp(0) == b.with_timestamp(0);
    let headers: Vec<&Item> = fixture.iter().filter(|i| i.is_sequence_header()).collect();
    let is_end_of_sequence = |item: &Item| matches!(item, Item::Media { data, .. } if data.len() >= 2 && data[0] & 0x0f == 7 && data[1] == 2);
    let one_pass: Vec<Item> = frames_of(fixture).into_iter().filter(|item| !is_end_of_sequence(item)).collect();
    let keyframe = one_pass.iter().position(Item::is_video_keyframe).unwrap_or(0);
    let mut frames: Vec<Item> = one_pass.iter().cycle().take(one_pass.len() * passes).cloned().collect();
    frames.extend(frames_of(fixture).into_iter().filter(is_end_of_sequence).take(1));
    match got.first() {
        Some(Item::Metadata { raw, .. }) if is_on_metadata(raw) => {}
        other => panic!("{label}: no onMetaData first: {other:?}"),
    }
    let (_, got_frames) = split_headers(&got[1..], &headers, label);
    assert!(
        !got_frames.is_empty() && got_frames.len() <= frames.len(),
        "{label}: {} frames of {}",
        got_frames.len(),
        frames.len()
    );
    let start = frames.len() - got_frames.len();
    assert!(start <= keyframe, "{label}: starts at published frame #{start}, after the first keyframe (#{keyframe})");
    for (index, (g, f)) in got_frames.iter().zip(&frames[start..]).enumerate() {
        assert!(same(g, f), "{label}: frame {index} (published #{start}+{index}) differs: {g:?} vs {f:?}");
    }
    let first_video = got_frames.iter().find(|i| i.is_video_frame());
    assert!(first_video.is_some_and(Item::is_video_keyframe), "{label}: first video frame {first_video:?}");
    assert_kinds_monotonic(got, label);
}

/// Whether an AMF0 data body is `onMetaData(...)`.
fn is_on_metadata(raw: &[u8]) -> bool {
    raw.starts_with(b"\x02\x00\x0aonMetaData")
}

/// Audio timestamps never go back, nor do video timestamps (each kind on its own: a muxer
/// may interleave audio slightly ahead of video).
pub fn assert_kinds_monotonic(items: &[Item], label: &str) {
    for wanted in [MediaKind::Audio, MediaKind::Video] {
        let mut last: Option<u32> = None;
        for item in items {
            if let Item::Media { kind, timestamp, .. } = item {
                if *kind != wanted {
                    continue;
                }
                if let Some(previous) = last {
                    assert!(
                        not_before(previous, *timestamp),
                        "{label}: {wanted:?} timestamp went back from {previous} to {timestamp} ({item:?})"
                    );
                }
                last = Some(*timestamp);
            }
        }
    }
}
