//! Edge links: failover deadlines, backoff, the opener's query, shutdown, stale ids.

use std::net::SocketAddr;
use std::time::Duration;

use super::harness::{keyframe, test_config, Harness};
use crate::relay::core::CloseReason;
use crate::relay::Config;
use crate::sessions::{ClientSessionEvent, MediaKind, ServerSessionEvent};

fn edge_config(origins: &[&str]) -> Config {
    Config { origins: origins.iter().map(|o| o.to_string()).collect(), pull_linger: Duration::from_secs(1), ..test_config() }
}

fn origin_of(h: &Harness, index: usize) -> SocketAddr {
    h.connects[index].1
}

// Defect 6: a first origin that accepts TCP and never answers held a waiting player for
// about 11 s. Each stage now has its own deadline, and the defaults leave it in under 5 s.
#[test]
fn a_silent_first_origin_is_left_within_five_seconds() {
    let mut h = Harness::new(edge_config(&["10.0.0.1:1935", "10.0.0.2:1935"]));
    let start = h.now;
    let player = h.player("live", "s");
    assert_eq!(h.connects.len(), 1);
    assert_eq!(origin_of(&h, 0), "10.0.0.1:1935".parse().unwrap());
    let first = h.connects[0].0;
    // The silent origin completes the handshake and never answers connect.
    h.accept_upstream_as(first, true, false);
    assert!(h.advance_until(Duration::from_secs(10), |h| h.connects.len() == 2));
    let failed_over = h.connects[1].2 - start;
    assert!(failed_over < Duration::from_secs(5), "second origin tried after {failed_over:?}");
    assert_eq!(origin_of(&h, 1), "10.0.0.2:1935".parse().unwrap());
    assert!(matches!(h.close_reason(first), Some(CloseReason::UpstreamStageTimeout { .. })));
    let second = h.connects[1].0;
    h.accept_upstream(second);
    let publisher_side = second;
    assert!(h.peer(publisher_side).origin_events.iter().any(|e| matches!(e, ServerSessionEvent::PlayRequested { .. })));
    assert!(h.peer(player).closed.is_none());
}

#[test]
fn each_upstream_stage_has_its_own_deadline() {
    let config = Config {
        upstream_connect_timeout: Duration::from_millis(700),
        upstream_handshake_timeout: Duration::from_millis(900),
        upstream_reply_timeout: Duration::from_millis(1100),
        ..edge_config(&["10.0.0.1:1935"])
    };
    let mut h = Harness::new(config);
    h.player("live", "s");
    // 1. TCP never connects.
    let stage_start = h.now;
    assert!(h.advance_until(Duration::from_secs(3), |h| !h.closes.is_empty()));
    let (_, reason, at) = h.closes[0].clone();
    assert_eq!(reason, CloseReason::UpstreamStageTimeout { stage: "TCP connect", after: Duration::from_millis(700) });
    assert!(at - stage_start >= Duration::from_millis(700) && at - stage_start < Duration::from_millis(1000));
    // 2. Connected, no handshake answer (the origin does not read).
    assert!(h.advance_until(Duration::from_secs(5), |h| h.connects.len() == 2));
    let second = h.connects[1].0;
    h.accept_upstream_as(second, false, false);
    let stage_start = h.now;
    assert!(h.advance_until(Duration::from_secs(3), |h| h.closes.len() == 2));
    assert_eq!(h.closes[1].1, CloseReason::UpstreamStageTimeout { stage: "handshake", after: Duration::from_millis(900) });
    assert!(h.closes[1].2 - stage_start < Duration::from_millis(1200));
    // 3. Handshake done, connect never answered.
    assert!(h.advance_until(Duration::from_secs(5), |h| h.connects.len() == 3));
    let third = h.connects[2].0;
    h.accept_upstream_as(third, true, false);
    let stage_start = h.now;
    assert!(h.advance_until(Duration::from_secs(3), |h| h.closes.len() == 3));
    assert_eq!(
        h.closes[2].1,
        CloseReason::UpstreamStageTimeout { stage: "connect and play/publish replies", after: Duration::from_millis(1100) }
    );
    assert!(h.closes[2].2 - stage_start < Duration::from_millis(1400));
}

#[test]
fn backoff_moves_through_the_origins_and_comes_back_to_the_first() {
    let mut h = Harness::new(edge_config(&["10.0.0.1:1935", "10.0.0.2:1935"]));
    h.player("live", "s");
    for attempt in 0..4 {
        assert!(h.advance_until(Duration::from_secs(60), |h| h.connects.len() > attempt));
        let (id, _, _) = h.connects[attempt];
        h.core.handle_closed(id, CloseReason::ConnectFailed("refused".into()), h.now);
        h.pump();
    }
    let order: Vec<String> = h.connects.iter().take(4).map(|(_, addr, _)| addr.ip().to_string()).collect();
    assert_eq!(order, ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2"]);
    let gaps: Vec<Duration> = h.connects.windows(2).take(3).map(|pair| pair[1].2 - pair[0].2).collect();
    assert!(gaps[0] >= Duration::from_millis(500) && gaps[1] >= Duration::from_millis(1000) && gaps[2] >= Duration::from_millis(2000), "{gaps:?}");
}

#[test]
fn host_names_are_resolved_by_the_driver_not_in_the_core() {
    let mut h = Harness::new(edge_config(&["origin.example:1940"]));
    h.player("live", "s");
    assert!(h.connects.is_empty());
    assert_eq!(h.resolves.len(), 1);
    let (id, host, port) = h.resolves[0].clone();
    assert_eq!((host.as_str(), port), ("origin.example", 1940));
    h.core.handle_resolved(id, Ok(vec!["[::1]:1940".parse().unwrap(), "10.1.1.1:1940".parse().unwrap()]), h.now);
    h.pump();
    assert_eq!(h.connects[0].1, "10.1.1.1:1940".parse().unwrap(), "IPv4 first");
}

// A pull carried the query of whichever player was first at the time of a reconnect.
#[test]
fn a_pull_keeps_the_openers_query_across_reconnects() {
    let mut h = Harness::new(edge_config(&["10.0.0.1:1935"]));
    let opener = h.player("live", "s?token=first");
    let other = h.player("live", "s?token=second");
    let first = h.connects[0].0;
    h.accept_upstream(first);
    let played = |h: &mut Harness, id| {
        h.peer(id)
            .origin_events
            .iter()
            .find_map(|e| match e {
                ServerSessionEvent::PlayRequested { stream_name, .. } => Some(stream_name.clone()),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(played(&mut h, first), "s?token=first");
    // The opener leaves; the origin connection drops; the pull reconnects for `other`.
    h.core.handle_closed(opener, CloseReason::PeerClosed, h.now);
    h.core.handle_closed(first, CloseReason::PeerClosed, h.now);
    h.pump();
    assert!(h.advance_until(Duration::from_secs(5), |h| h.connects.len() == 2));
    let second = h.connects[1].0;
    h.accept_upstream(second);
    assert_eq!(played(&mut h, second), "s?token=first");
    assert!(h.peer(other).closed.is_none());
}

// Defect 5: during shutdown, pulls kept reconnecting.
#[test]
fn no_upstream_connections_are_made_during_shutdown() {
    let mut h = Harness::new(edge_config(&["10.0.0.1:1935"]));
    h.player("live", "s");
    let first = h.connects[0].0;
    h.core.handle_closed(first, CloseReason::ConnectFailed("refused".into()), h.now);
    h.pump();
    h.core.begin_shutdown(h.now);
    h.advance(Duration::from_secs(10));
    assert_eq!(h.connects.len(), 1);
    assert!(h.stopped);
    assert_eq!(h.core.connection_count(), 0);
}

// Defect 8: a stale id in the close list closed a fresh upstream that reused the slot.
#[test]
fn a_stale_id_never_reaches_the_connection_that_reused_its_slot() {
    let mut h = Harness::new(edge_config(&["10.0.0.1:1935"]));
    let player = h.player("live", "s");
    let old = h.connects[0].0;
    h.core.handle_closed(old, CloseReason::ConnectFailed("refused".into()), h.now);
    h.pump();
    assert!(h.advance_until(Duration::from_secs(5), |h| h.connects.len() == 2));
    let fresh = h.connects[1].0;
    assert_eq!(old.index(), fresh.index(), "the slot was reused");
    // Anything still naming the old id (a late driver event) does nothing.
    h.core.handle_closed(old, CloseReason::PeerClosed, h.now);
    h.core.handle_input(old, b"junk", h.now);
    h.core.handle_written(old, 100, h.now);
    h.pump();
    assert!(h.core.is_open(fresh));
    h.accept_upstream(fresh);
    assert!(h.peer(fresh).origin_events.iter().any(|e| matches!(e, ServerSessionEvent::PlayRequested { .. })));
    assert!(h.peer(player).closed.is_none());
}

/// An origin tells a publisher restart with StreamEOF (nginx-rtmp) or StreamDry (rtmp-edge);
/// either way the edge's players are told with StreamDry, stay, and resume.
fn origin_restart_reaches_edge_players(origin_says: fn(&mut crate::sessions::ServerSession, u32) -> Result<(), crate::sessions::SessionError>) {
    let mut h = Harness::new(edge_config(&["10.0.0.1:1935"]));
    let player = h.player("live", "s");
    let upstream = h.connects[0].0;
    h.accept_upstream(upstream);
    // The origin's publisher sends a keyframe, leaves, and a new one starts.
    let send_media = |h: &mut Harness, timestamp: u32| {
        if let Some(super::harness::PeerSession::Origin(session)) = &mut h.peer(upstream).session {
            session.send_media(1, MediaKind::Video, crate::time::RtmpTimestamp::new(timestamp), keyframe(40)).unwrap();
        }
        h.send_outbound(upstream);
        h.pump();
    };
    send_media(&mut h, 5000);
    if let Some(super::harness::PeerSession::Origin(session)) = &mut h.peer(upstream).session {
        origin_says(session, 1).unwrap();
    }
    h.send_outbound(upstream);
    h.pump();
    assert_eq!(h.stats().pulls_live, 0);
    if let Some(super::harness::PeerSession::Origin(session)) = &mut h.peer(upstream).session {
        session.send_stream_begin(1).unwrap();
    }
    h.send_outbound(upstream);
    h.pump();
    assert_eq!(h.stats().pulls_live, 1);
    send_media(&mut h, 0);
    let peer = h.peer(player);
    assert_eq!(peer.count_events(|e| matches!(e, ClientSessionEvent::StreamDry { .. })), 1);
    assert_eq!(peer.count_events(|e| matches!(e, ClientSessionEvent::StreamEof { .. })), 0);
    assert_eq!(peer.media().iter().map(|m| m.1).collect::<Vec<_>>(), vec![5000, 5040]);
    assert!(peer.closed.is_none());
    assert!(h.core.is_open(upstream), "the pull stays connected across the restart");
}

#[test]
fn an_nginx_origins_stream_eof_reaches_edge_players_as_stream_dry() {
    origin_restart_reaches_edge_players(crate::sessions::ServerSession::send_stream_eof);
}

#[test]
fn an_rtmp_edge_origins_stream_dry_reaches_edge_players_as_stream_dry() {
    origin_restart_reaches_edge_players(crate::sessions::ServerSession::send_stream_dry);
}

/// The tcUrl each upstream connection sent in `connect`, in connection order.
fn upstream_tc_urls(h: &mut Harness) -> Vec<String> {
    let ids: Vec<_> = h.connects.iter().map(|(id, _, _)| *id).collect();
    let mut tc_urls = Vec::new();
    for id in ids {
        for event in &h.peer(id).origin_events {
            if let ServerSessionEvent::ConnectionRequested { request, .. } = event {
                tc_urls.push(request.tc_url.clone().unwrap_or_default());
            }
        }
    }
    tc_urls
}

// The tcUrl was written by hand as rtmp://: it now comes from rtmp_edge::url, so a push
// target keeps its own scheme and an IPv6 origin its brackets.
#[test]
fn upstream_tc_urls_keep_the_targets_scheme_and_bracket_ipv6_hosts() {
    let push = crate::url::RtmpUrl::parse("rtmps://10.0.0.9/ingest").unwrap();
    let mut h = Harness::new(Config { push: vec![push], ..test_config() });
    h.publisher("live", "s");
    assert_eq!(origin_of(&h, 0), "10.0.0.9:443".parse().unwrap());
    let pushed = h.connects[0].0;
    h.accept_upstream(pushed);
    assert_eq!(upstream_tc_urls(&mut h), ["rtmps://10.0.0.9:443/ingest"]);

    let mut h = Harness::new(edge_config(&["[::1]:1940"]));
    h.player("live", "s");
    assert_eq!(origin_of(&h, 0), "[::1]:1940".parse().unwrap());
    let pulled = h.connects[0].0;
    h.accept_upstream(pulled);
    assert_eq!(upstream_tc_urls(&mut h), ["rtmp://[::1]:1940/live"]);
}

// Found by the relay_core fuzz target: a forward whose publisher stopped is let go by its
// link before it closes, and the close then took it for an accepted connection and
// uncounted it from its address. With the origin on a client's address (a co-located origin,
// or loopback), that address could open more connections than max_connections_per_ip.
#[test]
fn a_forward_let_go_of_by_its_link_is_not_uncounted_from_a_clients_address() {
    let config = Config { max_connections_per_ip: 2, ..edge_config(&["127.0.0.1:1935"]) };
    let mut h = Harness::new(config);
    let publisher = h.publisher("live", "s");
    assert_eq!(origin_of(&h, 0), "127.0.0.1:1935".parse().unwrap());
    let forward = h.connects[0].0;
    h.accept_upstream(forward);
    let _player = h.connect_client();
    h.core.handle_closed(publisher, CloseReason::PeerClosed, h.now);
    h.pump();
    assert_eq!(h.close_reason(forward), Some(&CloseReason::PublisherStopped));
    // The player is the one connection open from 127.0.0.1: one more fits, then no more.
    let address: SocketAddr = "127.0.0.1:50001".parse().unwrap();
    assert!(h.core.accept(address, crate::relay::ListenerKind::Rtmp, h.now).is_ok());
    assert_eq!(
        h.core.accept(address, crate::relay::ListenerKind::Rtmp, h.now),
        Err(crate::relay::Refusal::TooManyFromAddress { ip: address.ip(), max: 2 })
    );
}

// Found by the relay_core fuzz target: a forward's queue was held to the byte limit only, so
// an origin that stopped reading let the relay queue entry after entry past
// queue_hard_limit_entries until the next tick. Every queue is now held to both limits at
// the end of each input.
#[test]
fn a_forward_that_stops_reading_is_held_to_the_entry_limit_at_once() {
    let config = Config { queue_hard_limit_entries: 20, ..edge_config(&["127.0.0.1:1935"]) };
    let mut h = Harness::new(config);
    let publisher = h.publisher("live", "s");
    let forward = h.connects[0].0;
    h.accept_upstream(forward);
    h.send_media(publisher, MediaKind::Video, 0, keyframe(100));
    h.pump();
    assert_eq!(h.core.queue_size(forward), Some((0, 0)), "the origin took the keyframe");
    h.peer(forward).reading = false;
    for timestamp in 1..=40 {
        h.send_media(publisher, MediaKind::Video, timestamp, keyframe(20));
        h.pump();
        if let Some((_, entries)) = h.core.queue_size(forward) {
            assert!(entries <= 20, "{entries} entries queued for the forward");
        }
    }
    assert!(matches!(h.close_reason(forward), Some(CloseReason::UpstreamTooSlow { .. })), "{:?}", h.close_reason(forward));
}

// Empty messages from an origin were counted as media arriving, which reset the link's
// backoff: an origin that answered play with nothing but empty messages was retried at the
// shortest delay forever. They are now left out first, counted, and logged once per link.
#[test]
fn empty_media_from_an_origin_is_not_media_arriving() {
    let mut h = Harness::new(edge_config(&["10.0.0.1:1935"]));
    let player = h.player("live", "s");
    let first = h.connects[0].0;
    h.core.handle_closed(first, CloseReason::ConnectFailed("refused".into()), h.now);
    h.pump();
    assert!(h.advance_until(Duration::from_secs(5), |h| h.connects.len() == 2));
    let second = h.connects[1].0;
    h.accept_upstream(second);
    assert_eq!(h.stats().pulls_live, 1);
    for kind in [MediaKind::Video, MediaKind::Audio, MediaKind::Video] {
        if let Some(super::harness::PeerSession::Origin(session)) = &mut h.peer(second).session {
            session.send_media(1, kind, crate::time::RtmpTimestamp::new(0), bytes::Bytes::new()).unwrap();
        }
        h.send_outbound(second);
        h.pump();
    }
    assert_eq!(h.stats().media_ignored, 3);
    let key = crate::relay::StreamKey::new("live", "s");
    let link = h.core.streams[&key].pull.as_ref().unwrap();
    assert!(!link.media_flowing, "empty messages counted as media arriving");
    assert!(link.ignored_media_logged, "the first one is logged, once for the link");
    assert!(h.peer(player).media().is_empty());
    // The second failure in a row waits twice the first one's 0.5 s (plus jitter).
    let closed_at = h.now;
    h.core.handle_closed(second, CloseReason::PeerClosed, h.now);
    h.pump();
    assert!(h.advance_until(Duration::from_secs(5), |h| h.connects.len() == 3));
    let waited = h.connects[2].2 - closed_at;
    assert!(waited >= Duration::from_millis(1000), "backoff was reset: retried after {waited:?}");
}

// The in-process test checks that an unwatched pull closes; how long it lingers first is
// checked here, on the fake clock (edge_config's linger is 1 s, the tick 250 ms).
#[test]
fn an_unwatched_pull_lingers_for_its_time_then_closes() {
    let mut h = Harness::new(edge_config(&["10.0.0.1:1935"]));
    let player = h.player("live", "s");
    let upstream = h.connects[0].0;
    h.accept_upstream(upstream);
    let left = h.now;
    h.core.handle_closed(player, CloseReason::PeerClosed, h.now);
    h.pump();
    h.advance(Duration::from_millis(990));
    assert!(h.core.is_open(upstream), "closed before its linger");
    assert!(h.advance_until(Duration::from_secs(2), |h| h.close_reason(upstream).is_some()));
    assert_eq!(h.close_reason(upstream), Some(&CloseReason::PullUnwatched));
    let lingered = h.closes.iter().find(|(id, _, _)| *id == upstream).map(|(_, _, at)| *at - left).unwrap();
    assert!(lingered >= Duration::from_secs(1) && lingered <= Duration::from_millis(1250), "lingered {lingered:?}");
    assert_eq!(h.stats().pulls, 0);
}

// An edge marked its pull live at Play.Start even when the origin's stream had no
// publisher yet (Play.Start without StreamBegin): players that joined later were told
// StreamBegin at once, those already waiting at the pull's start, and none when the
// origin's publisher really started. The pull now goes live when the origin says so.
#[test]
fn a_pull_goes_live_when_the_origin_says_so_not_at_play_start() {
    let mut h = Harness::new(edge_config(&["10.0.0.1:1935"]));
    let first = h.player("live", "s");
    let upstream = h.connects[0].0;
    h.accept_upstream_waiting(upstream);
    let begins = |h: &mut Harness, id| h.peer(id).count_events(|e| matches!(e, ClientSessionEvent::StreamBegin { .. }));
    assert!(h.peer(upstream).origin_events.iter().any(|e| matches!(e, ServerSessionEvent::PlayRequested { .. })));
    assert_eq!(h.stats().pulls_live, 0, "not live before the origin's StreamBegin");
    let second = h.player("live", "s");
    assert_eq!((begins(&mut h, first), begins(&mut h, second)), (0, 0), "nothing is live yet");
    if let Some(super::harness::PeerSession::Origin(session)) = &mut h.peer(upstream).session {
        session.send_stream_begin(1).unwrap();
        session.send_media(1, MediaKind::Video, crate::time::RtmpTimestamp::new(0), keyframe(40)).unwrap();
    }
    h.send_outbound(upstream);
    h.pump();
    assert_eq!(h.stats().pulls_live, 1);
    for player in [first, second] {
        assert_eq!(begins(&mut h, player), 1, "StreamBegin when the origin's publisher starts");
        assert_eq!(h.peer(player).media().len(), 1);
    }
}

// Not every server sends StreamBegin: media from a playing origin makes the pull live.
#[test]
fn media_from_an_origin_that_never_says_stream_begin_makes_the_pull_live() {
    let mut h = Harness::new(edge_config(&["10.0.0.1:1935"]));
    let player = h.player("live", "s");
    let upstream = h.connects[0].0;
    h.accept_upstream_waiting(upstream);
    assert_eq!(h.stats().pulls_live, 0);
    if let Some(super::harness::PeerSession::Origin(session)) = &mut h.peer(upstream).session {
        session.send_media(1, MediaKind::Video, crate::time::RtmpTimestamp::new(0), keyframe(40)).unwrap();
    }
    h.send_outbound(upstream);
    h.pump();
    assert_eq!(h.stats().pulls_live, 1);
    assert_eq!(h.peer(player).media().len(), 1);
}
