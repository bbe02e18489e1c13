//! Commands (types 20 and 17) and AMF0 data (type 18), including real ffmpeg bodies.

use super::{decode, encode, object, string, FFMPEG_CONNECT, FFMPEG_SET_DATA_FRAME};
use crate::messages::{MessageError, RtmpMessage};
use crate::Amf0Value;

fn ffmpeg_connect() -> RtmpMessage {
    RtmpMessage::command(
        "connect",
        1.0,
        object(&[
            ("app", string("app")),
            ("type", string("nonprivate")),
            ("flashVer", string("FMLE/3.0 (compatible; Lavf59.27.100)")),
            ("tcUrl", string("rtmp://127.0.0.1:29342/app")),
        ]),
        vec![],
    )
}

#[test]
fn decodes_ffmpeg_connect() {
    assert_eq!(decode(20, FFMPEG_CONNECT), Ok(ffmpeg_connect()));
}

#[test]
fn ffmpeg_connect_survives_encode_and_decode() {
    // Property order follows HashMap iteration, so compare values rather than bytes.
    let bytes = encode(&ffmpeg_connect());
    assert_eq!(bytes.len(), FFMPEG_CONNECT.len());
    assert_eq!(&bytes[..19], &FFMPEG_CONNECT[..19]); // name, transaction id, object marker
    assert_eq!(decode(20, &bytes), Ok(ffmpeg_connect()));
}

#[test]
fn ffmpeg_commands_with_arguments_both_ways() {
    // The other commands from the same ffmpeg capture as FFMPEG_CONNECT: no objects, so the
    // encoding is deterministic and must match ffmpeg's byte for byte.
    let release_stream: &[u8] = &[
        0x02, 0x00, 0x0D, 0x72, 0x65, 0x6C, 0x65, 0x61, 0x73, 0x65, 0x53, 0x74, 0x72, 0x65, 0x61,
        0x6D, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x02, 0x00, 0x03, 0x6B,
        0x65, 0x79,
    ];
    let create_stream: &[u8] = &[
        0x02, 0x00, 0x0C, 0x63, 0x72, 0x65, 0x61, 0x74, 0x65, 0x53, 0x74, 0x72, 0x65, 0x61, 0x6D,
        0x00, 0x40, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
    ];
    let publish: &[u8] = &[
        0x02, 0x00, 0x07, 0x70, 0x75, 0x62, 0x6C, 0x69, 0x73, 0x68, 0x00, 0x40, 0x14, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x05, 0x02, 0x00, 0x03, 0x6B, 0x65, 0x79, 0x02, 0x00, 0x04, 0x6C,
        0x69, 0x76, 0x65,
    ];
    let delete_stream: &[u8] = &[
        0x02, 0x00, 0x0C, 0x64, 0x65, 0x6C, 0x65, 0x74, 0x65, 0x53, 0x74, 0x72, 0x65, 0x61, 0x6D,
        0x00, 0x40, 0x1C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x3F, 0xF0, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
    ];
    let null = Amf0Value::Null;
    for (bytes, message) in [
        (
            release_stream,
            RtmpMessage::command("releaseStream", 2.0, null.clone(), vec![string("key")]),
        ),
        (
            create_stream,
            RtmpMessage::command("createStream", 4.0, null.clone(), vec![]),
        ),
        (
            publish,
            RtmpMessage::command(
                "publish",
                5.0,
                null.clone(),
                vec![string("key"), string("live")],
            ),
        ),
        (
            delete_stream,
            RtmpMessage::command(
                "deleteStream",
                7.0,
                null.clone(),
                vec![Amf0Value::Number(1.0)],
            ),
        ),
    ] {
        assert_eq!(decode(20, bytes), Ok(message.clone()));
        assert_eq!(encode(&message), bytes);
    }
}

#[test]
fn decodes_ffmpeg_set_data_frame() {
    // The ECMA array decodes as an Object: rml_amf0 has no separate variant.
    let metadata = object(&[
        ("duration", Amf0Value::Number(0.0)),
        ("width", Amf0Value::Number(320.0)),
        ("height", Amf0Value::Number(240.0)),
        ("videodatarate", Amf0Value::Number(0.0)),
        ("framerate", Amf0Value::Number(25.0)),
        ("videocodecid", Amf0Value::Number(7.0)),
        ("encoder", string("Lavf59.27.100")),
        ("filesize", Amf0Value::Number(0.0)),
    ]);
    let expected = RtmpMessage::data(vec![
        string("@setDataFrame"),
        string("onMetaData"),
        metadata,
    ]);
    assert_eq!(decode(18, FFMPEG_SET_DATA_FRAME), Ok(expected.clone()));
    assert_eq!(decode(18, &encode(&expected)), Ok(expected));
}

#[test]
fn data_encodes_to_exact_bytes() {
    let message = RtmpMessage::data(vec![
        string("|RtmpSampleAccess"),
        Amf0Value::Boolean(true),
        Amf0Value::Boolean(false),
    ]);
    let mut expected = vec![0x02, 0x00, 0x11];
    expected.extend_from_slice(b"|RtmpSampleAccess");
    expected.extend_from_slice(&[0x01, 0x01, 0x01, 0x00]);
    assert_eq!(encode(&message), expected);
    assert_eq!(decode(18, &expected), Ok(message));
    assert_eq!(decode(18, &[]), Ok(RtmpMessage::data(vec![])));
}

#[test]
fn amf3_command_is_a_format_byte_then_amf0() {
    let mut body = vec![0x00];
    body.extend_from_slice(FFMPEG_CONNECT);
    let RtmpMessage::Amf0Command {
        name,
        transaction_id,
        command_object,
        arguments,
    } = ffmpeg_connect()
    else {
        unreachable!("ffmpeg_connect builds a command");
    };
    let expected = RtmpMessage::Amf3Command {
        name,
        transaction_id,
        command_object,
        arguments,
    };
    assert_eq!(decode(17, &body), Ok(expected));

    let create_stream = RtmpMessage::Amf3Command {
        name: "createStream".into(),
        transaction_id: 2.0,
        command_object: Amf0Value::Null,
        arguments: vec![],
    };
    let mut expected_bytes = vec![0x00, 0x02, 0x00, 0x0C];
    expected_bytes.extend_from_slice(b"createStream");
    expected_bytes.extend_from_slice(&[0x00, 0x40, 0x00, 0, 0, 0, 0, 0, 0, 0x05]);
    assert_eq!(encode(&create_stream), expected_bytes);
    assert_eq!(decode(17, &expected_bytes), Ok(create_stream));
}

#[test]
fn command_without_name_or_transaction_id_is_a_typed_error() {
    assert_eq!(decode(20, &[]), Err(MessageError::MissingCommandName));
    assert_eq!(
        decode(20, &[0x05, 0x05]),
        Err(MessageError::MissingCommandName)
    );
    assert_eq!(decode(17, &[0x00]), Err(MessageError::MissingCommandName));
    let mut no_transaction = vec![0x02, 0x00, 0x04];
    no_transaction.extend_from_slice(b"play");
    assert_eq!(
        decode(20, &no_transaction),
        Err(MessageError::MissingTransactionId {
            name: "play".into()
        })
    );
    no_transaction.extend_from_slice(&[0x02, 0x00, 0x01, b'1']);
    assert_eq!(
        decode(20, &no_transaction),
        Err(MessageError::MissingTransactionId {
            name: "play".into()
        })
    );
}

#[test]
fn command_without_command_object_reads_as_null() {
    let mut body = vec![0x02, 0x00, 0x08];
    body.extend_from_slice(b"onBWDone");
    body.extend_from_slice(&[0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        decode(20, &body),
        Ok(RtmpMessage::command(
            "onBWDone",
            0.0,
            Amf0Value::Null,
            vec![]
        ))
    );
}

#[test]
fn tolerates_false_as_stream_name() {
    // Wirecast's FCUnpublish: FCUnpublish(6, null, false).
    let mut body = vec![0x02, 0x00, 0x0B];
    body.extend_from_slice(b"FCUnpublish");
    body.extend_from_slice(&[0x00, 0x40, 0x18, 0, 0, 0, 0, 0, 0, 0x05, 0x01, 0x00]);
    assert_eq!(
        decode(20, &body),
        Ok(RtmpMessage::command(
            "FCUnpublish",
            6.0,
            Amf0Value::Null,
            vec![Amf0Value::Boolean(false)]
        ))
    );
}

#[test]
fn tolerates_strict_array_in_connect_object() {
    // connect(1, {fourCcList: ["hvc1", "av01"]}) as an E-RTMP client sends it.
    let mut body = vec![0x02, 0x00, 0x07];
    body.extend_from_slice(b"connect");
    body.extend_from_slice(&[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0x03, 0x00, 0x0A]);
    body.extend_from_slice(b"fourCcList");
    body.extend_from_slice(&[0x0A, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x04]);
    body.extend_from_slice(b"hvc1");
    body.extend_from_slice(&[0x02, 0x00, 0x04]);
    body.extend_from_slice(b"av01");
    body.extend_from_slice(&[0x00, 0x00, 0x09]);
    let expected = RtmpMessage::command(
        "connect",
        1.0,
        object(&[(
            "fourCcList",
            Amf0Value::StrictArray(vec![string("hvc1"), string("av01")]),
        )]),
        vec![],
    );
    assert_eq!(decode(20, &body), Ok(expected.clone()));
    assert_eq!(encode(&expected), body);
}

#[test]
fn strip_set_data_frame_slices_the_original_bytes() {
    let body = bytes::Bytes::from_static(FFMPEG_SET_DATA_FRAME);
    let stripped = crate::messages::strip_set_data_frame(&body);
    assert_eq!(stripped.as_deref(), Some(&FFMPEG_SET_DATA_FRAME[16..]));
    assert_eq!(
        stripped.map(|rest| rest.as_ptr()),
        Some(body[16..].as_ptr())
    );
    assert_eq!(&FFMPEG_SET_DATA_FRAME[16..19], &[0x02, 0x00, 0x0A]); // "onMetaData" follows
    let on_meta_data = bytes::Bytes::from_static(&FFMPEG_SET_DATA_FRAME[16..]);
    assert_eq!(crate::messages::strip_set_data_frame(&on_meta_data), None);
}
