//! Publishing: the request, media and metadata in order, stopping, refusals, FLV tags.

use std::collections::HashMap;

use bytes::Bytes;

use super::*;
use crate::time::RtmpTimestamp;
use crate::Amf0Value;

#[test]
fn publish_flow_keeps_the_query_and_starts() {
    let pair = published_pair();
    let publish = pair
        .server_events
        .iter()
        .find_map(|event| match event {
            ServerSessionEvent::PublishRequested { app, stream_name, stream_id, mode, .. } => {
                Some((app.clone(), stream_name.clone(), *stream_id, *mode))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(publish, ("live".to_string(), "stream?key=abc".to_string(), 1, PublishMode::Live));
    assert!(pair.client_events.contains(&ClientSessionEvent::PublishStarted {
        stream_id: 1,
        stream_name: "stream?key=abc".into()
    }));
}

#[test]
fn media_and_metadata_arrive_in_order_with_their_timestamps() {
    let mut pair = published_pair();
    pair.server_events.clear();
    let mut metadata = HashMap::new();
    metadata.insert("width".to_string(), Amf0Value::Number(320.0));
    pair.client.publish_metadata(metadata.clone()).unwrap();
    let video: Vec<Bytes> = (0..5u8).map(|i| { let mut frame = vec![i; 1000]; frame[..5].copy_from_slice(&[0x17, 1, 0, 0, 0]); Bytes::from(frame) }).collect();
    for (i, frame) in video.iter().enumerate() {
        pair.client.publish_media(MediaKind::Video, RtmpTimestamp::new(i as u32 * 40), frame.clone()).unwrap();
        pair.client.publish_media(MediaKind::Audio, RtmpTimestamp::new(i as u32 * 40 + 3), Bytes::from_static(b"\xaf\x01ab")).unwrap();
    }
    pair.run();
    let ServerSessionEvent::MetadataReceived { metadata: received, .. } = &pair.server_events[0] else {
        panic!("expected metadata first, got {:?}", pair.server_events[0]);
    };
    assert_eq!(received.properties, metadata);
    assert!(received.raw.starts_with(b"\x02\x00\x0aonMetaData"));
    let media: Vec<(MediaKind, u32, Bytes)> = pair.server_events[1..]
        .iter()
        .filter_map(|event| match event {
            ServerSessionEvent::MediaReceived { kind, timestamp, data, stream_id: 1 } => {
                Some((*kind, timestamp.value(), data.clone()))
            }
            _ => None,
        })
        .collect();
    let mut expected = Vec::new();
    for (i, frame) in video.iter().enumerate() {
        expected.push((MediaKind::Video, i as u32 * 40, frame.clone()));
        expected.push((MediaKind::Audio, i as u32 * 40 + 3, Bytes::from_static(b"\xaf\x01ab")));
    }
    assert_eq!(media, expected);
}

#[test]
fn stop_finishes_the_publish() {
    let mut pair = published_pair();
    pair.client.stop().unwrap();
    pair.run();
    assert!(pair.server_events.contains(&ServerSessionEvent::PublishFinished {
        app: "live".into(),
        stream_name: "stream?key=abc".into(),
        stream_id: 1
    }));
}

#[test]
fn rejected_publish_gives_bad_name() {
    let mut pair = Pair::new(Policy::RejectPublish);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.client.request_publishing("taken", PublishMode::Live).unwrap();
    pair.run();
    assert!(pair.client_events.iter().any(|event| matches!(
        event,
        ClientSessionEvent::RequestRejected { kind: RejectedRequestKind::Publish, status } if status.code == codes::PUBLISH_BAD_NAME
    )));
    assert!(pair.client.publish_media(MediaKind::Video, RtmpTimestamp::ZERO, Bytes::new()).is_err());
}

#[test]
fn publish_with_a_url_sends_the_query_with_the_stream_name() {
    let mut pair = Pair::new(Policy::AcceptAll);
    let url = crate::url::RtmpUrl::parse("rtmp://127.0.0.1:1940/app/key?auth=1").unwrap();
    pair.client.publish(&url, PublishMode::Record).unwrap();
    pair.run();
    assert!(pair.server_events.iter().any(|event| matches!(
        event,
        ServerSessionEvent::PublishRequested { app, stream_name, mode: PublishMode::Record, .. }
            if app == "app" && stream_name == "key?auth=1"
    )));
    assert!(pair.client_events.contains(&ClientSessionEvent::PublishStarted { stream_id: 1, stream_name: "key?auth=1".into() }));
}

#[test]
fn publish_tag_sends_script_tags_as_metadata_or_data() {
    use crate::flv::{FlvTag, FlvTagType};
    let mut pair = published_pair();
    pair.server_events.clear();
    let on_meta_data: &[u8] = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09";
    let mut with_prefix = b"\x02\x00\x0d@setDataFrame".to_vec();
    with_prefix.extend_from_slice(on_meta_data);
    let cue_point: &[u8] = b"\x02\x00\x0aonCuePoint\x05";
    let tag = |tag_type, timestamp, data: &[u8]| FlvTag {
        tag_type,
        timestamp: RtmpTimestamp::new(timestamp),
        data: Bytes::copy_from_slice(data),
    };
    for sent in [
        tag(FlvTagType::Script, 0, on_meta_data),
        tag(FlvTagType::Script, 1, &with_prefix),
        tag(FlvTagType::Script, 2, cue_point),
        tag(FlvTagType::Audio, 3, b"\xaf\x00\x12\x10"),
        tag(FlvTagType::Video, 4, b"\x17\x00\x00\x00\x00"),
    ] {
        pair.client.publish_tag(&sent).unwrap();
    }
    pair.run();
    let received: Vec<(FlvTagType, u32, Bytes, bool)> = pair
        .server_events
        .iter()
        .filter_map(|event| {
            let is_metadata = matches!(event, ServerSessionEvent::MetadataReceived { .. });
            event.to_flv_tag().map(|tag| (tag.tag_type, tag.timestamp.value(), tag.data, is_metadata))
        })
        .collect();
    let expected = vec![
        // Either way, onMetaData arrives as metadata, its body without the prefix.
        (FlvTagType::Script, 0, Bytes::from_static(on_meta_data), true),
        (FlvTagType::Script, 1, Bytes::from_static(on_meta_data), true),
        (FlvTagType::Script, 2, Bytes::from_static(cue_point), false),
        (FlvTagType::Audio, 3, Bytes::from_static(b"\xaf\x00\x12\x10"), false),
        (FlvTagType::Video, 4, Bytes::from_static(b"\x17\x00\x00\x00\x00"), false),
    ];
    assert_eq!(received, expected);
}
