//! The command line: every option against the example config file, and which wins.

use super::*;

fn config_from(args: &[&str]) -> Result<Config, String> {
    let matches = options().parse(args).map_err(|error| error.to_string())?;
    load_config(&matches)
}

fn file_with(text: &str) -> PathBuf {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("rtmp-edge-cli-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// Every flag that sets something can also be written in the file, under the same
/// name, and the file documents it: the two must not drift apart.
#[test]
fn every_option_is_a_key_of_the_example_file() {
    let example = include_str!("../../../rtmp-edge.example.toml");
    let keys: std::collections::BTreeSet<&str> = example
        .lines()
        .filter_map(|line| line.trim_start_matches("# ").split_once(" = ").map(|(key, _)| key.trim()))
        .filter(|key| !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .collect();
    let usage = usage(&options());
    // Option lines only ("    -h, --help" or "        --listen ADDR"), not the brief.
    let flags: std::collections::BTreeSet<&str> = usage
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let first = words.next()?;
            if first.starts_with("--") {
                Some(first)
            } else if first.starts_with('-') && first.ends_with(',') {
                words.next()
            } else {
                None
            }
        })
        .filter_map(|word| word.strip_prefix("--"))
        .map(|word| word.trim_end_matches(|c: char| !(c.is_ascii_lowercase() || c == '-')))
        // `--secret` belongs to the `sign` subcommand named in the usage text.
        .filter(|flag| !["help", "version", "config", "secret"].contains(flag))
        .collect();
    assert_eq!(flags, keys, "command-line options and rtmp-edge.example.toml keys differ");
    // And each key the example writes is one the parser takes.
    let file = file_with(example);
    assert!(config_from(&["--config", file.to_str().unwrap()]).is_ok());
}

#[test]
fn tls_options_and_listen_off() {
    let config = config_from(&[
        "--listen", "off", "--tls-listen", "127.0.0.1:1936", "--tls-cert", "c.pem", "--tls-key", "k.pem",
        "--tls-ca", "ca.pem", "--tls-insecure-upstream", "--origin", "rtmps://o.example",
    ])
    .unwrap();
    assert!(!config.rtmp_listener);
    assert_eq!(config.tls_listen, Some("127.0.0.1:1936".parse().unwrap()));
    assert_eq!(config.tls_cert, Some(PathBuf::from("c.pem")));
    assert_eq!(config.tls_key, Some(PathBuf::from("k.pem")));
    assert_eq!(config.tls_ca, Some(PathBuf::from("ca.pem")));
    assert!(config.tls_insecure_upstream);
    let off = file_with("listen = \"off\"\ntls-listen = \"127.0.0.1:1936\"\ntls-cert = \"c.pem\"\ntls-key = \"k.pem\"\n");
    let config = config_from(&["--config", off.to_str().unwrap(), "--listen", "127.0.0.1:1940"]).unwrap();
    assert!(config.rtmp_listener, "--listen ADDR opens the listener the file turned off");
    assert_eq!(config.listen, "127.0.0.1:1940".parse().unwrap());
    let error = config_from(&["--listen", "off"]).unwrap_err();
    assert!(error.contains("accept no RTMP"), "{error}");
    let error = config_from(&["--tls-listen", "127.0.0.1:1936"]).unwrap_err();
    assert!(error.contains("tls-listen needs tls-cert and tls-key"), "{error}");
    let error = config_from(&["--origin", "rtmps://o.example/live"]).unwrap_err();
    assert!(error.contains("--origin rtmps://o.example/live"), "{error}");
}

#[test]
fn proxy_protocol_alone_is_the_rtmp_listener_and_takes_a_list() {
    let parsed = |args: &[&str]| {
        let args = join_proxy_protocol_value(args.iter().map(|arg| arg.to_string()).collect());
        config_from(&args.iter().map(String::as_str).collect::<Vec<_>>()).map(|config| config.proxy_protocol.names())
    };
    assert_eq!(parsed(&["--proxy-protocol"]).unwrap(), ["rtmp"]);
    assert_eq!(parsed(&["--proxy-protocol", "--chunk-size", "4096"]).unwrap(), ["rtmp"]);
    let http = ["--http-listen", "127.0.0.1:0"];
    assert_eq!(parsed(&[&http[..], &["--proxy-protocol", "rtmp,http"]].concat()).unwrap(), ["rtmp", "http"]);
    assert_eq!(parsed(&[&http[..], &["--proxy-protocol=http"]].concat()).unwrap(), ["http"]);
    assert_eq!(parsed(&["--proxy-protocol=off"]).unwrap(), Vec::<&str>::new());
    let error = parsed(&["--proxy-protocol=rtmp,ftp"]).unwrap_err();
    assert!(error.contains("--proxy-protocol: \"ftp\" is not a listener"), "{error}");
    let error = parsed(&["--proxy-protocol", "http"]).unwrap_err();
    assert!(error.contains("proxy-protocol names http, but http-listen is not set"), "{error}");
    let file = file_with("proxy-protocol = [\"rtmp\"]\n");
    let config = config_from(&["--config", file.to_str().unwrap(), "--proxy-protocol=off"]).unwrap();
    assert_eq!(config.proxy_protocol.names(), Vec::<&str>::new(), "the command line wins");
}

#[test]
fn the_command_line_wins_over_the_file_both_ways() {
    let off = file_with("gop-cache = false\nchunk-size = 8192\n");
    let config = config_from(&["--config", off.to_str().unwrap(), "--gop-cache", "on"]).unwrap();
    assert!(config.gop_cache, "--gop-cache on over gop-cache = false");
    assert_eq!(config.chunk_size, 8192, "what the command line leaves alone comes from the file");
    let on = file_with("gop-cache = true\n");
    let config = config_from(&["--config", on.to_str().unwrap(), "--gop-cache", "off"]).unwrap();
    assert!(!config.gop_cache);
    let config = config_from(&["--config", off.to_str().unwrap(), "--chunk-size", "4096"]).unwrap();
    assert_eq!((config.chunk_size, config.gop_cache), (4096, false));
}
