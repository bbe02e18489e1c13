//! rtmps:// upstreams: the core tells the driver to run TLS (with the server name to send
//! and verify) and names the scheme in the tcUrl; plain origins stay plain.

use std::time::Duration;

use super::harness::{test_config, Harness};
use crate::relay::Config;
use crate::sessions::ServerSessionEvent;
use crate::url::RtmpUrl;

fn tc_urls_seen(h: &mut Harness, upstream: crate::relay::ConnId) -> Vec<String> {
    h.peer(upstream)
        .origin_events
        .iter()
        .filter_map(|event| match event {
            ServerSessionEvent::ConnectionRequested { request, .. } => request.tc_url.clone(),
            _ => None,
        })
        .collect()
}

#[test]
fn rtmps_origins_and_pushes_connect_over_tls_with_their_host_as_server_name() {
    let config = Config {
        origins: vec!["rtmps://10.0.0.1:1941".into(), "10.0.0.2".into()],
        push: vec![RtmpUrl::parse("rtmps://ingest.example/app/key").unwrap()],
        pull_linger: Duration::from_secs(1),
        ..test_config()
    };
    let mut h = Harness::new(config);
    let player = h.player("live", "s");
    assert_eq!(h.connects.len(), 1);
    assert_eq!(h.connects[0].1, "10.0.0.1:1941".parse().unwrap());
    assert_eq!(h.connect_tls, vec![Some("10.0.0.1".to_string())]);
    let pull = h.connects[0].0;
    h.accept_upstream(pull);
    assert_eq!(tc_urls_seen(&mut h, pull), vec!["rtmps://10.0.0.1:1941/live".to_string()]);
    assert!(h.peer(player).closed.is_none());

    // The next origin is plain: a failed TLS origin fails over to it without TLS.
    h.core.handle_closed(pull, crate::relay::CloseReason::UpstreamCertificateRejected("UnknownIssuer".into()), h.now);
    h.pump();
    assert!(h.advance_until(Duration::from_secs(5), |h| h.connects.len() == 2));
    assert_eq!(h.connects[1].1, "10.0.0.2:1935".parse().unwrap());
    assert_eq!(h.connect_tls[1], None);

    // A push to a host name is resolved first, then connected over TLS to port 443.
    h.publisher("app", "key");
    assert_eq!(h.resolves.len(), 1);
    let (id, host, port) = h.resolves[0].clone();
    assert_eq!((host.as_str(), port), ("ingest.example", 443));
    h.core.handle_resolved(id, Ok(vec!["192.0.2.7:443".parse().unwrap()]), h.now);
    h.pump();
    assert_eq!(h.connect_tls.last(), Some(&Some("ingest.example".to_string())));
    h.accept_upstream(id);
    assert_eq!(tc_urls_seen(&mut h, id), vec!["rtmps://ingest.example:443/app".to_string()]);
}
