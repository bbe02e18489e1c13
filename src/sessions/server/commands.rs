//! The client's commands: connect, createStream, publish, play and the calls encoders
//! and players send around them (FCPublish, releaseStream, pause, receiveAudio...).

use std::collections::HashMap;

use super::{MessageStream, PendingRequest, ServerSession, StreamRole};
use crate::sessions::capabilities::EnhancedCapabilities;
use crate::sessions::events::{ConnectRequest, MediaKind, PublishMode, ServerSessionEvent};
use crate::sessions::status::{as_bool, as_number, as_string, codes, status_object, string_property};
use crate::sessions::SessionError;
use crate::Amf0Value;

impl ServerSession {
    pub(super) fn handle_command(
        &mut self,
        stream_id: u32,
        name: String,
        transaction_id: f64,
        command_object: Amf0Value,
        arguments: Vec<Amf0Value>,
    ) -> Result<(), SessionError> {
        if name != "connect" && self.app.is_none() && !matches!(name.as_str(), "_result" | "_error" | "onStatus") {
            return self.call_failed(transaction_id, "Not connected.");
        }
        match name.as_str() {
            "connect" => self.connect_command(transaction_id, command_object, arguments),
            "createStream" => self.create_stream(transaction_id),
            "releaseStream" | "getStreamLength" | "_checkbw" => {
                let result = if name == "getStreamLength" { Amf0Value::Number(0.0) } else { Amf0Value::Undefined };
                self.connection.send_command(0, "_result", transaction_id, Amf0Value::Null, vec![result])
            }
            "FCPublish" => {
                let stream_name = as_string(arguments.first()).unwrap_or_default().to_string();
                let status = status_object("status", codes::PUBLISH_START, &stream_name);
                self.connection.send_command(0, "onFCPublish", 0.0, Amf0Value::Null, vec![status])
            }
            "FCUnpublish" => {
                let stream_name = as_string(arguments.first()).unwrap_or_default().to_string();
                let publishing = self
                    .streams
                    .iter()
                    .find(|s| s.role == StreamRole::Publishing(stream_name.clone()))
                    .map(|s| s.id);
                if let Some(id) = publishing {
                    self.finish_stream(id);
                }
                let status = status_object("status", codes::UNPUBLISH_SUCCESS, &stream_name);
                self.connection.send_command(0, "onFCUnpublish", 0.0, Amf0Value::Null, vec![status])?;
                if transaction_id != 0.0 {
                    self.connection.send_command(0, "_result", transaction_id, Amf0Value::Null, vec![Amf0Value::Undefined])?;
                }
                Ok(())
            }
            "deleteStream" => {
                if let Some(id) = as_number(arguments.first()).and_then(stream_id_from_number) {
                    self.finish_stream(id);
                    self.streams.retain(|s| s.id != id);
                }
                Ok(())
            }
            "closeStream" => {
                self.finish_stream(stream_id);
                Ok(())
            }
            "publish" => self.publish_command(stream_id, arguments),
            "play" => self.play_command(stream_id, arguments),
            "pause" | "pauseRaw" => {
                let paused = as_bool(arguments.first()).unwrap_or(false);
                let position_ms = as_number(arguments.get(1)).unwrap_or(0.0);
                let (code, text) = if paused { (codes::PAUSE_NOTIFY, "Paused.") } else { (codes::UNPAUSE_NOTIFY, "Unpaused.") };
                self.send_status(stream_id, "status", code, text)?;
                self.events.push_back(ServerSessionEvent::PauseChanged { stream_id, paused, position_ms });
                Ok(())
            }
            "receiveAudio" | "receiveVideo" => {
                let kind = if name == "receiveAudio" { MediaKind::Audio } else { MediaKind::Video };
                let enabled = as_bool(arguments.first()).unwrap_or(true);
                self.events.push_back(ServerSessionEvent::ReceiveChanged { stream_id, kind, enabled });
                Ok(())
            }
            // Answers to our own calls (ping-like _result, onBWDone echoes): nothing to do.
            "_result" | "_error" | "onStatus" | "onBWDone" => Ok(()),
            _ => {
                self.events.push_back(ServerSessionEvent::UnhandledCommand {
                    stream_id,
                    name,
                    transaction_id,
                    command_object,
                    arguments,
                });
                Ok(())
            }
        }
    }

    fn call_failed(&mut self, transaction_id: f64, description: &str) -> Result<(), SessionError> {
        let status = status_object("error", codes::CALL_FAILED, description);
        self.connection.send_command(0, "_error", transaction_id, Amf0Value::Null, vec![status])
    }

    fn connect_command(&mut self, transaction_id: f64, command_object: Amf0Value, arguments: Vec<Amf0Value>) -> Result<(), SessionError> {
        if self.connect_requested || self.app.is_some() {
            return self.call_failed(transaction_id, "Already connected.");
        }
        let properties = match command_object {
            Amf0Value::Object(properties) => properties,
            _ => HashMap::new(),
        };
        let full_app = string_property(&properties, "app").unwrap_or_default();
        let (app, query) = match full_app.split_once('?') {
            Some((app, query)) => (app.to_string(), Some(query.to_string())),
            None => (full_app, None),
        };
        self.peer_capabilities = EnhancedCapabilities::from_properties(&properties);
        let fourcc_list = self.peer_capabilities.as_ref().map(|caps| caps.fourcc_list.clone()).unwrap_or_default();
        let object_encoding = as_number(properties.get("objectEncoding")).unwrap_or(0.0);
        let request = ConnectRequest {
            app: app.clone(),
            query,
            tc_url: string_property(&properties, "tcUrl"),
            flash_ver: string_property(&properties, "flashVer"),
            fourcc_list,
            properties,
            arguments,
        };
        self.connect_requested = true;
        let request_id = self.add_pending(PendingRequest::Connect { transaction_id, object_encoding, app });
        self.events.push_back(ServerSessionEvent::ConnectionRequested { request_id, request });
        Ok(())
    }

    fn create_stream(&mut self, transaction_id: f64) -> Result<(), SessionError> {
        if self.streams.len() >= self.config.max_streams as usize {
            return self.call_failed(transaction_id, "Too many streams.");
        }
        let id = self.next_stream_id;
        self.next_stream_id = self.next_stream_id.wrapping_add(1).max(1);
        self.streams.push(MessageStream { id, role: StreamRole::Idle });
        self.connection.send_command(0, "_result", transaction_id, Amf0Value::Null, vec![Amf0Value::Number(f64::from(id))])
    }

    fn publish_command(&mut self, stream_id: u32, arguments: Vec<Amf0Value>) -> Result<(), SessionError> {
        // publish(false) is how Flash (and Wirecast) stop publishing.
        let Some(stream_name) = as_string(arguments.first()).map(str::to_string) else {
            self.finish_stream(stream_id);
            return Ok(());
        };
        let Some(role) = self.streams.iter().find(|s| s.id == stream_id).map(|s| s.role.clone()) else {
            return self.send_status(stream_id, "error", codes::PUBLISH_BAD_NAME, "No such stream; call createStream first.");
        };
        if role != StreamRole::Idle || self.has_pending_on(stream_id) {
            return self.send_status(stream_id, "error", codes::PUBLISH_BAD_NAME, "Stream is already in use.");
        }
        let mode = PublishMode::parse(as_string(arguments.get(1)).unwrap_or("live"));
        let app = self.app.clone().unwrap_or_default();
        let request_id = self.add_pending(PendingRequest::Publish { stream_id, stream_name: stream_name.clone() });
        self.events.push_back(ServerSessionEvent::PublishRequested { request_id, app, stream_name, stream_id, mode });
        Ok(())
    }

    fn play_command(&mut self, stream_id: u32, arguments: Vec<Amf0Value>) -> Result<(), SessionError> {
        let Some(stream_name) = as_string(arguments.first()).map(str::to_string) else {
            self.finish_stream(stream_id);
            return Ok(());
        };
        let Some(role) = self.streams.iter().find(|s| s.id == stream_id).map(|s| s.role.clone()) else {
            return self.send_status(stream_id, "error", codes::PLAY_FAILED, "No such stream; call createStream first.");
        };
        if matches!(role, StreamRole::Publishing(_)) || self.has_pending_on(stream_id) {
            return self.send_status(stream_id, "error", codes::PLAY_FAILED, "Stream is already in use.");
        }
        // A second play on the same stream replaces the first.
        if matches!(role, StreamRole::Playing(_)) {
            self.finish_stream(stream_id);
        }
        let start = as_number(arguments.get(1)).unwrap_or(-2.0);
        let duration = as_number(arguments.get(2)).unwrap_or(-1.0);
        let reset = as_bool(arguments.get(3)).unwrap_or(true);
        let app = self.app.clone().unwrap_or_default();
        let request_id = self.add_pending(PendingRequest::Play { stream_id, stream_name: stream_name.clone(), reset });
        self.events.push_back(ServerSessionEvent::PlayRequested { request_id, app, stream_name, stream_id, start, duration, reset });
        Ok(())
    }
}

fn stream_id_from_number(number: f64) -> Option<u32> {
    if number.is_finite() && number >= 0.0 && number <= f64::from(u32::MAX) {
        Some(number as u32)
    } else {
        None
    }
}
