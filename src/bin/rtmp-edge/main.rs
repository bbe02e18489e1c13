//! `rtmp-edge`: the relay's command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use getopts::{Matches, Options};
use rtmp_edge::relay::access::{AccessConfig, IpRules, Secret};
use rtmp_edge::relay::{self, config_file, Config};

fn options() -> Options {
    let defaults = Config::default();
    let mut options = Options::new();
    options.optopt("", "config", "read options from this TOML file first (the command line wins)", "FILE");
    options.optopt("", "listen", &format!("address to accept plain RTMP on, or off (default {})", defaults.listen), "ADDR:PORT|off");
    options.optopt("", "workers", "worker threads, each its own loop on the same ports (default 1; auto: one per core)", "N|auto");
    options.optopt(
        "",
        "listen-backlog",
        &format!("connections the kernel holds for each listener until accepted, capped by net.core.somaxconn (default {})", defaults.listen_backlog),
        "N",
    );
    options.optopt("", "tls-listen", "address to accept RTMPS (RTMP over TLS) on (default off)", "ADDR:PORT");
    options.optopt("", "tls-cert", "PEM certificate chain of the RTMPS listener (re-read on reload)", "FILE");
    options.optopt("", "tls-key", "PEM private key of --tls-cert (re-read on reload)", "FILE");
    options.optopt("", "tls-ca", "verify rtmps:// origins and pushes against these PEM CAs, not the system's", "FILE");
    options.optflag("", "tls-insecure-upstream", "do not verify rtmps:// upstream certificates (tests and labs only)");
    options.optopt("", "chunk-size", &format!("outgoing chunk size (default {})", defaults.chunk_size), "BYTES");
    options.optopt("", "gop-cache", "send late joiners the GOP since the last keyframe (default on)", "on|off");
    options.optopt("", "max-connections", &format!("most client connections at once, all workers (default {})", defaults.max_connections), "N");
    options.optopt(
        "",
        "max-connections-per-ip",
        &format!("most connections from one IP, per worker (default {})", defaults.max_connections_per_ip),
        "N",
    );
    options.optopt("", "max-message-size", &format!("largest RTMP message accepted (default {})", defaults.max_message_size), "BYTES");
    options.optopt(
        "",
        "queue-soft-limit",
        &format!("ms a player's oldest queued byte may wait before frames are dropped to the next keyframe (default {})", defaults.queue_soft_limit_ms),
        "MS",
    );
    options.optopt(
        "",
        "queue-hard-limit",
        &format!("ms a player's oldest queued byte may wait before it is disconnected (default {})", defaults.queue_hard_limit_ms),
        "MS",
    );
    options.optopt(
        "",
        "queue-max-bytes",
        &format!("bytes queued for a player, with per-message overhead, before it is disconnected (default {})", defaults.queue_hard_limit_bytes),
        "BYTES",
    );
    options.optopt(
        "",
        "queue-max-messages",
        &format!("messages queued for a player before it is disconnected (default {})", defaults.queue_hard_limit_entries),
        "N",
    );
    options.optopt(
        "",
        "handshake-timeout",
        &format!("seconds to finish handshake and connect (default {})", defaults.handshake_timeout.as_secs()),
        "SECONDS",
    );
    options.optopt("", "idle-timeout", &format!("seconds without traffic before closing (default {})", defaults.idle_timeout.as_secs()), "SECONDS");
    options.optmulti("", "origin", "edge mode: pull from / forward to this origin (repeatable, tried in order)", "HOST:PORT|rtmps://HOST[:PORT]");
    options.optopt(
        "",
        "pull-linger",
        &format!("seconds an unwatched pull stays open (default {})", defaults.pull_linger.as_secs()),
        "SECONDS",
    );
    options.optopt(
        "",
        "upstream-timeout",
        &format!("seconds a pull that delivered media may stay silent (default {})", defaults.upstream_timeout.as_secs()),
        "SECONDS",
    );
    options.optopt(
        "",
        "upstream-connect-timeout",
        &format!("ms for an upstream's DNS and TCP connect (default {})", defaults.upstream_connect_timeout.as_millis()),
        "MS",
    );
    options.optopt(
        "",
        "upstream-handshake-timeout",
        &format!("ms for an upstream's RTMP handshake (default {})", defaults.upstream_handshake_timeout.as_millis()),
        "MS",
    );
    options.optopt(
        "",
        "upstream-reply-timeout",
        &format!("ms for an upstream to answer connect and play/publish (default {})", defaults.upstream_reply_timeout.as_millis()),
        "MS",
    );
    options.optmulti("", "push", "re-publish every local publish (or the named one) there (repeatable)", "rtmp[s]://HOST[:PORT]/APP[/NAME]");
    options.optopt("", "write-batch", "write live frames to players at most every MS milliseconds (default 0: at once)", "MS");
    options.optopt("", "http-listen", "serve the HTTP API, /metrics and the status page here (default off)", "ADDR:PORT");
    options.optopt("", "http-token", "require Authorization: Bearer TOKEN for /metrics and /api/", "TOKEN");
    options.optopt(
        "",
        "http-max-connections",
        &format!("most HTTP connections at once (default {})", defaults.http_max_connections),
        "N",
    );
    options.optopt(
        "",
        "http-header-timeout",
        &format!("seconds an HTTP client has to send a request head (default {})", defaults.http_header_timeout.as_secs()),
        "SECONDS",
    );
    options.optopt(
        "",
        "http-idle-timeout",
        &format!("seconds an idle keep-alive HTTP connection stays open (default {})", defaults.http_idle_timeout.as_secs()),
        "SECONDS",
    );
    options.optopt(
        "",
        "max-upstream-connects",
        &format!("upstream connections being set up at once (default {})", defaults.max_upstream_connects),
        "N",
    );
    options.optflagopt(
        "",
        "proxy-protocol",
        "connections to these listeners (default rtmp) start with a PROXY v1/v2 header, e.g. from HAProxy; its client address is used everywhere",
        "rtmp,rtmps,http|off",
    );
    access_options(&mut options, &defaults.access);
    options.optopt("", "dump", "write each connection's raw inbound bytes to a file in DIR", "DIR");
    options.optopt("", "log-level", "error, warn, info (default), debug or trace; RUST_LOG also works", "LEVEL");
    options.optflag("h", "help", "print this help");
    options.optflag("V", "version", "print the version");
    options
}

/// The access-control options: signed URLs, IP rules, the hook.
fn access_options(options: &mut Options, defaults: &AccessConfig) {
    for (action, requests) in [("publish", "publishes"), ("play", "plays")] {
        options.optopt(
            "",
            &format!("{action}-secret"),
            &format!("{requests} must carry ?exp=UNIX_SECONDS&sig=HEX signed with this secret (see `rtmp-edge sign`)"),
            "SECRET",
        );
        options.optopt("", &format!("{action}-secret-file"), &format!("read the {action} secret from FILE (kept out of ps)"), "FILE");
        options.optmulti("", &format!("allow-{action}"), &format!("allow {action}ing from this address or block (repeatable; first matching rule wins; with any allow rule, addresses no rule matches are denied)"), "CIDR");
        options.optmulti("", &format!("deny-{action}"), &format!("deny {action}ing from this address or block (repeatable)"), "CIDR");
    }
    options.optopt("", "hook-url", "POST JSON here for connect, publish and play (its answer decides) and publish_done, play_done", "http://HOST[:PORT]/PATH");
    options.optopt("", "hook-timeout", &format!("ms a decision waits for the hook (default {})", defaults.hook_timeout.as_millis()), "MS");
    options.optopt("", "hook-fail", "when the hook is down, slow or broken: closed denies (default), open allows", "closed|open");
    options.optopt("", "hook-max-pending", &format!("decisions waiting for the hook at once; more are denied (default {})", defaults.hook_max_pending), "N");
}

fn usage(options: &Options) -> String {
    let brief = "Usage: rtmp-edge [OPTIONS]\n       rtmp-edge check-config FILE   (check a --config file, start nothing)\n       \
                 rtmp-edge inspect FILE        (decode a --dump file)\n       \
                 rtmp-edge sign --secret S [--expires SECONDS] rtmp://HOST/APP/NAME   (print the signed URL)\n\n\
                 An RTMP relay (one thread per worker): publish to rtmp://HOST/APP/NAME, play the same URL.";
    options.usage(brief)
}

fn parse<T: FromStr>(matches: &Matches, name: &str) -> Result<Option<T>, String> {
    match matches.opt_str(name) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| format!("--{name}: cannot read {text:?}")),
    }
}

/// The configuration to run with: defaults, then the `--config` file, then the command line.
fn load_config(matches: &Matches) -> Result<Config, String> {
    let mut config = Config::default();
    if let Some(path) = matches.opt_str("config") {
        config = config_file::load(Path::new(&path), config).map_err(|problems| problems.join("\n"))?.0;
    }
    apply_flags(matches, &mut config)?;
    config.validate().map_err(|problems| problems.join("\n"))?;
    if let Some(dir) = &config.dump_dir {
        std::fs::create_dir_all(dir).map_err(|error| format!("dump {}: {error}", dir.display()))?;
    }
    Ok(config)
}

fn apply_flags(matches: &Matches, config: &mut Config) -> Result<(), String> {
    match matches.opt_str("listen").as_deref() {
        None => {}
        Some("off") => config.rtmp_listener = false,
        Some(_) => {
            config.listen = parse::<SocketAddr>(matches, "listen")?.unwrap_or(config.listen);
            config.rtmp_listener = true;
        }
    }
    if let Some(workers) = matches.opt_str("workers") {
        config.workers = workers.parse().map_err(|error| format!("--{error}"))?;
    }
    if let Some(backlog) = parse::<u32>(matches, "listen-backlog")? {
        config.listen_backlog = backlog;
    }
    if let Some(listen) = parse::<SocketAddr>(matches, "tls-listen")? {
        config.tls_listen = Some(listen);
    }
    for (name, field) in
        [("tls-cert", &mut config.tls_cert), ("tls-key", &mut config.tls_key), ("tls-ca", &mut config.tls_ca)]
    {
        if let Some(path) = matches.opt_str(name) {
            *field = Some(PathBuf::from(path));
        }
    }
    if matches.opt_present("tls-insecure-upstream") {
        config.tls_insecure_upstream = true;
    }
    if let Some(chunk_size) = parse::<u32>(matches, "chunk-size")? {
        if !(128..=0x7FFF_FFFF).contains(&chunk_size) {
            return Err("--chunk-size must be between 128 and 2147483647".to_string());
        }
        config.chunk_size = chunk_size;
    }
    match matches.opt_str("gop-cache").as_deref() {
        None => {}
        Some("on") => config.gop_cache = true,
        Some("off") => config.gop_cache = false,
        Some(other) => return Err(format!("--gop-cache takes on or off, not {other:?}")),
    }
    if let Some(n) = parse(matches, "max-connections")? {
        config.max_connections = n;
    }
    if let Some(n) = parse(matches, "max-connections-per-ip")? {
        config.max_connections_per_ip = n;
    }
    if let Some(n) = parse(matches, "max-message-size")? {
        config.max_message_size = n;
    }
    if let Some(ms) = parse(matches, "queue-soft-limit")? {
        config.queue_soft_limit_ms = ms;
    }
    if let Some(ms) = parse(matches, "queue-hard-limit")? {
        config.queue_hard_limit_ms = ms;
    }
    if let Some(bytes) = parse(matches, "queue-max-bytes")? {
        config.queue_hard_limit_bytes = bytes;
    }
    if let Some(n) = parse(matches, "queue-max-messages")? {
        config.queue_hard_limit_entries = n;
    }
    if config.queue_soft_limit_ms > config.queue_hard_limit_ms {
        return Err("--queue-soft-limit must not exceed --queue-hard-limit".to_string());
    }
    if let Some(seconds) = parse::<u64>(matches, "handshake-timeout")? {
        config.handshake_timeout = Duration::from_secs(seconds);
    }
    if let Some(seconds) = parse::<u64>(matches, "idle-timeout")? {
        config.idle_timeout = Duration::from_secs(seconds);
    }
    if let Some(ms) = parse::<u64>(matches, "write-batch")? {
        config.write_batch = Duration::from_millis(ms.min(1000));
    }
    let origins = matches.opt_strs("origin");
    if !origins.is_empty() {
        config.origins.clear();
    }
    for origin in origins {
        rtmp_edge::url::parse_origin(&origin).map_err(|error| format!("--origin {origin}: {error}"))?;
        config.origins.push(origin);
    }
    if let Some(seconds) = parse::<u64>(matches, "pull-linger")? {
        config.pull_linger = Duration::from_secs(seconds);
    }
    if let Some(seconds) = parse::<u64>(matches, "upstream-timeout")? {
        config.upstream_timeout = Duration::from_secs(seconds.max(1));
    }
    for (name, field) in [
        ("upstream-connect-timeout", &mut config.upstream_connect_timeout),
        ("upstream-handshake-timeout", &mut config.upstream_handshake_timeout),
        ("upstream-reply-timeout", &mut config.upstream_reply_timeout),
    ] {
        if let Some(ms) = parse::<u64>(matches, name)? {
            *field = Duration::from_millis(ms.max(100));
        }
    }
    let pushes = matches.opt_strs("push");
    if !pushes.is_empty() {
        config.push.clear();
    }
    for url in pushes {
        config.push.push(rtmp_edge::url::RtmpUrl::parse(&url).map_err(|error| format!("--push {url}: {error}"))?);
    }
    if let Some(n) = parse(matches, "max-upstream-connects")? {
        config.max_upstream_connects = n;
    }
    if let Some(listen) = parse::<SocketAddr>(matches, "http-listen")? {
        config.http_listen = Some(listen);
    }
    if let Some(token) = matches.opt_str("http-token") {
        config.http_token = Some(token);
    }
    if let Some(n) = parse(matches, "http-max-connections")? {
        config.http_max_connections = n;
    }
    if let Some(seconds) = parse::<u64>(matches, "http-header-timeout")? {
        config.http_header_timeout = Duration::from_secs(seconds.max(1));
    }
    if let Some(seconds) = parse::<u64>(matches, "http-idle-timeout")? {
        config.http_idle_timeout = Duration::from_secs(seconds.max(1));
    }
    if let Some(dir) = matches.opt_str("dump") {
        config.dump_dir = Some(PathBuf::from(dir));
    }
    if matches.opt_present("proxy-protocol") {
        let names = matches.opt_str("proxy-protocol").unwrap_or_else(|| "rtmp".to_string());
        let names: Vec<&str> = names.split(',').collect();
        config.proxy_protocol =
            relay::ProxyProtocolListeners::parse(&names).map_err(|error| format!("--proxy-protocol: {error}"))?;
    }
    apply_access_flags(matches, &mut config.access)
}

fn apply_access_flags(matches: &Matches, access: &mut AccessConfig) -> Result<(), String> {
    for (action, secret) in [("publish", &mut access.publish_secret), ("play", &mut access.play_secret)] {
        let inline = matches.opt_str(&format!("{action}-secret"));
        let file = matches.opt_str(&format!("{action}-secret-file"));
        *secret = match (inline, file) {
            (Some(_), Some(_)) => return Err(format!("give --{action}-secret or --{action}-secret-file, not both")),
            (Some(text), None) => Some(Secret::new(&text).ok_or_else(|| format!("--{action}-secret must not be empty"))?),
            (None, Some(path)) => Some(Secret::from_file(Path::new(&path)).map_err(|error| format!("--{action}-secret-file {error}"))?),
            (None, None) => secret.take(),
        };
    }
    for (action, rules) in [("publish", &mut access.publish_rules), ("play", &mut access.play_rules)] {
        // Allow and deny rules keep the order they were given in, across both options.
        let mut given: Vec<(usize, bool, String)> = Vec::new();
        for (allow, name) in [(true, format!("allow-{action}")), (false, format!("deny-{action}"))] {
            given.extend(matches.opt_strs_pos(&name).into_iter().map(|(position, block)| (position, allow, block)));
        }
        if given.is_empty() {
            continue;
        }
        given.sort_by_key(|(position, _, _)| *position);
        let pairs: Vec<(bool, &str)> = given.iter().map(|(_, allow, block)| (*allow, block.as_str())).collect();
        *rules = IpRules::parse(&pairs).map_err(|errors| {
            errors.iter().map(|error| format!("--allow-{action}/--deny-{action}: {error}")).collect::<Vec<_>>().join("\n")
        })?;
    }
    if let Some(url) = matches.opt_str("hook-url") {
        access.hook_url = Some(url.parse().map_err(|error| format!("--hook-url: {error}"))?);
    }
    if let Some(ms) = parse::<u64>(matches, "hook-timeout")? {
        access.hook_timeout = Duration::from_millis(ms.max(1));
    }
    if let Some(policy) = matches.opt_str("hook-fail") {
        access.hook_fail = policy.parse().map_err(|error| format!("--{error}"))?;
    }
    if let Some(n) = parse(matches, "hook-max-pending")? {
        access.hook_max_pending = n;
    }
    Ok(())
}

/// `rtmp-edge sign --secret S [--expires SECONDS] URL`: the URL with `exp` and `sig`.
fn sign(args: &[String]) -> ExitCode {
    let mut options = Options::new();
    options.optopt("", "secret", "the publish or play secret", "SECRET");
    options.optopt("", "secret-file", "read the secret from FILE", "FILE");
    options.optopt("", "expires", "seconds from now the URL stays valid (default 3600)", "SECONDS");
    let brief = "Usage: rtmp-edge sign (--secret S | --secret-file FILE) [--expires SECONDS] rtmp://HOST[:PORT]/APP/NAME";
    let fail = |message: String| {
        eprintln!("rtmp-edge sign: {message}\n\n{}", options.usage(brief));
        ExitCode::from(2)
    };
    let matches = match options.parse(args) {
        Ok(matches) => matches,
        Err(error) => return fail(error.to_string()),
    };
    let secret = match (matches.opt_str("secret"), matches.opt_str("secret-file")) {
        (Some(text), None) => Secret::new(&text).ok_or_else(|| "--secret must not be empty".to_string()),
        (None, Some(path)) => Secret::from_file(Path::new(&path)),
        _ => Err("give --secret or --secret-file".to_string()),
    };
    let secret = match secret {
        Ok(secret) => secret,
        Err(error) => return fail(error),
    };
    let expires = match parse::<u64>(&matches, "expires") {
        Ok(expires) => expires.unwrap_or(3600),
        Err(error) => return fail(error),
    };
    let [url] = matches.free.as_slice() else { return fail("name one URL to sign".to_string()) };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    match rtmp_edge::relay::access::signed_url::sign_url(secret.bytes(), url, now.saturating_add(expires)) {
        Ok(signed) => {
            println!("{signed}");
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
}

/// `rtmp-edge check-config FILE`: every problem with its line, or "ok".
fn check_config(path: &str) -> ExitCode {
    let checked = config_file::load(Path::new(path), Config::default())
        .and_then(|(config, _)| config.validate().map_err(|problems| problems.iter().map(|p| format!("{path}: {p}")).collect()));
    match checked {
        Ok(()) => {
            println!("{path}: ok");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in problems {
                println!("{problem}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The log level: `--log-level`, else the file's `log-level`, else info.
fn log_level(matches: &Matches) -> String {
    if let Some(level) = matches.opt_str("log-level") {
        return level;
    }
    let from_file = matches.opt_str("config").and_then(|path| {
        let text = std::fs::read_to_string(path).ok()?;
        config_file::parse(&text).ok()?.log_level().map(str::to_string)
    });
    from_file.unwrap_or_else(|| "info".to_string())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit: every player is a descriptor, and the
/// usual soft limit of 1024 would cap the relay far below what it can serve.
fn raise_open_files_limit() {
    match rlimit::Resource::NOFILE.get() {
        Ok((soft, hard)) if soft >= hard => log::info!("open files limit (RLIMIT_NOFILE) is {soft}, the hard limit"),
        Ok((soft, hard)) => match rlimit::Resource::NOFILE.set(hard, hard) {
            Ok(()) => log::info!("open files limit (RLIMIT_NOFILE) raised from {soft} to {hard}"),
            Err(error) => log::warn!("open files limit (RLIMIT_NOFILE) stays at {soft}: cannot raise it to {hard}: {error}"),
        },
        Err(error) => log::warn!("cannot read the open files limit (RLIMIT_NOFILE): {error}"),
    }
}

/// `--proxy-protocol` alone means the RTMP listener, so its value must be attached
/// (`--proxy-protocol=rtmp,http`) for the option parser; a following argument made only of
/// listener names is taken as its value too, as operators write it.
fn join_proxy_protocol_value(args: Vec<String>) -> Vec<String> {
    let mut joined = Vec::with_capacity(args.len());
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        let is_list = |next: &String| next.split(',').all(|name| ["rtmp", "rtmps", "http", "off"].contains(&name));
        match args.peek() {
            Some(next) if arg == "--proxy-protocol" && is_list(next) => {
                let value = args.next().unwrap_or_default();
                joined.push(format!("--proxy-protocol={value}"));
            }
            _ => joined.push(arg),
        }
    }
    joined
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("sign") {
        return sign(args.get(1..).unwrap_or_default());
    }
    let args = join_proxy_protocol_value(args);
    let options = options();
    let matches = match options.parse(&args) {
        Ok(matches) => matches,
        Err(error) => {
            eprintln!("rtmp-edge: {error}\n\n{}", usage(&options));
            return ExitCode::from(2);
        }
    };
    if matches.opt_present("help") {
        print!("{}", usage(&options));
        return ExitCode::SUCCESS;
    }
    if matches.opt_present("version") {
        println!("rtmp-edge {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if matches.free.first().map(String::as_str) == Some("check-config") {
        let Some(path) = matches.free.get(1) else {
            eprintln!("rtmp-edge check-config: name the file to check");
            return ExitCode::from(2);
        };
        return check_config(path);
    }
    let level = log_level(&matches);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).format_timestamp_millis().init();

    if matches.free.first().map(String::as_str) == Some("inspect") {
        let Some(path) = matches.free.get(1) else {
            eprintln!("rtmp-edge inspect: name the dump file to decode");
            return ExitCode::from(2);
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                eprintln!("rtmp-edge inspect: {path}: {error}");
                return ExitCode::FAILURE;
            }
        };
        let stdout = std::io::stdout();
        return match relay::inspect(&bytes, &mut stdout.lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("rtmp-edge inspect: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(extra) = matches.free.first() {
        eprintln!("rtmp-edge: unexpected argument {extra:?}\n\n{}", usage(&options));
        return ExitCode::from(2);
    }
    let config = match load_config(&matches) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("rtmp-edge: {error}");
            return ExitCode::from(2);
        }
    };
    raise_open_files_limit();
    // A reload reads the file again (if any) and puts the command line on top, as at start:
    // secret files, certificates and the file are all read afresh.
    let reloader: Option<relay::Reloader> = Some(Box::new(move || load_config(&matches)));
    match relay::run_with_reloader(config, reloader) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log::error!("rtmp-edge: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests;
