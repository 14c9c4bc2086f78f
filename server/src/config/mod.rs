//! Configuration: defaults ← TOML file ← `SWITCHBOARD_*` environment ← CLI flags.
//!
//! Every limit is a key of [`Limits`]; durations are given in milliseconds.
//! Environment variables use `__` to reach nested keys, for example
//! `SWITCHBOARD_LIMITS__MAX_BATCH=50`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod api;
pub(crate) mod auth;
pub(crate) mod pattern;
mod redis;
mod tls;
mod upstream;
mod webhook;

pub use api::ApiKey;
pub use auth::{AuthConfig, Authorization, ConnectHook, JwksSource, JwtKey};
pub use pattern::TopicPattern;
pub use redis::RedisConfig;
pub use tls::TlsConfig;
pub use upstream::UpstreamConfig;
pub use webhook::{WebhookConfig, WebhookEvent};

use crate::error::Error;

/// The whole configuration of a gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where to listen. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Limits that protect the gateway and its sessions.
    pub limits: Limits,
    /// Register the demo methods (`echo`, `demo.*`, `chat.*`). Default: on in dev mode.
    pub demo: Option<bool>,
    /// Allow clients to publish on topics with `rpc.publish`. Default `true`.
    pub client_publish: bool,
    /// Subscribe every session to its user's personal topic `user:{id}`. Default `true`.
    pub personal_topics: bool,
    /// Topics with history, by pattern. Default: `user:*`, 100 messages, 10 minutes.
    pub streams: Vec<StreamConfig>,
    /// Backends of the upstream proxy: a client call to an unregistered method that starts
    /// with an entry's `prefix` is forwarded to its HTTP JSON-RPC `url`, signed with its
    /// `secret`, within its `timeout_ms` (default 10 000); see [`crate::UpstreamConfig`].
    /// Default: none.
    pub upstreams: Vec<UpstreamConfig>,
    /// The lifecycle webhook: connect, disconnect, subscribe and unsubscribe events posted to
    /// a URL, signed, queued (dropped past `queue_size`) and retried; see
    /// [`crate::WebhookConfig`]. Default: off.
    pub webhook: Option<WebhookConfig>,
    /// Native TLS from PEM certificate and key files: the one port then serves `wss://` and
    /// `https://` only; see [`crate::TlsConfig`]. Default: off (plain TCP).
    pub tls: Option<TlsConfig>,
    /// Keys for the server API (`POST /api`). With none, the API is open in dev mode and
    /// closed otherwise.
    pub api_keys: Vec<ApiKey>,
    /// How clients authenticate (JWT keys, JWKS, connect hook). Setting it turns dev mode off.
    pub auth: Option<AuthConfig>,
    /// Which topics and methods users may use. Default: everything.
    pub authorization: Authorization,
    /// Origins allowed to open sessions (exact `scheme://host[:port]`); empty allows any.
    pub allowed_origins: Vec<String>,
    /// Serve `/metrics` without an API key outside dev mode. Default `false`.
    pub metrics_public: bool,
    /// Accept permessage-deflate (RFC 7692) from clients that offer it, as every browser
    /// does. Each message is deflated on its own, once for all the sessions it goes to, and
    /// no session keeps compressor state. Default `true`.
    pub compression: bool,
    /// Messages shorter than this many bytes are sent uncompressed. Default 256.
    pub compression_threshold: usize,
    /// Proxies whose `X-Forwarded-For` is believed when limiting upgrades per IP.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Topics (names or `prefix*` patterns) whose subscribers are told when a session joins or
    /// leaves: `rpc.join` / `rpc.leave {topic, session, user}`. Default: none.
    pub join_leave: Vec<TopicPattern>,
    /// Topics (names or `prefix*` patterns) whose subscribers are kept in presence
    /// (`presence {topic}`, `rpc.presence`); other topics pay nothing for it on subscribe.
    /// Default: every topic in dev mode, none otherwise.
    pub presence_topics: Option<Vec<TopicPattern>>,
    /// Which broker connects the nodes: `local` (one node, the default) or `redis`.
    pub broker: BrokerKind,
    /// Settings of the Redis broker.
    pub redis: RedisConfig,
}

/// Which broker connects the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// In process: a single node.
    Local,
    /// Redis: many nodes (see `redis`).
    Redis,
}

/// History kept for the topics a pattern matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// A topic name, or a prefix followed by `*` (for example `chat:*`).
    pub pattern: TopicPattern,
    /// How many publications to keep. Default 100.
    #[serde(default = "default_history_size")]
    pub history_size: usize,
    /// How long to keep a publication, in milliseconds. Default 600 000.
    #[serde(default = "default_history_ttl")]
    pub history_ttl_ms: u64,
}

fn default_history_size() -> usize {
    100
}

fn default_history_ttl() -> u64 {
    600_000
}

impl StreamConfig {
    /// Whether the pattern matches `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        self.pattern.matches(topic)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            limits: Limits::default(),
            demo: None,
            client_publish: true,
            personal_topics: true,
            streams: vec![StreamConfig {
                pattern: TopicPattern::new("user:*"),
                history_size: default_history_size(),
                history_ttl_ms: default_history_ttl(),
            }],
            upstreams: Vec::new(),
            webhook: None,
            tls: None,
            api_keys: Vec::new(),
            auth: None,
            authorization: Authorization::default(),
            allowed_origins: Vec::new(),
            metrics_public: false,
            compression: true,
            compression_threshold: 256,
            trusted_proxies: Vec::new(),
            join_leave: Vec::new(),
            presence_topics: None,
            broker: BrokerKind::Local,
            redis: RedisConfig::default(),
        }
    }
}

/// Limits. Each one is documented with its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest incoming message in bytes; a larger one closes the session with 1009. Default 1 MiB.
    pub max_message_size: usize,
    /// Most messages in one batch; a larger batch gets one `-32600` error. Default 100.
    pub max_batch: usize,
    /// Bytes waiting in a session's outbound queue before it is closed as a slow consumer
    /// (close code 4000). Default 4 MiB.
    pub max_queue_bytes: usize,
    /// Client requests handled at once per session; more get `-32003` at once. Default 64.
    pub max_in_flight: usize,
    /// Calls from the server waiting for this client's answers; more fail with `-32010`. Default 64.
    pub max_pending_calls: usize,
    /// Topics one session may be subscribed to (its personal topic not counted). Default 128.
    pub max_subscriptions: usize,
    /// Longest topic name in bytes. Default 256.
    pub max_topic_len: usize,
    /// Ping interval in milliseconds. Default 25 000.
    pub ping_interval_ms: u64,
    /// How long a ping may go unanswered before the session is closed with 4001, in
    /// milliseconds. Default 20 000.
    pub pong_timeout_ms: u64,
    /// Timeout of a server→client call when the caller gives none, in milliseconds. Default 10 000.
    pub call_timeout_ms: u64,
    /// Longest timeout a caller may ask for, in milliseconds. Default 300 000.
    pub max_call_timeout_ms: u64,
    /// Time for a client to send its HTTP upgrade request after connecting, in milliseconds.
    /// Default 10 000.
    pub handshake_timeout_ms: u64,
    /// Most sessions at once on this node; the next is refused with HTTP 503. Default 100 000.
    pub max_sessions: usize,
    /// Most sessions of one user on this node; the newest is refused with HTTP 429. Default 100.
    pub max_sessions_per_user: usize,
    /// Messages a session may send per second (sustained). Past it, requests get `-32002`
    /// and notifications are dropped. Default 200.
    pub rate_per_second: u32,
    /// Messages a session may send in a burst above the sustained rate. Default 400.
    pub rate_burst: u32,
    /// Messages refused in a row for the rate before the session is closed with 4004. Default 1000.
    pub rate_abuse_close: u32,
    /// WebSocket upgrades one client IP may make per minute; more get HTTP 429. Loopback
    /// addresses are not limited. Default 600.
    pub upgrades_per_ip_per_minute: u32,
    /// Most sessions a multicast call waits for; the rest get a `-32010` entry. Default 10 000.
    pub max_call_fanout: usize,
    /// Bytes read from a socket at a time. The read buffer exists only while something is
    /// unread; a larger frame gets a buffer of its own size, freed once handled. Default 1024.
    pub read_buffer_size: usize,
    /// Most bytes of queued frames handed to the socket in one vectored write (frames are
    /// not copied; nothing is kept between writes). Default 4096.
    pub write_buffer_size: usize,
    /// Largest response a method may produce, in bytes. Default 1 MiB.
    pub max_response_size: usize,
    /// Most publications one `rpc.subscribe` replays per topic (a larger gap is reported as
    /// not recovered), and the largest `limit` of `history` and `rpc.history` (a larger one
    /// gets `-32602`). Default 1000.
    pub max_replay: usize,
    /// How long a new session holds back pushes on its personal topic, waiting for an
    /// `rpc.subscribe` with a position to resume from, in milliseconds. Any other first
    /// message ends the wait at once. Default 1000.
    pub personal_hold_ms: u64,
    /// Time given to in-flight calls on shutdown before sessions are closed, in milliseconds.
    /// Default 5 000.
    pub shutdown_grace_ms: u64,
    /// Most entries one presence answer holds: the most a page may ask for, and past which
    /// an unpaged `presence` is refused with `-32010` (ask with `limit` and `after`). Default 1000.
    pub max_presence_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 1 << 20,
            max_batch: 100,
            max_queue_bytes: 4 << 20,
            max_in_flight: 64,
            max_pending_calls: 64,
            max_subscriptions: 128,
            max_topic_len: 256,
            ping_interval_ms: 25_000,
            pong_timeout_ms: 20_000,
            call_timeout_ms: 10_000,
            max_call_timeout_ms: 300_000,
            handshake_timeout_ms: 10_000,
            max_sessions: 100_000,
            max_sessions_per_user: 100,
            rate_per_second: 200,
            rate_burst: 400,
            rate_abuse_close: 1000,
            upgrades_per_ip_per_minute: 600,
            max_call_fanout: 10_000,
            read_buffer_size: 1024,
            write_buffer_size: 4096,
            max_response_size: 1 << 20,
            max_replay: 1000,
            personal_hold_ms: 1000,
            shutdown_grace_ms: 5_000,
            max_presence_entries: 1000,
        }
    }
}

impl Limits {
    pub(crate) fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }
    pub(crate) fn pong_timeout(&self) -> Duration {
        Duration::from_millis(self.pong_timeout_ms)
    }
    pub(crate) fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }
    /// Clamps a caller's timeout to the configured maximum.
    pub(crate) fn clamp_timeout(&self, t: Duration) -> Duration {
        t.min(Duration::from_millis(self.max_call_timeout_ms))
    }
    pub(crate) fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }
    pub(crate) fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

impl Config {
    /// The history policy of `topic`, if it is recoverable (the first matching pattern wins).
    pub fn stream_for(&self, topic: &str) -> Option<&StreamConfig> {
        self.streams.iter().find(|s| s.matches(topic))
    }

    /// Loads defaults, then `file` (TOML) if given, then `SWITCHBOARD_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, Error> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            // figment reads a missing file as an empty one: a mistyped path
            // would otherwise start a gateway with the defaults.
            std::fs::metadata(file).map_err(|source| Error::ReadFile {
                key: "--config".to_owned(),
                path: file.to_owned(),
                source,
            })?;
            figment = figment.merge(Toml::file(file));
        }
        // SWITCHBOARD_CONFIG names the file itself (see the CLI), and
        // SWITCHBOARD_TEST_* belong to the test suite: neither is a key.
        let env = Env::prefixed("SWITCHBOARD_")
            .ignore(&["CONFIG"])
            .filter(|key| !key.as_str().to_ascii_lowercase().starts_with("test_"))
            .split("__");
        figment = figment.merge(env);
        let config: Config = figment.extract().map_err(|e| Error::Load(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// With `compression` on: the size from which messages are deflated.
    pub(crate) fn deflate_threshold(&self) -> Option<usize> {
        self.compression.then_some(self.compression_threshold)
    }

    /// Whether the gateway runs in dev mode: nothing configures authentication.
    pub fn dev_mode(&self) -> bool {
        self.auth.is_none()
    }

    /// The topics whose presence is kept: `presence_topics`, or by default
    /// every topic in dev mode and none otherwise.
    pub fn presence_patterns(&self) -> Vec<TopicPattern> {
        match &self.presence_topics {
            Some(patterns) => patterns.clone(),
            None if self.dev_mode() => vec![TopicPattern::new("*")],
            None => Vec::new(),
        }
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<(), Error> {
        let l = &self.limits;
        let positive = [
            ("limits.max_message_size", l.max_message_size),
            ("limits.max_batch", l.max_batch),
            ("limits.max_queue_bytes", l.max_queue_bytes),
            ("limits.max_in_flight", l.max_in_flight),
            ("limits.max_topic_len", l.max_topic_len),
            ("limits.read_buffer_size", l.read_buffer_size),
            ("limits.max_sessions", l.max_sessions),
            ("limits.max_presence_entries", l.max_presence_entries),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(Error::invalid(key, "must be greater than 0"));
            }
        }
        for (key, value) in [
            ("limits.ping_interval_ms", l.ping_interval_ms),
            ("limits.pong_timeout_ms", l.pong_timeout_ms),
        ] {
            if value == 0 {
                return Err(Error::invalid(key, "must be greater than 0"));
            }
        }
        for upstream in &self.upstreams {
            upstream.validate()?;
        }
        if let Some(webhook) = &self.webhook {
            webhook.validate()?;
        }
        if self.dev_mode() && !self.listen.ip().is_loopback() {
            return Err(Error::invalid(
                "listen",
                format!(
                    "dev mode (no authentication configured) refuses to listen on the non-loopback address {}; \
                     configure authentication or listen on 127.0.0.1",
                    self.listen
                ),
            ));
        }
        Ok(())
    }
}

/// Reads the `http://` or `https://` URL a configuration key holds.
pub(crate) fn http_url(key: String, url: &str) -> Result<url::Url, Error> {
    match url::Url::parse(url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(url),
        Ok(_) => Err(Error::Invalid {
            key,
            why: "must be an http:// or https:// URL".to_owned(),
        }),
        Err(source) => Err(Error::Url { key, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_mode_refuses_public_addresses() {
        let config = Config {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..Config::default()
        };
        assert!(config.validate().is_err());
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let mut config = Config::default();
        config.limits.pong_timeout_ms = 0;
        let error = config.validate().expect_err("a pong timeout of 0 is refused");
        assert!(
            matches!(&error, Error::Invalid { key, why } if key == "limits.pong_timeout_ms" && why == "must be greater than 0"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "invalid configuration: limits.pong_timeout_ms: must be greater than 0"
        );

        let config = Config {
            upstreams: vec![UpstreamConfig {
                prefix: "billing.".into(),
                url: "not a url".into(),
                timeout_ms: 1000,
                secret: "s".into(),
            }],
            ..Config::default()
        };
        let error = config.validate().expect_err("the URL does not parse");
        assert!(
            matches!(&error, Error::Url { key, .. } if key == r#"upstreams["billing."].url"#),
            "{error:?}"
        );
        let source = std::error::Error::source(&error).expect("the parse error is kept");
        assert!(source.downcast_ref::<url::ParseError>().is_some(), "{source:?}");
    }

    #[test]
    fn a_value_of_the_wrong_type_keeps_figments_error() {
        let dir = std::env::temp_dir().join(format!("sb-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[limits]\nmax_batch = \"many\"\n").unwrap();
        let error = Config::load(Some(&file)).expect_err("max_batch is a number");
        let Error::Load(figment) = &error else {
            panic!("{error:?}")
        };
        assert!(figment.to_string().contains("max_batch"), "{figment}");
        let source = std::error::Error::source(&error).expect("figment's error is kept");
        assert_eq!(source.to_string(), figment.to_string());

        let missing = dir.join("missing.toml");
        let error = Config::load(Some(&missing)).expect_err("the file is missing");
        assert!(
            matches!(&error, Error::ReadFile { key, path, .. } if key == "--config" && *path == missing),
            "{error:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn patterns_are_read_at_load() {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(
                "join_leave = [\"room:*\"]\n[[streams]]\npattern = \"chat:*\"\n",
            ))
            .extract()
            .unwrap();
        assert!(config.join_leave[0].is_prefix());
        assert!(config.join_leave[0].matches("room:1"));
        assert_eq!(config.stream_for("chat:x").map(|s| s.pattern.as_str()), Some("chat:*"));
        assert_eq!(config.stream_for("news"), None);
    }

    #[test]
    fn toml_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("sb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9999\"\n[limits]\nmax_batch = 7\n").unwrap();
        let config = Config::load(Some(&file)).unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.limits.max_batch, 7);
        assert_eq!(config.limits.max_in_flight, Limits::default().max_in_flight);
    }
}
