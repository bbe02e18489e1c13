//! rtmp-bench over `rtmps://` against an in-process relay with a TLS listener: it counts
//! every published message at every player, verifies the certificate against `--tls-ca`,
//! and reports a certificate it cannot verify as the reason for failing.

mod common;

use std::process::Command;

use common::tls::*;
use common::*;

/// Runs rtmp-bench with `args` plus `--json`: (exit code, stdout, the JSON summary).
fn bench(dir: &TempDir, args: &[&str]) -> (i32, String, serde_json::Value) {
    let json = dir.join("summary.json");
    let output = Command::new(env!("CARGO_BIN_EXE_rtmp-bench")).args(args).arg("--json").arg(&json).output().unwrap();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|_| "{}".to_string());
    let _ = std::fs::remove_file(&json);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), stdout, serde_json::from_str(&text).unwrap())
}

#[test]
fn rtmp_bench_publishes_and_plays_over_rtmps() {
    let dir = TempDir::new("tls-bench");
    let ca = TestCa::new(&dir, "test");
    let cert = ca.issue(&dir, "relay", &["localhost"]);
    let relay = start_relay(tls_config(&cert));
    let url = format!("rtmps://localhost:{}/live/bench", relay.tls_addr().unwrap().port());
    let fixture = fixture("h264_aac.flv");
    let ca_pem = ca.pem.to_str().unwrap();
    let (code, stdout, json) = bench(
        &dir,
        &["relay", &url, &url, "--file", fixture.to_str().unwrap(), "-n", "4", "--duration", "2", "--drain", "0.5", "--tls-ca", ca_pem],
    );
    assert_eq!(code, 0, "{stdout}");
    let published = json["published_media"].as_f64().unwrap();
    assert!(published > 100.0, "{json}");
    assert_eq!(json["min_player_messages"].as_f64(), Some(published), "{json}");
    assert_eq!(json["media_messages"].as_f64(), Some(4.0 * published), "{json}");
    assert_eq!(json["failed"].as_f64(), Some(0.0), "{json}");

    // Without the CA, the system's roots do not know the test CA: every player fails, and
    // says why.
    let (code, stdout, _) = bench(&dir, &["play", &url, "-n", "2", "--duration", "1"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("TLS: invalid peer certificate: UnknownIssuer"), "{stdout}");
}
