//! The TOML configuration file (`rtmp-edge --config FILE`).
//!
//! Every key is a long command-line option without its dashes, with the same meaning and
//! unit (`queue-soft-limit = 3000` is `--queue-soft-limit 3000`); repeatable options are
//! arrays. A key the relay does not know is an error, as is a value of the wrong type or
//! range, and every error names its line. `rtmp-edge.example.toml` lists them all.
//!
//! ```
//! use rtmp_edge::relay::{config_file, Config};
//!
//! let file = config_file::parse("chunk-size = 8192\norigin = [\"origin.example:1935\"]\n").unwrap();
//! let mut config = Config::default();
//! file.apply(&mut config).unwrap();
//! assert_eq!((config.chunk_size, config.origins.len()), (8192, 1));
//!
//! let problems = config_file::parse("chunk-size = 8192\nchunk-sise = 1\n").unwrap_err();
//! assert_eq!(problems[0].line, Some(2));
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::url::{parse_origin, RtmpUrl};
use super::access::{AccessConfig, Cidr, HookUrl, IpRules, Secret};
use super::Config;

/// One thing wrong with a file, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when the problem has a place.
    pub line: Option<usize>,
    /// 1-based column (in characters), with the line.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: {}", self.message),
            (Some(line), None) => write!(f, "line {line}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// Log levels the file's `log-level` takes.
pub const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A parsed configuration file: what it sets, with where each value is written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    listen: Option<Spanned<String>>,
    workers: Option<Spanned<WorkersValue>>,
    listen_backlog: Option<Spanned<u32>>,
    tls_listen: Option<Spanned<String>>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    tls_ca: Option<String>,
    tls_insecure_upstream: Option<bool>,
    chunk_size: Option<Spanned<u32>>,
    gop_cache: Option<bool>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_message_size: Option<u32>,
    queue_soft_limit: Option<Spanned<u32>>,
    queue_hard_limit: Option<Spanned<u32>>,
    queue_max_bytes: Option<usize>,
    queue_max_messages: Option<usize>,
    handshake_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    origin: Option<Vec<Spanned<String>>>,
    pull_linger: Option<u64>,
    upstream_timeout: Option<u64>,
    upstream_connect_timeout: Option<u64>,
    upstream_handshake_timeout: Option<u64>,
    upstream_reply_timeout: Option<u64>,
    max_upstream_connects: Option<usize>,
    push: Option<Vec<Spanned<String>>>,
    write_batch: Option<u64>,
    dump: Option<String>,
    log_level: Option<Spanned<String>>,
    http_listen: Option<Spanned<String>>,
    http_token: Option<Spanned<String>>,
    http_max_connections: Option<Spanned<usize>>,
    http_header_timeout: Option<u64>,
    http_idle_timeout: Option<u64>,
    publish_secret: Option<Spanned<String>>,
    play_secret: Option<Spanned<String>>,
    publish_secret_file: Option<Spanned<String>>,
    play_secret_file: Option<Spanned<String>>,
    allow_publish: Option<Vec<Spanned<String>>>,
    deny_publish: Option<Vec<Spanned<String>>>,
    allow_play: Option<Vec<Spanned<String>>>,
    deny_play: Option<Vec<Spanned<String>>>,
    hook_url: Option<Spanned<String>>,
    hook_timeout: Option<Spanned<u64>>,
    hook_fail: Option<Spanned<String>>,
    hook_max_pending: Option<Spanned<usize>>,
    proxy_protocol: Option<Spanned<Vec<String>>>,
    #[serde(skip)]
    text: String,
}

/// `workers = 2` or `workers = "auto"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WorkersValue {
    Count(i64),
    Word(String),
}

/// Parses a file's text. Syntax errors, unknown keys and values of the wrong type are
/// reported here, with their line.
pub fn parse(text: &str) -> Result<FileConfig, Vec<Problem>> {
    match toml::from_str::<FileConfig>(text) {
        Ok(mut file) => {
            file.text = text.to_string();
            Ok(file)
        }
        Err(error) => {
            let (line, column) = error.span().map(|span| line_and_column(text, span.start)).unzip();
            Err(vec![Problem { line, column, message: error.message().trim().to_string() }])
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |start| start.chars().count()) + 1;
    (line, column)
}

impl FileConfig {
    /// The `log-level` the file asks for (applied at start; a reload does not change it).
    pub fn log_level(&self) -> Option<&str> {
        self.log_level.as_ref().map(|level| level.get_ref().as_str())
    }

    /// Sets on `config` everything the file sets. Values out of range are reported with
    /// their line; `config` is only meant to be used when this returns `Ok`.
    pub fn apply(&self, config: &mut Config) -> Result<(), Vec<Problem>> {
        let mut problems = Vec::new();
        let mut problem = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_and_column(&self.text, span.start);
            problems.push(Problem { line: Some(line), column: Some(column), message });
        };
        if let Some(listen) = &self.listen {
            match listen.get_ref().as_str() {
                "off" => config.rtmp_listener = false,
                text => match text.parse::<SocketAddr>() {
                    Ok(address) => (config.listen, config.rtmp_listener) = (address, true),
                    Err(_) => problem(listen.span(), format!("listen: {text:?} is neither ADDR:PORT nor off")),
                },
            }
        }
        if let Some(workers) = &self.workers {
            let text = match workers.get_ref() {
                WorkersValue::Count(count) => count.to_string(),
                WorkersValue::Word(word) => word.clone(),
            };
            match text.parse() {
                Ok(parsed) => config.workers = parsed,
                Err(error) => problem(workers.span(), error),
            }
        }
        if let Some(backlog) = &self.listen_backlog {
            match *backlog.get_ref() {
                backlog @ 1..=65_535 => config.listen_backlog = backlog,
                _ => problem(backlog.span(), "listen-backlog must be between 1 and 65535".to_string()),
            }
        }
        if let Some(listen) = &self.tls_listen {
            match listen.get_ref().parse::<SocketAddr>() {
                Ok(address) => config.tls_listen = Some(address),
                Err(_) => problem(listen.span(), format!("tls-listen: {:?} is not ADDR:PORT", listen.get_ref())),
            }
        }
        set(&mut config.tls_cert, self.tls_cert.as_ref().map(|path| Some(PathBuf::from(path))));
        set(&mut config.tls_key, self.tls_key.as_ref().map(|path| Some(PathBuf::from(path))));
        set(&mut config.tls_ca, self.tls_ca.as_ref().map(|path| Some(PathBuf::from(path))));
        set(&mut config.tls_insecure_upstream, self.tls_insecure_upstream);
        if let Some(chunk_size) = &self.chunk_size {
            if (128..=0x7FFF_FFFF).contains(chunk_size.get_ref()) {
                config.chunk_size = *chunk_size.get_ref();
            } else {
                problem(chunk_size.span(), "chunk-size must be between 128 and 2147483647".to_string());
            }
        }
        set(&mut config.gop_cache, self.gop_cache);
        set(&mut config.max_connections, self.max_connections);
        set(&mut config.max_connections_per_ip, self.max_connections_per_ip);
        set(&mut config.max_message_size, self.max_message_size);
        set(&mut config.queue_soft_limit_ms, self.queue_soft_limit.as_ref().map(|v| *v.get_ref()));
        set(&mut config.queue_hard_limit_ms, self.queue_hard_limit.as_ref().map(|v| *v.get_ref()));
        if config.queue_soft_limit_ms > config.queue_hard_limit_ms {
            let span = self.queue_soft_limit.as_ref().or(self.queue_hard_limit.as_ref()).map(Spanned::span);
            problem(span.unwrap_or(0..0), "queue-soft-limit must not exceed queue-hard-limit".to_string());
        }
        set(&mut config.queue_hard_limit_bytes, self.queue_max_bytes);
        set(&mut config.queue_hard_limit_entries, self.queue_max_messages);
        set(&mut config.handshake_timeout, self.handshake_timeout.map(Duration::from_secs));
        set(&mut config.idle_timeout, self.idle_timeout.map(Duration::from_secs));
        if let Some(origins) = &self.origin {
            config.origins.clear();
            for origin in origins {
                match parse_origin(origin.get_ref()) {
                    Ok(_) => config.origins.push(origin.get_ref().clone()),
                    Err(error) => problem(origin.span(), format!("origin: {error}")),
                }
            }
        }
        set(&mut config.pull_linger, self.pull_linger.map(Duration::from_secs));
        set(&mut config.upstream_timeout, self.upstream_timeout.map(|s| Duration::from_secs(s.max(1))));
        let stage = |ms: Option<u64>| ms.map(|ms| Duration::from_millis(ms.max(100)));
        set(&mut config.upstream_connect_timeout, stage(self.upstream_connect_timeout));
        set(&mut config.upstream_handshake_timeout, stage(self.upstream_handshake_timeout));
        set(&mut config.upstream_reply_timeout, stage(self.upstream_reply_timeout));
        set(&mut config.max_upstream_connects, self.max_upstream_connects);
        if let Some(pushes) = &self.push {
            config.push.clear();
            for push in pushes {
                match RtmpUrl::parse(push.get_ref()) {
                    Ok(url) => config.push.push(url),
                    Err(error) => problem(push.span(), format!("push: {error}")),
                }
            }
        }
        set(&mut config.write_batch, self.write_batch.map(|ms| Duration::from_millis(ms.min(1000))));
        set(&mut config.dump_dir, self.dump.as_ref().map(|dir| Some(PathBuf::from(dir))));
        if let Some(level) = &self.log_level {
            if !LOG_LEVELS.contains(&level.get_ref().as_str()) {
                problem(level.span(), format!("log-level: {:?} is not one of {}", level.get_ref(), LOG_LEVELS.join(", ")));
            }
        }
        if let Some(listen) = &self.http_listen {
            match listen.get_ref().parse::<SocketAddr>() {
                Ok(address) => config.http_listen = Some(address),
                Err(_) => problem(listen.span(), format!("http-listen: {:?} is not ADDR:PORT", listen.get_ref())),
            }
        }
        if let Some(token) = &self.http_token {
            if token.get_ref().is_empty() || token.get_ref().chars().any(char::is_whitespace) {
                problem(token.span(), "http-token must be non-empty and contain no spaces".to_string());
            } else {
                config.http_token = Some(token.get_ref().clone());
            }
        }
        if let Some(max) = &self.http_max_connections {
            if *max.get_ref() == 0 {
                problem(max.span(), "http-max-connections must be at least 1".to_string());
            } else {
                config.http_max_connections = *max.get_ref();
            }
        }
        set(&mut config.http_header_timeout, self.http_header_timeout.map(|s| Duration::from_secs(s.max(1))));
        set(&mut config.http_idle_timeout, self.http_idle_timeout.map(|s| Duration::from_secs(s.max(1))));
        if let Some(listeners) = &self.proxy_protocol {
            let names: Vec<&str> = listeners.get_ref().iter().map(String::as_str).collect();
            match super::ProxyProtocolListeners::parse(&names) {
                Ok(parsed) => config.proxy_protocol = parsed,
                Err(error) => problem(listeners.span(), format!("proxy-protocol: {error}")),
            }
        }
        self.apply_access(&mut config.access, &mut problem);
        problems.sort_by_key(|problem| (problem.line, problem.column));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

impl FileConfig {
    /// The access keys: secrets (inline or from a file), IP rules, the hook.
    fn apply_access(&self, access: &mut AccessConfig, problem: &mut impl FnMut(std::ops::Range<usize>, String)) {
        for (secret, file, field, name) in [
            (&self.publish_secret, &self.publish_secret_file, &mut access.publish_secret, "publish-secret"),
            (&self.play_secret, &self.play_secret_file, &mut access.play_secret, "play-secret"),
        ] {
            match (secret, file) {
                (Some(_), Some(file)) => problem(file.span(), format!("give {name} or {name}-file, not both")),
                (Some(secret), None) => match Secret::new(secret.get_ref()) {
                    Some(secret) => *field = Some(secret),
                    None => problem(secret.span(), format!("{name} must not be empty")),
                },
                (None, Some(file)) => match Secret::from_file(std::path::Path::new(file.get_ref())) {
                    Ok(secret) => *field = Some(secret),
                    Err(error) => problem(file.span(), format!("{name}-file: {error}")),
                },
                (None, None) => {}
            }
        }
        for (allow, deny, field) in [
            (&self.allow_publish, &self.deny_publish, &mut access.publish_rules),
            (&self.allow_play, &self.deny_play, &mut access.play_rules),
        ] {
            if allow.is_none() && deny.is_none() {
                continue;
            }
            // The order across the two keys is the order in the file: first match wins.
            let mut written: Vec<(usize, bool, &Spanned<String>)> = Vec::new();
            written.extend(allow.iter().flatten().map(|rule| (rule.span().start, true, rule)));
            written.extend(deny.iter().flatten().map(|rule| (rule.span().start, false, rule)));
            written.sort_by_key(|(start, _, _)| *start);
            let mut ok = true;
            for (_, _, rule) in &written {
                if let Err(error) = rule.get_ref().parse::<Cidr>() {
                    problem(rule.span(), error.to_string());
                    ok = false;
                }
            }
            let pairs: Vec<(bool, &str)> = written.iter().map(|(_, allow, rule)| (*allow, rule.get_ref().as_str())).collect();
            if let (true, Ok(rules)) = (ok, IpRules::parse(&pairs)) {
                *field = rules;
            }
        }
        if let Some(url) = &self.hook_url {
            match url.get_ref().parse::<HookUrl>() {
                Ok(parsed) => access.hook_url = Some(parsed),
                Err(error) => problem(url.span(), error),
            }
        }
        if let Some(timeout) = &self.hook_timeout {
            match *timeout.get_ref() {
                0 => problem(timeout.span(), "hook-timeout must be at least 1 ms".to_string()),
                ms => access.hook_timeout = Duration::from_millis(ms),
            }
        }
        if let Some(fail) = &self.hook_fail {
            match fail.get_ref().parse() {
                Ok(policy) => access.hook_fail = policy,
                Err(error) => problem(fail.span(), error),
            }
        }
        if let Some(max) = &self.hook_max_pending {
            match *max.get_ref() {
                0 => problem(max.span(), "hook-max-pending must be at least 1".to_string()),
                max => access.hook_max_pending = max,
            }
        }
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

/// Reads and checks a file as `rtmp-edge` would, on top of `base`: its problems, or the
/// configuration. Problems carry the path.
pub fn load(path: &std::path::Path, base: Config) -> Result<(Config, FileConfig), Vec<String>> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|error| vec![format!("{name}: {error}")])?;
    let with_path = |problems: Vec<Problem>| problems.into_iter().map(|p| format!("{name}: {p}")).collect::<Vec<_>>();
    let file = parse(&text).map_err(with_path)?;
    let mut config = base;
    file.apply(&mut config).map_err(with_path)?;
    Ok((config, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Err(problems) => problems,
            Ok(file) => file.apply(&mut Config::default()).unwrap_err(),
        }
    }

    #[test]
    fn the_example_file_is_valid_and_sets_what_it_says() {
        let text = include_str!("../../rtmp-edge.example.toml");
        let file = parse(text).unwrap();
        let mut config = Config::default();
        file.apply(&mut config).unwrap();
        config.validate().unwrap();
        assert_eq!(config.http_listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(file.log_level(), Some("info"));
    }

    #[test]
    fn unknown_keys_wrong_types_and_syntax_errors_name_their_line() {
        let unknown = problems("listen = \"0.0.0.0:1935\"\n\nmax-conections = 5\n");
        assert_eq!((unknown[0].line, unknown[0].column), (Some(3), Some(1)));
        assert!(unknown[0].message.contains("max-conections"), "{}", unknown[0].message);
        let wrong_type = problems("chunk-size = \"big\"\n");
        assert_eq!(wrong_type[0].line, Some(1));
        let syntax = problems("a = 1\nb = [\n");
        assert!(syntax[0].line.is_some(), "{syntax:?}");
        let section = problems("[rtmp]\nlisten = \"x\"\n");
        assert_eq!(section[0].line, Some(1), "{section:?}");
    }

    #[test]
    fn values_out_of_range_name_their_line_and_all_are_reported() {
        let text = "chunk-size = 64\norigin = [\"ok:1935\", \"bad:port\"]\nhttp-listen = \"localhost\"\nlog-level = \"loud\"\n";
        let found = problems(text);
        let lines: Vec<Option<usize>> = found.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![Some(1), Some(2), Some(3), Some(4)], "{found:?}");
        assert_eq!(found[1].column, Some(22));
        assert!(found[0].to_string().starts_with("line 1, column 14: chunk-size"), "{}", found[0]);
        let limits = problems("queue-hard-limit = 100\nqueue-soft-limit = 9000\n");
        assert_eq!(limits[0].line, Some(2));
    }

    #[test]
    fn access_keys_set_rules_in_file_order_secrets_and_the_hook() {
        let dir = std::env::temp_dir().join(format!("rtmp-edge-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret_file = dir.join("play.secret");
        std::fs::write(&secret_file, "from-file\n").unwrap();
        let text = format!(
            "deny-publish = [\"127.0.0.2\"]\nallow-publish = [\"127.0.0.0/8\", \"::1\"]\ndeny-play = [\"2001:db8::/32\"]\n\
             publish-secret = \"inline\"\nplay-secret-file = {:?}\n\
             hook-url = \"http://127.0.0.1:8080/on\"\nhook-timeout = 1500\nhook-fail = \"open\"\nhook-max-pending = 8\n",
            secret_file.display().to_string()
        );
        let file = parse(&text).unwrap();
        let mut config = Config::default();
        file.apply(&mut config).unwrap();
        config.validate().unwrap();
        let access = &config.access;
        let publish: Vec<String> = access.publish_rules.rules().iter().map(ToString::to_string).collect();
        assert_eq!(publish, ["deny 127.0.0.2/32", "allow 127.0.0.0/8", "allow ::1/128"]);
        let play: Vec<String> = access.play_rules.rules().iter().map(ToString::to_string).collect();
        assert_eq!(play, ["deny 2001:db8::/32"]);
        assert_eq!(access.publish_secret.as_ref().map(|s| s.bytes().to_vec()), Some(b"inline".to_vec()));
        assert_eq!(access.play_secret.as_ref().map(|s| s.bytes().to_vec()), Some(b"from-file".to_vec()));
        assert_eq!(access.hook_url.as_ref().map(ToString::to_string).as_deref(), Some("http://127.0.0.1:8080/on"));
        assert_eq!(access.hook_timeout, Duration::from_millis(1500));
        assert_eq!(access.hook_fail, crate::relay::access::HookFailPolicy::Open);
        assert_eq!(access.hook_max_pending, 8);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_access_values_name_their_line() {
        let text = "allow-play = [\"10.0.0.1/8\"]\nhook-url = \"https://auth.example/\"\nhook-fail = \"maybe\"\n\
                    publish-secret = \" \"\nplay-secret = \"a\"\nplay-secret-file = \"/nonexistent/secret\"\n\
                    hook-timeout = 0\nhook-max-pending = 0\n";
        let found = problems(text);
        let lines: Vec<Option<usize>> = found.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 6, 7, 8].map(Some), "{found:?}");
        assert!(found[3].message.contains("must not be empty"), "{}", found[3]);
        assert!(found[4].message.contains("not both"), "{}", found[4]);
        let missing = problems("\npublish-secret-file = \"/nonexistent/secret\"\n");
        assert_eq!(missing[0].line, Some(2));
        assert!(missing[0].message.contains("/nonexistent/secret"), "{}", missing[0]);
        let slow_hook = parse("hook-url = \"http://a/\"\nhook-timeout = 10000\nhandshake-timeout = 10\n").unwrap();
        let mut config = Config::default();
        slow_hook.apply(&mut config).unwrap();
        assert!(config.validate().unwrap_err()[0].contains("hook-timeout"));
        // Each pending decision may hold a thread: the bound itself is bounded.
        let too_many = parse("hook-max-pending = 5000\n").unwrap();
        let mut config = Config::default();
        too_many.apply(&mut config).unwrap();
        assert_eq!(config.validate().unwrap_err(), ["hook-max-pending must be between 1 and 4096"]);
    }

    #[test]
    fn proxy_protocol_names_listeners() {
        let mut config = Config { http_listen: Some("127.0.0.1:8080".parse().unwrap()), ..Config::default() };
        parse("proxy-protocol = [\"rtmp\", \"http\"]\n").unwrap().apply(&mut config).unwrap();
        assert_eq!(config.proxy_protocol.names(), ["rtmp", "http"]);
        config.validate().unwrap();
        parse("proxy-protocol = [\"off\"]\n").unwrap().apply(&mut config).unwrap();
        assert_eq!(config.proxy_protocol.names(), Vec::<&str>::new());
        let found = problems("\nproxy-protocol = [\"rtmp\", \"smtp\"]\n");
        assert_eq!((found[0].line, found[0].column), (Some(2), Some(18)), "{found:?}");
        assert!(found[0].message.contains("\"smtp\" is not a listener"), "{}", found[0]);
        let mut tls_off = Config::default();
        parse("proxy-protocol = [\"rtmps\"]\n").unwrap().apply(&mut tls_off).unwrap();
        assert_eq!(tls_off.validate().unwrap_err(), ["proxy-protocol names rtmps, but tls-listen is not set"]);
    }

    #[test]
    fn arrays_replace_what_came_before() {
        let file = parse("origin = [\"a:1\", \"b:2\"]\npush = [\"rtmp://c/live\"]\n").unwrap();
        let mut config = Config { origins: vec!["old:1".into()], ..Config::default() };
        file.apply(&mut config).unwrap();
        assert_eq!(config.origins, vec!["a:1".to_string(), "b:2".to_string()]);
        assert_eq!(config.push.len(), 1);
    }

    #[test]
    fn tls_keys_and_a_tls_only_relay() {
        let text = "listen = \"off\"\ntls-listen = \"127.0.0.1:1936\"\ntls-cert = \"c.pem\"\ntls-key = \"k.pem\"\n\
                    tls-ca = \"ca.pem\"\ntls-insecure-upstream = true\norigin = [\"rtmps://o.example:1941\"]\n";
        let mut config = Config::default();
        parse(text).unwrap().apply(&mut config).unwrap();
        config.validate().unwrap();
        assert!(!config.rtmp_listener);
        assert_eq!(config.tls_listen, Some("127.0.0.1:1936".parse().unwrap()));
        assert_eq!(config.tls_cert.as_deref(), Some(std::path::Path::new("c.pem")));
        assert_eq!(config.tls_key.as_deref(), Some(std::path::Path::new("k.pem")));
        assert_eq!(config.tls_ca.as_deref(), Some(std::path::Path::new("ca.pem")));
        assert!(config.tls_insecure_upstream);
        let found = problems("listen = \"nowhere\"\ntls-listen = \"x\"\norigin = [\"rtmps://o/live\"]\n");
        let lines: Vec<Option<usize>> = found.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![Some(1), Some(2), Some(3)], "{found:?}");
        let mut half = Config::default();
        parse("tls-listen = \"127.0.0.1:1936\"\n").unwrap().apply(&mut half).unwrap();
        assert_eq!(half.validate().unwrap_err(), vec!["tls-listen needs tls-cert and tls-key".to_string()]);
        let mut none = Config::default();
        parse("listen = \"off\"\n").unwrap().apply(&mut none).unwrap();
        assert_eq!(none.validate().unwrap_err().len(), 1);
    }
}
