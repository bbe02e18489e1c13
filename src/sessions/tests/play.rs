//! Playing: the request, media from the server, waiting for a publisher, refusals, and
//! the events a recorder turns into FLV tags.

use std::collections::HashMap;

use bytes::Bytes;

use super::*;
use crate::time::RtmpTimestamp;

#[test]
fn play_flow_then_media_from_the_server() {
    let mut pair = Pair::new(Policy::AcceptAll);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.client.request_playback("stream?token=t").unwrap();
    pair.run();
    let play = pair.server_events.iter().find_map(|event| match event {
        ServerSessionEvent::PlayRequested { stream_name, stream_id, start, .. } => Some((stream_name.clone(), *stream_id, *start)),
        _ => None,
    });
    assert_eq!(play, Some(("stream?token=t".to_string(), 1, -2000.0)));
    assert!(pair.client_events.contains(&ClientSessionEvent::StreamBegin { stream_id: 1 }));
    assert!(pair.client_events.contains(&ClientSessionEvent::PlaybackStarted { stream_id: 1, stream_name: "stream?token=t".into() }));

    pair.client_events.clear();
    let frame = Bytes::from(vec![0x27u8; 9000]);
    pair.server.send_media(1, MediaKind::Video, RtmpTimestamp::new(0x0100_0000), frame.clone()).unwrap();
    pair.server.notify_publish_stopped(1, "stream").unwrap();
    pair.run();
    assert_eq!(
        pair.client_events[0],
        ClientSessionEvent::MediaReceived { stream_id: 1, kind: MediaKind::Video, timestamp: RtmpTimestamp::new(0x0100_0000), data: frame }
    );
    assert!(matches!(&pair.client_events[1], ClientSessionEvent::StatusReceived { stream_id: 1, status } if status.code == codes::PLAY_UNPUBLISH_NOTIFY));
}

#[test]
fn rejected_play_gives_stream_not_found() {
    let mut pair = Pair::new(Policy::RejectPlay);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.client.request_playback("missing").unwrap();
    pair.run();
    assert!(pair.client_events.iter().any(|event| matches!(
        event,
        ClientSessionEvent::RequestRejected { kind: RejectedRequestKind::Play, status } if status.code == codes::PLAY_STREAM_NOT_FOUND
    )));
}

#[test]
fn play_with_a_url_connects_to_its_app_and_plays_its_stream() {
    let mut pair = Pair::new(Policy::AcceptAll);
    let url = crate::url::RtmpUrl::parse("rtmp://127.0.0.1/live/cam/1?token=t").unwrap();
    pair.client.play(&url).unwrap();
    pair.run();
    let ServerSessionEvent::ConnectionRequested { request, .. } = &pair.server_events[0] else {
        panic!("expected connect first, got {:?}", pair.server_events[0]);
    };
    assert_eq!((request.app.as_str(), request.query.as_deref()), ("live", None));
    assert_eq!(request.tc_url.as_deref(), Some("rtmp://127.0.0.1:1935/live"));
    assert!(pair.server_events.iter().any(
        |event| matches!(event, ServerSessionEvent::PlayRequested { stream_name, .. } if stream_name == "cam/1?token=t")
    ));
    // StreamBegin came before Play.Start: the stream is live, nobody waits.
    let starts: Vec<_> = pair
        .client_events
        .iter()
        .filter(|event| {
            matches!(
                event,
                ClientSessionEvent::StreamBegin { .. }
                    | ClientSessionEvent::PlaybackStarted { .. }
                    | ClientSessionEvent::WaitingForPublisher { .. }
            )
        })
        .cloned()
        .collect();
    assert_eq!(
        starts,
        vec![
            ClientSessionEvent::StreamBegin { stream_id: 1 },
            ClientSessionEvent::PlaybackStarted { stream_id: 1, stream_name: "cam/1?token=t".into() },
        ]
    );
}

#[test]
fn a_url_without_a_stream_sends_nothing() {
    let mut client = ClientSession::new(ClientSessionConfig::default());
    let url = crate::url::RtmpUrl::parse("rtmp://127.0.0.1/live").unwrap();
    assert_eq!(client.play(&url), Err(SessionError::NoStreamName));
    assert_eq!(client.publish(&url, PublishMode::Live), Err(SessionError::NoStreamName));
    assert!(!client.has_outbound());
    // Nothing was half done: the client can still connect.
    client.connect("live", "rtmp://127.0.0.1/live").unwrap();
}

#[test]
fn a_play_accepted_before_its_publisher_says_it_waits() {
    let mut pair = Pair::new(Policy::AcceptPlayWaiting);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.client.request_playback("later").unwrap();
    pair.run();
    let stream_events = |events: &[ClientSessionEvent]| -> Vec<String> {
        events
            .iter()
            .filter_map(|event| match event {
                ClientSessionEvent::StreamBegin { .. } => Some("StreamBegin".to_string()),
                ClientSessionEvent::PlaybackStarted { .. } => Some("PlaybackStarted".to_string()),
                ClientSessionEvent::WaitingForPublisher { stream_id: 1, stream_name } => Some(format!("Waiting {stream_name}")),
                ClientSessionEvent::StatusReceived { status, .. } => Some(status.code.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(stream_events(&pair.client_events), [codes::PLAY_RESET, "PlaybackStarted", "Waiting later"]);

    pair.client_events.clear();
    pair.server.notify_publish_started(1, "later").unwrap();
    pair.server.send_media(1, MediaKind::Audio, RtmpTimestamp::new(5), Bytes::from_static(b"\xaf\x01x")).unwrap();
    pair.run();
    assert_eq!(stream_events(&pair.client_events), ["StreamBegin", codes::PLAY_PUBLISH_NOTIFY]);
    assert!(matches!(pair.client_events.last(), Some(ClientSessionEvent::MediaReceived { kind: MediaKind::Audio, .. })));

    pair.client_events.clear();
    pair.server.notify_publish_stopped(1, "later").unwrap();
    pair.run();
    assert_eq!(stream_events(&pair.client_events), [codes::PLAY_UNPUBLISH_NOTIFY, "Waiting later"]);
}

#[test]
fn accept_play_waiting_answers_only_plays() {
    let mut server = ServerSession::new(ServerSessionConfig::default());
    let mut client = ClientSession::new(ClientSessionConfig::default());
    client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    server.handle_input(&client.take_outbound()).unwrap();
    let Some(ServerSessionEvent::ConnectionRequested { request_id, .. }) = server.poll_event() else {
        panic!("no connect request");
    };
    assert_eq!(server.accept_play_waiting(request_id), Err(SessionError::WrongRequestKind(request_id)));
    assert_eq!(server.accept_play_waiting(request_id + 100), Err(SessionError::UnknownRequest(request_id + 100)));
    // Still pending, so it can be answered properly.
    server.accept_request(request_id).unwrap();
}

#[test]
fn a_refusal_is_kept_for_callers_that_missed_the_event() {
    let mut pair = Pair::new(Policy::RejectPlay);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    assert_eq!(pair.client.rejection(), None);
    pair.client.request_playback("missing").unwrap();
    pair.run();
    let (kind, status) = pair.client.rejection().unwrap();
    assert_eq!((kind, status.code.as_str()), (RejectedRequestKind::Play, codes::PLAY_STREAM_NOT_FOUND));
}

#[test]
fn client_events_become_the_flv_tags_a_recorder_writes() {
    use crate::flv::{FlvTag, FlvTagType};
    let metadata = StreamMetadata { raw: Bytes::from_static(b"\x02\x00\x0aonMetaData\x05"), properties: HashMap::new() };
    let event = ClientSessionEvent::MetadataReceived { stream_id: 1, timestamp: RtmpTimestamp::new(7), metadata };
    assert_eq!(
        event.to_flv_tag(),
        Some(FlvTag {
            tag_type: FlvTagType::Script,
            timestamp: RtmpTimestamp::new(7),
            data: Bytes::from_static(b"\x02\x00\x0aonMetaData\x05")
        })
    );
    let event = ClientSessionEvent::MediaReceived {
        stream_id: 1,
        kind: MediaKind::Video,
        timestamp: RtmpTimestamp::new(9),
        data: Bytes::from_static(b"\x27\x01"),
    };
    assert_eq!(
        event.to_flv_tag(),
        Some(FlvTag { tag_type: FlvTagType::Video, timestamp: RtmpTimestamp::new(9), data: Bytes::from_static(b"\x27\x01") })
    );
    assert_eq!(ClientSessionEvent::StreamBegin { stream_id: 1 }.to_flv_tag(), None);
    for kind in [MediaKind::Audio, MediaKind::Video, MediaKind::Data] {
        assert_eq!(MediaKind::from(FlvTagType::from(kind)), kind);
        assert_eq!(FlvTagType::from(kind).type_id(), media_chunk_stream(kind).1);
    }
}

// A relay tells a publisher's leaving with StreamDry (UnpublishNotify ends ffmpeg and
// librtmp players); the client reports it, and StreamBegin when the next publisher starts.
#[test]
fn stream_dry_from_the_server_reaches_the_client_and_stream_begin_ends_it() {
    let mut pair = Pair::new(Policy::AcceptAll);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.client.request_playback("s").unwrap();
    pair.run();
    pair.client_events.clear();

    pair.server.send_stream_dry(1).unwrap();
    pair.run();
    assert_eq!(pair.client_events, [ClientSessionEvent::StreamDry { stream_id: 1 }]);

    pair.client_events.clear();
    pair.server.send_stream_begin(1).unwrap();
    pair.server.send_media(1, MediaKind::Audio, RtmpTimestamp::new(40), Bytes::from_static(b"\xaf\x01z")).unwrap();
    pair.run();
    assert_eq!(
        pair.client_events,
        [
            ClientSessionEvent::StreamBegin { stream_id: 1 },
            ClientSessionEvent::MediaReceived {
                stream_id: 1,
                kind: MediaKind::Audio,
                timestamp: RtmpTimestamp::new(40),
                data: Bytes::from_static(b"\xaf\x01z"),
            },
        ]
    );
}
