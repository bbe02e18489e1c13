//! What one hostile client can make the core hold with its requests (connect, commands,
//! names) rather than its media: each bound, and that honest requests still pass.

use std::time::Duration;

use bytes::Bytes;

use super::harness::{raw_commands, raw_video, test_config, Harness, PeerSession};
use crate::relay::access::{AccessConfig, MAX_FIELD_BYTES};
use crate::relay::core::input::VIA_PROPERTY;
use crate::relay::core::fanout::MAX_UNREAD_REPLY_BYTES;
use crate::relay::core::{CloseReason, ConnId};
use crate::relay::Config;
use crate::sessions::{ClientSession, ClientSessionConfig, MediaKind, PublishMode, RejectedRequestKind};
use crate::Amf0Value;

/// A relay whose hook is asked about every connect (and never answers by itself).
fn hooked() -> Config {
    let access = AccessConfig {
        hook_url: Some("http://127.0.0.1:9/hook".parse().unwrap()),
        hook_timeout: Duration::from_secs(3),
        ..AccessConfig::default()
    };
    Config { access, ..test_config() }
}

/// A client whose connect waits for the hook.
fn connect_waiting(h: &mut Harness) -> ConnId {
    let id = h.connect_client();
    h.peer(id).client().connect("live", "rtmp://127.0.0.1/live").unwrap();
    h.send_outbound(id);
    h.pump();
    assert_eq!(h.hooks.len(), 1, "the connect waits for the hook");
    id
}

// A client sent megabytes of media behind a connect that waited for the hook, and the
// session held up to 64 messages of up to 8 MiB each (512 MiB) until the answer came.
#[test]
fn media_behind_an_undecided_connect_is_not_held() {
    let mut h = Harness::new(hooked());
    let id = connect_waiting(&mut h);
    super::log_capture::start();
    h.send_raw(id, &raw_video(&vec![Bytes::from(vec![0x17; 60 * 1024]); 100]));
    h.pump();
    let warned: Vec<_> = super::log_capture::take().into_iter().filter(|(level, _)| *level == log::Level::Warn).collect();
    assert_eq!(warned.len(), 1, "dropped media is worth one warning per connection: {warned:?}");
    assert!(warned[0].1.contains("ignored message type 9: sent before connect was answered"), "{warned:?}");
    assert_eq!(h.peer(id).closed, None, "media before the connect is answered is dropped, not counted against it");
    // Commands are held, in order, up to a bound in bytes.
    // About 60 KB each: under the 64 KiB a connection may send before it publishes.
    let big = ("FCPublish", 0.0, 0, vec![Amf0Value::Utf8String("n".repeat(60_000))]);
    h.send_raw(id, &raw_commands(&[big.clone(), big.clone(), big.clone(), big.clone()]));
    h.pump();
    assert_eq!(h.peer(id).closed, None);
    h.send_raw(id, &raw_commands(&[big]));
    h.pump();
    assert_eq!(
        h.close_reason(id),
        Some(&CloseReason::ProtocolError(
            "peer sent more than 262144 bytes of commands before connect was answered".to_string()
        ))
    );
}

/// What the relay told `id` when it refused its request.
fn refusal(h: &mut Harness, id: ConnId) -> Option<(RejectedRequestKind, String)> {
    h.peer(id).client().rejection().map(|(kind, status)| (kind, status.description.clone()))
}

// Without a hook, any name was kept: a play of an 8 MiB name made a stream keyed by it for as
// long as the player waited (16 such plays per connection), and every log line about it
// carried it whole. A connect's rtmpEdgeVia of any length was kept for the connection's life
// and passed on to the origin.
#[test]
fn requests_with_a_field_past_the_limit_are_denied_hook_or_not() {
    let mut h = Harness::new(test_config());
    let long = "n".repeat(MAX_FIELD_BYTES + 1);
    let too_long = "Access denied: the request is too long to authorize.".to_string();
    for (publish, name) in [(false, long.clone()), (true, long.clone()), (false, format!("s?{long}"))] {
        let id = h.connect_client();
        let client = h.peer(id).client();
        client.connect("live", "rtmp://127.0.0.1/live").unwrap();
        if publish {
            client.request_publishing(&name, PublishMode::Live).unwrap();
        } else {
            client.request_playback(&name).unwrap();
        }
        h.send_outbound(id);
        h.pump();
        let kind = if publish { RejectedRequestKind::Publish } else { RejectedRequestKind::Play };
        assert_eq!(refusal(&mut h, id), Some((kind, too_long.clone())));
        assert!(h.peer(id).closed.is_some());
    }
    assert!(h.core.streams.is_empty(), "no stream is keyed by a name past the limit");
    let via = ClientSessionConfig {
        extra_connect_properties: vec![(VIA_PROPERTY.to_string(), Amf0Value::Utf8String(long.clone()))],
        ..ClientSessionConfig::default()
    };
    for (app, config) in [(long.as_str(), ClientSessionConfig::default()), ("live", via)] {
        let id = h.connect_client();
        h.peer(id).session = Some(PeerSession::Client(Box::new(ClientSession::new(config))));
        h.peer(id).client().connect(app, "rtmp://127.0.0.1/live").unwrap();
        h.send_outbound(id);
        h.pump();
        assert_eq!(refusal(&mut h, id), Some((RejectedRequestKind::Connect, too_long.clone())));
        assert!(h.peer(id).closed.is_some());
    }
    let denials = h.core.metrics_view().access_denials;
    let counted = |action| denials.iter().find(|(pair, _)| *pair == (action, "request_too_long")).map(|(_, count)| *count);
    assert_eq!((counted("connect"), counted("publish"), counted("play")), (Some(2), Some(1), Some(2)));
    // At the limit is still fine.
    let player = h.player("live", &"n".repeat(MAX_FIELD_BYTES));
    assert_eq!(refusal(&mut h, player), None);
    assert_eq!(h.core.streams.len(), 1);
}

// A client that sent commands and never read the answers was held only to the limits for
// media: one connection replaying play with a long name made the relay queue 32 MiB of
// answers (measured: 30 such connections took the relay to 529 MB).
#[test]
fn answers_a_client_leaves_unread_are_bounded_far_below_the_media_limits() {
    let mut h = Harness::new(test_config());
    let id = h.player("live", "s");
    h.peer(id).reading = false;
    // Each play replaces the last; its answers (Play.Reset, Play.Start) name the stream twice.
    let name = "n".repeat(MAX_FIELD_BYTES - 10);
    for round in 0..100 {
        h.send_raw(id, &raw_commands(&[("play", 0.0, 1, vec![Amf0Value::Utf8String(format!("{round:03}{name}"))])]));
        h.pump();
        if h.peer(id).closed.is_some() {
            break;
        }
    }
    let Some(CloseReason::NotReading { queued_bytes }) = h.close_reason(id).cloned() else {
        panic!("closed for not reading: {:?}", h.close_reason(id));
    };
    assert!((MAX_UNREAD_REPLY_BYTES..MAX_UNREAD_REPLY_BYTES + 20_000).contains(&queued_bytes), "{queued_bytes}");
    // A player that reads its answers is never cut for them.
    let reader = h.player("live", "s");
    for round in 0..100 {
        h.send_raw(reader, &raw_commands(&[("play", 0.0, 1, vec![Amf0Value::Utf8String(format!("{round:03}{name}"))])]));
        h.pump();
    }
    assert_eq!(h.peer(reader).closed, None);
}

// Every stream a player asked for was in /api/v1/streams and had five series in /metrics,
// published or not: anonymous players could add 16 of each per connection (measured: 2,000
// connections made /metrics 10 MB, rendered in 0.28 s on the loop's thread, per scrape).
#[test]
fn streams_only_players_asked_for_are_counted_but_not_listed() {
    let mut h = Harness::new(test_config());
    let players: Vec<ConnId> = ["a", "b", "c"].iter().map(|name| h.player("live", name)).collect();
    let names = |h: &Harness| h.core.stream_views().into_iter().map(|view| view.name).collect::<Vec<_>>();
    assert!(names(&h).is_empty());
    let metrics = h.core.metrics_view();
    assert_eq!((metrics.streams_open, metrics.streams.len()), (3, 0));
    // A published stream is listed, and stays listed while its players wait for it again.
    let publisher = h.publisher("live", "b");
    assert_eq!(names(&h), ["b"]);
    h.core.handle_closed(publisher, CloseReason::PeerClosed, h.now);
    h.pump();
    let views = h.core.stream_views();
    assert_eq!((views.len(), views[0].live, views[0].players), (1, false, 1));
    let metrics = h.core.metrics_view();
    assert_eq!((metrics.streams_open, metrics.streams.len()), (3, 1));
    // Its series go with the stream.
    h.core.handle_closed(players[1], CloseReason::PeerClosed, h.now);
    h.pump();
    assert!(names(&h).is_empty());
    assert_eq!(h.core.metrics_view().streams_open, 2);
}

// A connection that has not asked to publish sends commands only: a message past 64 KiB
// closes it. Before, any client could connect and hold most of an 8 MiB message per
// connection, trickling the rest to stay open (100 connections: 850 MB). Asking to
// publish raises the limit to max_message_size, for keyframes.
#[test]
fn large_messages_are_refused_until_a_connection_asks_to_publish() {
    use crate::relay::core::input::MAX_MESSAGE_BEFORE_PUBLISH;
    let mut h = Harness::new(test_config());
    let player = h.player("live", "s");
    h.send_raw(player, &raw_video(&[Bytes::from(vec![0x17; MAX_MESSAGE_BEFORE_PUBLISH as usize + 1])]));
    h.pump();
    assert_eq!(
        h.close_reason(player),
        Some(&CloseReason::ProtocolError(format!(
            "chunk stream error: message of {} bytes on chunk stream 20 exceeds the limit of {MAX_MESSAGE_BEFORE_PUBLISH}",
            MAX_MESSAGE_BEFORE_PUBLISH + 1
        )))
    );
    let publisher = h.publisher("live", "p");
    let keyframe = Bytes::from(vec![0x17; 1024 * 1024]);
    h.send_media(publisher, MediaKind::Video, 0, keyframe);
    h.pump();
    assert_eq!(h.peer(publisher).closed, None, "a publisher's 1 MiB keyframe is taken");
}
