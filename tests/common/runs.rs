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

/// `got` must be exactly `runs` runs of `published`, one after the other, each as a player
/// that waited for the source gets it: the published metadata (when there is one), the
/// sequence headers in published order, then the published frames from a start index to
/// the end, with the same bytes. The start is at most the published first keyframe (a run
/// may begin at it, or with the audio before it), and the run's first video frame is a
/// keyframe. Every timestamp of a run (but the metadata's, which the relay stamps with its
/// own clock) is the published one plus one constant, and each run begins after the last
/// frame of the run before it. Over the whole of `got`, audio and video timestamps never go
/// back. Returns where each run started and its shift.
pub fn assert_runs(published: &[Item], got: &[Item], runs: usize, label: &str) -> Vec<Run> {
    let metadata = published.iter().find(|item| matches!(item, Item::Metadata { .. }));
    let headers: Vec<&Item> = published.iter().filter(|item| item.is_sequence_header()).collect();
    let frames = frames_of(published);
    let keyframe = frames.iter().position(Item::is_video_keyframe).unwrap_or(0);
    let begins_run = |item: &Item| matches!(item, Item::Metadata { .. }) || item.is_sequence_header();
    let mut rest = got;
    let mut found = Vec::new();
    let mut previous_end: Option<u32> = None;
    for run in 0..runs {
        let what = format!("{label}: run {} of {runs}", run + 1);
        if let Some(Item::Metadata { raw, .. }) = metadata {
            match rest.first() {
                Some(Item::Metadata { raw: got_raw, .. }) if got_raw == raw => rest = &rest[1..],
                other => panic!("{what}: expected the published metadata first, got {other:?}"),
            }
        }
        let header_count = headers.len();
        assert!(
            rest.len() >= header_count && rest[..header_count].iter().all(Item::is_sequence_header),
            "{what}: expected {header_count} sequence headers, got {:?}",
            &rest[..rest.len().min(header_count)]
        );
        let end = rest[header_count..]
            .iter()
            .position(|item| begins_run(item))
            .map_or(rest.len(), |at| at + header_count);
        let run_frames = &rest[header_count..end];
        assert!(!run_frames.is_empty(), "{what}: no frames after the sequence headers");
        assert!(
            run_frames.len() <= frames.len(),
            "{what}: {} frames, only {} were published",
            run_frames.len(),
            frames.len()
        );
        let start = frames.len() - run_frames.len();
        let same_message = |a: &Item, b: &Item| a.with_timestamp(0) == b.with_timestamp(0);
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
        let expected_first = if header_count > 0 { headers[0] } else { &frames[start] };
        let shift = rest[0].timestamp().wrapping_sub(expected_first.timestamp());
        let expected: Vec<Item> = headers
            .iter()
            .copied()
            .chain(&frames[start..])
            .map(|item| item.with_timestamp(item.timestamp().wrapping_add(shift)))
            .collect();
        for (index, (want, have)) in expected.iter().zip(&rest[..end]).enumerate() {
            assert!(
                want == have,
                "{what}: item {index} differs (kind, bytes, or timestamp shifted by {shift}): expected {want:?}, got {have:?}"
            );
        }
        let run_start = rest[0].timestamp();
        if let Some(previous_end) = previous_end {
            assert!(
                run_start != previous_end && not_before(previous_end, run_start),
                "{what}: begins at {run_start} ms, not after the run before it ended ({previous_end} ms)"
            );
        }
        let furthest = rest[..end].iter().map(|item| item.timestamp().wrapping_sub(run_start)).max().unwrap_or(0);
        previous_end = Some(run_start.wrapping_add(furthest));
        found.push(Run { start, shift });
        rest = &rest[end..];
    }
    assert!(
        rest.is_empty(),
        "{label}: {} items after the last of {runs} runs, first {:?}",
        rest.len(),
        rest.first()
    );
    assert_kinds_monotonic(got, label);
    found
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
