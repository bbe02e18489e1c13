//! Server and client sessions talking to each other in memory; one file per topic.

mod connect;
mod play;
mod publish;
mod server_replies;

use super::*;
use crate::chunk_io::ChunkDecoder;
use crate::messages::RtmpMessage;
use crate::time::RtmpTimestamp;
use crate::Amf0Value;

/// How the test's server side answers requests.
#[derive(Clone, Copy)]
enum Policy {
    AcceptAll,
    RejectConnect,
    RejectPublish,
    RejectPlay,
    /// Accepts plays with `accept_play_waiting`, everything else with `accept_request`.
    AcceptPlayWaiting,
}

struct Pair {
    server: ServerSession,
    client: ClientSession,
    server_events: Vec<ServerSessionEvent>,
    client_events: Vec<ClientSessionEvent>,
    policy: Policy,
}

impl Pair {
    fn new(policy: Policy) -> Pair {
        Pair {
            server: ServerSession::new(ServerSessionConfig::default()),
            client: ClientSession::new(ClientSessionConfig::default()),
            server_events: Vec::new(),
            client_events: Vec::new(),
            policy,
        }
    }

    /// Moves bytes both ways until neither side has more to say.
    fn run(&mut self) {
        for _ in 0..20 {
            let to_server = self.client.take_outbound();
            self.server.handle_input(&to_server).unwrap();
            while let Some(event) = self.server.poll_event() {
                let request = match &event {
                    ServerSessionEvent::ConnectionRequested { request_id, .. } => Some((*request_id, 0)),
                    ServerSessionEvent::PublishRequested { request_id, .. } => Some((*request_id, 1)),
                    ServerSessionEvent::PlayRequested { request_id, .. } => Some((*request_id, 2)),
                    _ => None,
                };
                if let Some((request_id, kind)) = request {
                    let reject = matches!(
                        (self.policy, kind),
                        (Policy::RejectConnect, 0) | (Policy::RejectPublish, 1) | (Policy::RejectPlay, 2)
                    );
                    if reject {
                        self.server.reject_request(request_id, "not allowed").unwrap();
                    } else if matches!((self.policy, kind), (Policy::AcceptPlayWaiting, 2)) {
                        self.server.accept_play_waiting(request_id).unwrap();
                    } else {
                        self.server.accept_request(request_id).unwrap();
                    }
                }
                self.server_events.push(event);
            }
            let to_client = self.server.take_outbound();
            self.client.handle_input(&to_client).unwrap();
            while let Some(event) = self.client.poll_event() {
                self.client_events.push(event);
            }
            if to_server.is_empty() && to_client.is_empty() {
                return;
            }
        }
        panic!("sessions kept talking");
    }
}

fn published_pair() -> Pair {
    let mut pair = Pair::new(Policy::AcceptAll);
    pair.client.connect("live", "rtmp://127.0.0.1/live").unwrap();
    pair.client.request_publishing("stream?key=abc", PublishMode::Live).unwrap();
    pair.run();
    pair
}

/// Decodes what a server sent into messages, for exact checks of its replies.
fn server_messages(bytes: &[u8], decoder: &mut ChunkDecoder) -> Vec<RtmpMessage> {
    decoder.push(bytes);
    let mut messages = Vec::new();
    while let Some(payload) = decoder.next_message().unwrap() {
        messages.push(RtmpMessage::decode(&payload).unwrap());
    }
    messages
}

fn command(name: &str, transaction_id: f64, arguments: Vec<Amf0Value>) -> Vec<u8> {
    let payload = RtmpMessage::command(name, transaction_id, Amf0Value::Null, arguments)
        .into_payload(RtmpTimestamp::ZERO, 0)
        .unwrap();
    let mut out = bytes::BytesMut::new();
    crate::chunk_io::ChunkEncoder::encode_standalone(3, &payload, 128, &mut out).unwrap();
    out.to_vec()
}
