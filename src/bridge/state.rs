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
    /// The state directory: webhooks' positions and dead letters.
    pub(super) state: std::path::PathBuf,
    /// Each webhook's signing key (read from its `secret_file`), by index.
    pub(super) webhook_secrets: Vec<Option<Vec<u8>>>,
    /// The client webhooks are delivered with.
    pub(super) webhooks: super::webhook::Client,
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
        let mut webhook_secrets = Vec::new();
        for w in &bridge_policy.webhooks {
            webhook_secrets.push(match &w.secret_file {
                None => None,
                Some(f) => {
                    let file =
                        crate::app::config::beside(Some(std::path::Path::new(&policy.source)), f);
                    let text = std::fs::read_to_string(&file).map_err(|e| {
                        format!(
                            "bridge webhook `{}`: secret_file {}: {e}",
                            w.name,
                            file.display()
                        )
                    })?;
                    let secret = text.trim();
                    if secret.len() < 16 {
                        return Err(format!(
                            "bridge webhook `{}`: secret_file {} holds fewer than 16 characters",
                            w.name,
                            file.display()
                        ));
                    }
                    Some(secret.as_bytes().to_vec())
                }
            });
        }
        // Only webhooks keep state here: a bridge without them does not
        // need a state directory.
        let state = match crate::app::config::state_dir() {
            Ok(dir) => dir,
            Err(e) if !bridge_policy.webhooks.is_empty() => return Err(e.to_string()),
            Err(_) => std::path::PathBuf::new(),
        };
        let webhooks = super::webhook::client()?;
        let limiter = guard::RateLimiter::new(bridge_policy.rate_limit.clone());
        let replay = guard::ReplayCache::new(bridge_policy.replay_window.get(), REPLAY_CAPACITY);
        Ok(Bridge {
            limiter,
            replay,
            metrics: guard::Metrics::default(),
            started: std::time::Instant::now(),
            events: super::events::Feed::default(),
            closing: tokio::sync::watch::Sender::new(false),
            state,
            webhook_secrets,
            webhooks,
            clients,
            app,
        })
    }

    /// The same bridge keeping its webhooks' positions and dead letters
    /// under `dir` instead of the user's state directory.
    pub fn with_state_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.state = dir;
        self
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
