//! What the bridge's handlers share: the application, the configured
//! clients, and the guards (rate limits, replay cache, metrics).

use std::collections::BTreeMap;

use super::{REPLAY_CAPACITY, guard};
use crate::app::App;

/// A configured client, ready to check requests.
#[derive(Debug, Clone)]
pub(super) struct Client {
    pub(super) name: String,
    pub(super) digest: [u8; 32],
    pub(super) secret: Option<Vec<u8>>,
    pub(super) senders: BTreeMap<String, String>,
}

/// What the handlers share.
#[derive(Debug)]
pub struct Bridge {
    /// The application, held for as long as the bridge serves.
    pub(super) app: App,
    pub(super) clients: Vec<Client>,
    pub(super) limiter: guard::RateLimiter,
    pub(super) replay: guard::ReplayCache,
    pub(super) metrics: guard::Metrics,
    /// When the bridge started serving, for `/healthz`'s uptime.
    pub(super) started: std::time::Instant,
    /// `GET /v1/events`' tail and broadcast.
    pub(super) events: super::events::Feed,
    /// True once the bridge shuts down: event streams end.
    pub(super) closing: tokio::sync::watch::Sender<bool>,
}

impl Bridge {
    /// Reads the clients' signing secrets from the environment; a client
    /// whose secret variable is unset is an error, not an unsigned client.
    /// The bridge decides through the ledger cache, as it always has
    /// (`App::deciding_through_cache`).
    pub fn new(app: App) -> Result<Self, String> {
        let app = app.deciding_through_cache();
        let policy = &app.policy;
        let mut clients = Vec::new();
        for c in &policy.policy.bridge.clients {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(&c.token_sha256.0, &mut digest)
                .map_err(|e| format!("bridge client `{}`: token_sha256: {e}", c.name))?;
            let secret = match &c.signing_secret_env {
                None => None,
                Some(var) => Some(
                    std::env::var(var)
                        .ok()
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| {
                            format!(
                                "bridge client `{}`: signing_secret_env {var} is not set",
                                c.name
                            )
                        })?
                        .into_bytes(),
                ),
            };
            clients.push(Client {
                name: c.name.clone(),
                digest,
                secret,
                senders: c.senders.clone(),
            });
        }
        let bridge_policy = &policy.policy.bridge;
        let limiter = guard::RateLimiter::new(bridge_policy.rate_limit.clone());
        let replay = guard::ReplayCache::new(bridge_policy.replay_window.get(), REPLAY_CAPACITY);
        Ok(Bridge {
            limiter,
            replay,
            metrics: guard::Metrics::default(),
            started: std::time::Instant::now(),
            events: super::events::Feed::default(),
            closing: tokio::sync::watch::Sender::new(false),
            clients,
            app,
        })
    }

    /// The audit log's path.
    pub(super) fn log_path(&self) -> &std::path::Path {
        self.app.log.path()
    }

    /// The policy the bridge serves under.
    pub(super) fn policy(&self) -> &crate::core::policy::LoadedPolicy {
        &self.app.policy
    }
}
