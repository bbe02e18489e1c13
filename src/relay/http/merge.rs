//! One answer from every worker's part (`--workers N`): the worker with the HTTP listener
//! gathers the others' views (`core/worker_api.rs`) and puts them together here.
//!
//! What adds up and what does not: a stream published on one worker and pulled by the
//! others is one stream. Its players are every worker's viewers together (a sibling's
//! pull is never counted as a player); its bytes and frames in are those of the workers
//! whose source is not a sibling (the publisher's, or each edge worker's own pull from the
//! origin); its bytes out are what every worker queued for viewers. Connection and byte
//! totals count every socket, the loopback ones between workers included (they are real
//! work), and connections between workers have roles of their own (`sibling`,
//! `sibling_pull`).

use std::collections::BTreeMap;

use super::api::{StreamView, SummaryView};
use super::metrics::{MetricsView, StreamMetrics};

/// Every worker's streams as one list, sorted by app and name.
pub fn merge_streams(parts: Vec<Vec<StreamView>>) -> Vec<StreamView> {
    let mut merged: BTreeMap<(String, String), StreamView> = BTreeMap::new();
    for view in parts.into_iter().flatten() {
        let key = (view.app.clone(), view.name.clone());
        match merged.get_mut(&key) {
            None => {
                let mut first = view.clone();
                if is_from_sibling(&view) {
                    clear_source(&mut first);
                }
                first.upstreams.retain(|link| link.kind != "sibling");
                first.upstream = first.upstreams.first().cloned();
                merged.insert(key, first);
            }
            Some(sum) => add_stream(sum, view),
        }
    }
    merged.into_values().collect()
}

/// Whether a worker's view of a stream is a copy pulled from a sibling.
fn is_from_sibling(view: &StreamView) -> bool {
    view.upstreams.iter().any(|link| link.kind == "sibling")
}

/// Leaves out what a copy pulled from a sibling says about the source: the source's
/// worker says it.
fn clear_source(view: &mut StreamView) {
    view.bytes_in = 0;
    view.frames_in = 0;
    view.kbps_in = 0;
}

fn add_stream(sum: &mut StreamView, view: StreamView) {
    sum.live |= view.live;
    sum.players += view.players;
    sum.sibling_pulls += view.sibling_pulls;
    sum.bytes_out = sum.bytes_out.saturating_add(view.bytes_out);
    sum.kbps_out = sum.kbps_out.saturating_add(view.kbps_out);
    let copy = is_from_sibling(&view);
    if !copy {
        sum.bytes_in = sum.bytes_in.saturating_add(view.bytes_in);
        sum.frames_in = sum.frames_in.saturating_add(view.frames_in);
        sum.kbps_in = sum.kbps_in.saturating_add(view.kbps_in);
    }
    // The source's description comes from the worker that has the source.
    if view.publisher.is_some() || (!copy && sum.video_codec.is_none() && sum.audio_codec.is_none()) {
        sum.video_codec = view.video_codec.clone().or(sum.video_codec.take());
        sum.audio_codec = view.audio_codec.clone().or(sum.audio_codec.take());
        sum.width = view.width.or(sum.width);
        sum.height = view.height.or(sum.height);
        sum.gop_cache_ms = view.gop_cache_ms;
        sum.gop_cache_frames = view.gop_cache_frames;
    }
    if sum.publisher.is_none() {
        sum.publisher = view.publisher;
    }
    sum.upstreams.extend(view.upstreams.into_iter().filter(|link| link.kind != "sibling"));
    sum.upstream = sum.upstreams.first().cloned();
}

/// The relay's summary: the first part's identity (worker 0's node id and start), every
/// part's counts added up, and `streams` as counted across workers by the caller (a stream
/// on two workers is one).
pub fn merge_summary(parts: Vec<SummaryView>, streams: usize) -> Option<SummaryView> {
    let mut parts = parts.into_iter();
    let mut sum = parts.next()?;
    for part in parts {
        sum.connections += part.connections;
        sum.players += part.players;
        sum.publishers += part.publishers;
        sum.bytes_in = sum.bytes_in.saturating_add(part.bytes_in);
        sum.bytes_out = sum.bytes_out.saturating_add(part.bytes_out);
        sum.shutting_down |= part.shutting_down;
    }
    sum.streams = streams;
    Some(sum)
}

/// Every worker's metrics as one: counts added label by label, streams merged as in
/// [`merge_streams`]. The process figures and reload counts are the first part's (worker
/// 0 reads `/proc` for the whole process, and does the reloads).
pub fn merge_metrics(parts: Vec<MetricsView>) -> Option<MetricsView> {
    let mut parts = parts.into_iter();
    let mut sum = parts.next()?;
    let mut streams: BTreeMap<(String, String), StreamMetrics> = BTreeMap::new();
    for stream in std::mem::take(&mut sum.streams) {
        add_stream_metrics(&mut streams, stream);
    }
    for part in parts {
        sum.stats.add(&part.stats);
        add_counts(&mut sum.connections_by_role, &part.connections_by_role);
        add_counts(&mut sum.ended_by_role, &part.ended_by_role);
        add_counts(&mut sum.refused, &part.refused);
        add_counts(&mut sum.closed, &part.closed);
        add_counts(&mut sum.protocol_errors, &part.protocol_errors);
        add_counts(&mut sum.http_responses, &part.http_responses);
        add_counts(&mut sum.hook_decisions, &part.hook_decisions);
        add_counts(&mut sum.hook_notifications, &part.hook_notifications);
        add_counts(&mut sum.access_denials, &part.access_denials);
        sum.bytes_received = sum.bytes_received.saturating_add(part.bytes_received);
        sum.bytes_sent = sum.bytes_sent.saturating_add(part.bytes_sent);
        sum.upstream_reconnects = sum.upstream_reconnects.saturating_add(part.upstream_reconnects);
        sum.hook_pending = sum.hook_pending.saturating_add(part.hook_pending);
        for stream in part.streams {
            add_stream_metrics(&mut streams, stream);
        }
    }
    sum.streams = streams.into_values().collect();
    Some(sum)
}

fn add_stream_metrics(streams: &mut BTreeMap<(String, String), StreamMetrics>, stream: StreamMetrics) {
    let (bytes_in, frames_in) = if stream.from_sibling { (0, 0) } else { (stream.bytes_in, stream.frames_in) };
    let sum = streams.entry((stream.app.clone(), stream.name.clone())).or_insert_with(|| StreamMetrics {
        bytes_in: 0,
        frames_in: 0,
        bytes_out: 0,
        players: 0,
        live: false,
        from_sibling: false,
        ..stream.clone()
    });
    sum.players += stream.players;
    sum.live |= stream.live;
    sum.bytes_in = sum.bytes_in.saturating_add(bytes_in);
    sum.frames_in = sum.frames_in.saturating_add(frames_in);
    sum.bytes_out = sum.bytes_out.saturating_add(stream.bytes_out);
}

/// Adds `other`'s counts to `sum`'s, label by label, keeping them sorted by label.
fn add_counts<L: Copy + Ord>(sum: &mut Vec<(L, u64)>, other: &[(L, u64)]) {
    for (label, count) in other {
        match sum.binary_search_by(|(existing, _)| existing.cmp(label)) {
            Ok(index) => {
                if let Some((_, total)) = sum.get_mut(index) {
                    *total = total.saturating_add(*count);
                }
            }
            Err(index) => sum.insert(index, (*label, *count)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::http::{PublisherView, UpstreamView};

    fn stream(name: &str, players: usize, bytes_in: u64, bytes_out: u64) -> StreamView {
        StreamView {
            app: "live".into(),
            name: name.into(),
            live: true,
            publisher: None,
            players,
            sibling_pulls: 0,
            bytes_in,
            bytes_out,
            frames_in: bytes_in / 100,
            kbps_in: 0,
            kbps_out: 0,
            video_codec: None,
            audio_codec: None,
            width: None,
            height: None,
            gop_cache_ms: 0,
            gop_cache_frames: 0,
            upstream: None,
            upstreams: Vec::new(),
        }
    }

    fn link(kind: &'static str, target: &str) -> UpstreamView {
        UpstreamView { kind, target: target.into(), state: "playing", reconnects: 0 }
    }

    #[test]
    fn a_stream_pulled_between_workers_is_one_stream_with_every_viewer() {
        // Worker 0 has the publisher, two viewers and one sibling pulling; worker 1 has
        // three viewers and pulls from worker 0.
        let mut source = stream("cam", 2, 10_000, 20_000);
        source.sibling_pulls = 1;
        source.video_codec = Some("H264".into());
        source.width = Some(1280);
        source.gop_cache_frames = 50;
        source.publisher = Some(PublisherView {
            client_id: 3,
            ip: "10.0.0.9".into(),
            since: "x".into(),
            video_codec: Some("H264".into()),
            audio_codec: None,
            width: Some(1280),
            height: None,
            bytes_in: 10_000,
            kbps_in: 0,
        });
        let mut copy = stream("cam", 3, 10_000, 30_000);
        copy.upstreams = vec![link("sibling", "worker 0 (127.0.0.1:4000)")];
        copy.upstream = copy.upstreams.first().cloned();
        copy.video_codec = Some("H264".into());
        copy.gop_cache_frames = 49;
        let merged = merge_streams(vec![vec![copy, stream("other", 1, 5, 5)], vec![source]]);
        assert_eq!(merged.len(), 2);
        let cam = &merged[0];
        assert_eq!((cam.players, cam.sibling_pulls), (5, 1));
        assert_eq!((cam.bytes_in, cam.frames_in), (10_000, 100), "the copy's bytes in are not counted again");
        assert_eq!(cam.bytes_out, 50_000, "what every worker queued for viewers");
        assert_eq!(cam.publisher.as_ref().map(|p| p.client_id), Some(3));
        assert_eq!((cam.width, cam.gop_cache_frames), (Some(1280), 50), "the source's worker describes it");
        assert!(cam.upstreams.is_empty() && cam.upstream.is_none(), "links between workers are internal");
        assert_eq!(merged[1].name, "other");
    }

    #[test]
    fn edge_workers_each_pull_and_their_bytes_in_add_up() {
        let mut a = stream("s", 1, 700, 700);
        a.upstreams = vec![link("pull", "origin:1935")];
        let mut b = stream("s", 2, 600, 1200);
        b.upstreams = vec![link("pull", "origin:1935")];
        let merged = merge_streams(vec![vec![a], vec![b]]);
        assert_eq!((merged[0].players, merged[0].bytes_in, merged[0].upstreams.len()), (3, 1300, 2));
        assert_eq!(merged[0].upstream.as_ref().map(|l| l.kind), Some("pull"));
    }

    #[test]
    fn counts_add_up_label_by_label_and_stay_sorted() {
        let mut sum = vec![("b", 1), ("d", 2)];
        add_counts(&mut sum, &[("a", 5), ("b", 1), ("c", 0), ("e", 3)]);
        assert_eq!(sum, vec![("a", 5), ("b", 2), ("c", 0), ("d", 2), ("e", 3)]);
    }

    #[test]
    fn metrics_add_up_and_keep_the_first_parts_process_figures() {
        let stream = |players, bytes_in, from_sibling| StreamMetrics {
            app: "live".into(),
            name: "s".into(),
            players,
            live: true,
            bytes_in,
            bytes_out: 10,
            frames_in: 1,
            from_sibling,
        };
        let mut first = MetricsView { bytes_sent: 5, reloads: vec![("applied", 1)], ..MetricsView::default() };
        first.stats.players = 2;
        first.connections_by_role = vec![("player", 2), ("sibling", 1)];
        first.streams = vec![stream(2, 1000, false)];
        let mut second = MetricsView { bytes_sent: 7, reloads: vec![("applied", 1)], ..MetricsView::default() };
        second.stats.players = 4;
        second.connections_by_role = vec![("player", 4), ("sibling_pull", 1)];
        second.streams = vec![stream(4, 1000, true)];
        let merged = merge_metrics(vec![first, second]).unwrap();
        assert_eq!((merged.stats.players, merged.bytes_sent), (6, 12));
        assert_eq!(merged.connections_by_role, vec![("player", 6), ("sibling", 1), ("sibling_pull", 1)]);
        assert_eq!(merged.reloads, vec![("applied", 1)], "worker 0 does the reloads");
        assert_eq!(merged.streams.len(), 1);
        assert_eq!((merged.streams[0].players, merged.streams[0].bytes_in, merged.streams[0].bytes_out), (6, 1000, 20));
    }
}
