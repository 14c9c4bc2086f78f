//! The `redis` section: the Redis broker's connection and keys.

use serde::{Deserialize, Serialize};

/// Settings of the Redis broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// The Redis URL. Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// A prefix for every key and channel, so several clusters can share a Redis. Default `sb`.
    pub prefix: String,
    /// How often a node refreshes its heartbeat, in milliseconds. Default 2 000.
    pub heartbeat_ms: u64,
    /// How long a node's sessions stay in presence after its last heartbeat, in
    /// milliseconds. Default 6 000.
    pub node_ttl_ms: u64,
    /// Timeout of one Redis command, in milliseconds. Default 2 000.
    pub command_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            prefix: "sb".to_owned(),
            heartbeat_ms: 2_000,
            node_ttl_ms: 6_000,
            command_timeout_ms: 2_000,
        }
    }
}
