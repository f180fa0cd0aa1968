//! The typed policy: what the policy file may say, and nothing else.
//!
//! Every struct denies unknown keys. The `Default` values here are Rust's
//! zero values and only serve to validate a partial user file; the real
//! defaults are the embedded `config/opsgate.yaml`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::core::classify::LexiconSpec;
use crate::core::classify::schema::{GlobPattern, RuleSpec, ToolSpec};
use crate::core::duration::HumanDuration;
use crate::core::event::Channel;
use crate::core::redact::RedactPattern;
use crate::core::risk::RiskLevel;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub execution: ExecutionPolicy,
    pub safety: SafetyPolicy,
    pub approvals: ApprovalPolicy,
    pub identity: IdentityPolicy,
    pub audit: AuditPolicy,
    /// When present, only these people may approve, each within their
    /// level and channels.
    pub approvers: Option<Vec<Approver>>,
    pub tui: TuiPolicy,
    pub bridge: BridgePolicy,
    pub backends: BackendsPolicy,
    pub aliases: BTreeMap<String, String>,
    pub tools: BTreeMap<String, ToolSpec>,
    pub rules: Vec<RuleSpec>,
    /// Verbs and words added to the built-in lexicon.
    #[serde(skip_serializing_if = "LexiconSpec::is_empty")]
    pub lexicon: LexiconSpec,
    /// Where the audit log lives (team mode); absent: the file log.
    #[serde(skip_serializing_if = "StorePolicy::is_empty")]
    pub store: StorePolicy,
    /// The people who may sign (`identity.allowed_signers` and approvers'
    /// `keys`), set when the policy loads; in the policy hash by the
    /// file's digest and the inline keys.
    #[serde(skip)]
    pub signers: crate::core::identity::Signers,
}

impl Policy {
    /// Names people as opsgate compares them: each approver and each chat
    /// sender's person in canonical form (`core::identity`), and no two
    /// approvers who are the same person by their confusable skeletons
    /// (`bob` and the Cyrillic `bоb`).
    pub fn canonicalize_people(&mut self) -> Result<(), String> {
        use crate::core::identity::{canonical_name, person_key};
        for (i, admin) in self.identity.policy_admins.iter_mut().enumerate() {
            *admin =
                canonical_name(admin).map_err(|e| format!("identity.policy_admins[{i}]: {e}"))?;
        }
        self.identity.policy_admins.sort_by_key(|a| person_key(a));
        self.identity
            .policy_admins
            .dedup_by(|a, b| person_key(a) == person_key(b));
        if let Some(list) = &mut self.approvers {
            let mut seen: Vec<(String, String)> = Vec::with_capacity(list.len());
            for (i, a) in list.iter_mut().enumerate() {
                a.name = canonical_name(&a.name).map_err(|e| format!("approvers[{i}]: {e}"))?;
                let key = person_key(&a.name);
                if let Some((other, _)) = seen.iter().find(|(_, k)| *k == key) {
                    return Err(format!(
                        "approvers[{i}]: `{}` and `{other}` are the same person (their names are confusable); name each person once",
                        a.name
                    ));
                }
                seen.push((a.name.clone(), key));
            }
        }
        for c in &mut self.bridge.clients {
            for (id, person) in &mut c.senders {
                *person = canonical_name(person)
                    .map_err(|e| format!("bridge.clients `{}`: senders `{id}`: {e}", c.name))?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionPolicy {
    pub auto_approve_low_risk: bool,
    pub require_dry_run: bool,
    /// Plans exempt from `require_dry_run`, each with the reason.
    pub dry_run_exempt: Vec<DriftExemption>,
    /// Roll back after a failure or a stop without asking.
    pub auto_rollback: bool,
    /// What a step's environment is made of.
    pub environment: EnvironmentPolicy,
}

/// A step's environment: the inherited variables that pass (names or
/// globs), and its `PATH`. Nothing else is inherited; `BASH_ENV` and `ENV`
/// never pass (`core::environment`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvironmentPolicy {
    pub pass: Vec<GlobPattern>,
    pub path: String,
}

impl ExecutionPolicy {
    /// What the types cannot say: a PATH, and a reason for every dry-run
    /// exemption.
    pub fn check(&self) -> Result<(), String> {
        if self.environment.path.trim().is_empty() {
            return Err("execution.environment.path: a step needs a PATH".into());
        }
        if let Some(d) = self
            .dry_run_exempt
            .iter()
            .find(|d| d.reason.trim().is_empty())
        {
            return Err(format!(
                "execution.dry_run_exempt: `{}` needs a reason",
                d.plan.as_str()
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafetyPolicy {
    pub require_approval: bool,
    pub block_production: bool,
    pub production_namespaces: Vec<String>,
    pub production_contexts: Vec<GlobPattern>,
    /// Cloud profiles, projects, resource groups, subscriptions, hosts and
    /// stacks (globs) that are production, beyond the lexicon's production
    /// words (`prod`, `production`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub production_scopes: Vec<GlobPattern>,
    /// The same, for one kind of scope only: cloud profiles (`--profile`,
    /// `AWS_PROFILE`), projects (`--project`), resource groups (`-g`),
    /// subscriptions, hosts (`-h`, `--host`, URIs, `ssh` hosts, `PGHOST`)
    /// and stacks or workspaces (`--stack`, `TF_WORKSPACE`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub production_profiles: Vec<GlobPattern>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub production_projects: Vec<GlobPattern>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub production_resource_groups: Vec<GlobPattern>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub production_subscriptions: Vec<GlobPattern>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub production_hosts: Vec<GlobPattern>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub production_stacks: Vec<GlobPattern>,
    pub allow_critical: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalPolicy {
    pub required: RequiredApprovals,
    pub ttl: HumanDuration,
    /// From which level the plan's submitter may not approve it.
    pub separation_of_duties: SeparationOfDuties,
    /// The highest level each channel may approve.
    pub channel_max_risk: BTreeMap<Channel, RiskLevel>,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            required: RequiredApprovals::default(),
            ttl: HumanDuration::from_secs(30 * 60),
            separation_of_duties: SeparationOfDuties::default(),
            channel_max_risk: BTreeMap::new(),
        }
    }
}

/// `approvals.separation_of_duties`: a level (from it up, the submitter
/// may not approve), `true` (every level) or `false` (never).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeparationOfDuties(pub Option<RiskLevel>);

impl SeparationOfDuties {
    /// Whether the submitter is kept from approving a plan held to `level`.
    pub fn applies(self, level: RiskLevel) -> bool {
        self.0.is_some_and(|from| level >= from)
    }
}

impl Serialize for SeparationOfDuties {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(level) => level.serialize(s),
            None => s.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for SeparationOfDuties {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Flag(bool),
            Level(RiskLevel),
        }
        match Given::deserialize(d).map_err(|_| {
            serde::de::Error::custom("separation_of_duties: expected a level (LOW, MEDIUM, HIGH, CRITICAL), true or false")
        })? {
            Given::Flag(true) => Ok(SeparationOfDuties(Some(RiskLevel::Low))),
            Given::Flag(false) => Ok(SeparationOfDuties(None)),
            Given::Level(level) => Ok(SeparationOfDuties(Some(level))),
        }
    }
}

/// `identity:` who a person is and how that is proven.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityPolicy {
    /// `--as NAME` names the person acting. Off, a person is the OS user
    /// (from the uid): `--as` is for demos and tests.
    pub trust_as: bool,
    /// An OpenSSH `allowed_signers` file (relative to the policy file):
    /// the people who sign decisions, by key or certificate authority.
    pub allowed_signers: Option<PathBuf>,
    /// From this level up, a decision counts only when it is signed (or
    /// attested by a chat bridge, up to the chat channel's ceiling). An
    /// unsigned CLI or TUI decision never counts for a CRITICAL plan.
    pub require_signatures_from: RiskLevel,
    /// The people whose signed approvals adopt a new policy in the audit
    /// log (`opsgate policy adopt`): one for a change that only tightens,
    /// the CRITICAL quorum for one that loosens anything; never the
    /// proposer. None: the adopted policy cannot be changed in that log.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_admins: Vec<String>,
}

impl Default for IdentityPolicy {
    fn default() -> Self {
        IdentityPolicy {
            trust_as: false,
            allowed_signers: None,
            require_signatures_from: RiskLevel::High,
            policy_admins: Vec::new(),
        }
    }
}

impl IdentityPolicy {
    /// Whether a decision on a plan held to `level` must be signed.
    pub fn needs_signature(&self, level: RiskLevel) -> bool {
        level >= self.require_signatures_from || level == RiskLevel::Critical
    }
}

/// The native backends (`kube:`, `ec2:`, `docker:` actions).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendsPolicy {
    /// The EC2 endpoint (`http://127.0.0.1:5000`); `AWS_ENDPOINT_URL`
    /// wins over it, the SDK's own endpoint is used when neither is set.
    pub ec2_endpoint: Option<String>,
    pub breaker: BreakerPolicy,
    /// Plans that run without the drift check, each with the reason.
    pub drift_exempt: Vec<DriftExemption>,
}

impl BackendsPolicy {
    /// What the types cannot say: counts of at least 1, an http(s)
    /// endpoint, a reason for every drift exemption.
    pub fn check(&self) -> Result<(), String> {
        if self.breaker.failures == 0 || self.breaker.close_after == 0 {
            return Err("backends.breaker: `failures` and `close_after` must be at least 1".into());
        }
        if let Some(e) = &self.ec2_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(format!(
                "backends.ec2_endpoint: `{e}` is not an http:// or https:// URL"
            ));
        }
        if let Some(d) = self
            .drift_exempt
            .iter()
            .find(|d| d.reason.trim().is_empty())
        {
            return Err(format!(
                "backends.drift_exempt: `{}` needs a reason",
                d.plan.as_str()
            ));
        }
        Ok(())
    }
}

/// The circuit breaker each backend has.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerPolicy {
    /// Consecutive failures that open it.
    pub failures: u32,
    /// How long it stays open before letting one call through (half-open).
    pub open_for: HumanDuration,
    /// Successes in half-open that close it.
    pub close_after: u32,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures: 5,
            open_for: HumanDuration::from_secs(30),
            close_after: 2,
        }
    }
}

/// `{plan: "glob", reason: "…"}`: plans whose ids match run without the
/// drift check.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DriftExemption {
    pub plan: GlobPattern,
    pub reason: String,
}

/// The chat bridge's HTTP API (`opsgate serve`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgePolicy {
    /// `host:port` to listen on.
    pub listen: String,
    /// The largest request body accepted, in bytes.
    pub max_body: u64,
    pub clients: Vec<BridgeClient>,
    pub rate_limit: RateLimits,
    /// Conditions on a chat decision's metadata, by plan level: e.g.
    /// CRITICAL only from `channel_id: C-oncall`.
    pub metadata_rules: Vec<MetadataRule>,
    /// How long a decision's `Idempotency-Key` (or signature) is
    /// remembered: a repeat within it is a replay.
    pub replay_window: HumanDuration,
    /// A connection that has not sent a whole request header within this
    /// is closed.
    pub header_timeout: HumanDuration,
    /// Open connections at most; more are closed at once.
    pub max_connections: u32,
    /// A connection that takes no bytes of its response for this long is
    /// closed (a stalled event stream, a client that stopped reading).
    #[serde(skip_serializing_if = "BridgePolicy::is_default_write_timeout")]
    pub write_timeout: HumanDuration,
    /// `GET /v1/events`: the heartbeat and each stream's buffer.
    #[serde(skip_serializing_if = "EventsPolicy::is_default")]
    pub events: EventsPolicy,
    /// Where the bridge POSTs events.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<Webhook>,
}
/// A webhook (`bridge.webhooks`): where the bridge POSTs the events it
/// names (`docs/bridge-api.md`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Names its position and dead letters: `[a-z0-9_-]`, unique.
    pub name: String,
    /// `http://` or `https://`.
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Which events (`approval_needed`, `run_failed`, …) it gets.
    pub events: Vec<String>,
    /// The key that signs each body (`X-Opsgate-Signature`), in a file
    /// relative to the policy file. Required for `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "WebhookRetry::is_default")]
    pub retry: WebhookRetry,
}

/// A webhook's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The record and a summary, signed.
    #[default]
    Json,
    /// A Slack message (Block Kit) for an incoming-webhook URL, with
    /// Approve and Reject buttons on `approval_needed`. The URL is the
    /// secret; nothing is signed.
    Slack,
}

/// How a failed delivery is retried: `attempts` in all, waiting `initial`
/// and twice as long after each failure up to `max` (with jitter), each
/// attempt given `timeout`. After the last, it is a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookRetry {
    pub attempts: u32,
    pub initial: HumanDuration,
    pub max: HumanDuration,
    pub timeout: HumanDuration,
}

impl Default for WebhookRetry {
    fn default() -> Self {
        WebhookRetry {
            attempts: 8,
            initial: HumanDuration::from_secs(1),
            max: HumanDuration::from_secs(300),
            timeout: HumanDuration::from_secs(10),
        }
    }
}

impl WebhookRetry {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The events a webhook may name (`approval_needed` and `run_failed` are
/// derived from `plan_submitted` and `run_finished`).
pub const WEBHOOK_EVENTS: [&str; 13] = [
    "approval_needed",
    "plan_submitted",
    "approval_granted",
    "approval_rejected",
    "run_started",
    "run_finished",
    "run_failed",
    "run_cancelled",
    "rollback_started",
    "rollback_finished",
    "breaker_changed",
    "refused",
    "policy_adopted",
];

impl Webhook {
    /// What the types cannot say; `at` names the webhook in errors.
    fn check(&self, at: &str) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        {
            return Err(format!(
                "{at}.name: `{}` must be lower-case letters, digits, `-` and `_` (it names files)",
                self.name
            ));
        }
        let host = ["http://", "https://"].iter().find_map(|s| {
            self.url
                .get(..s.len())
                .filter(|p| p.eq_ignore_ascii_case(s))
                .map(|_| &self.url[s.len()..])
        });
        let host_ok = host.is_some_and(|h| {
            let h = h.split(['/', '?', '#']).next().unwrap_or_default();
            !h.is_empty() && !h.contains(['@', ' '])
        });
        if !host_ok
            || self
                .url
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "{at}.url: `{}` is not an http(s) URL with a host (and no credentials in it)",
                self.url
            ));
        }
        if self.events.is_empty() {
            return Err(format!("{at}.events: name at least one event"));
        }
        if let Some(e) = self
            .events
            .iter()
            .find(|e| !WEBHOOK_EVENTS.contains(&e.as_str()))
        {
            return Err(format!(
                "{at}.events: unknown event `{e}` (known: {})",
                WEBHOOK_EVENTS.join(", ")
            ));
        }
        if self.format == WebhookFormat::Json && self.secret_file.is_none() {
            return Err(format!(
                "{at}: a json webhook needs secret_file: its receivers check each body's signature"
            ));
        }
        if self.retry.attempts == 0 {
            return Err(format!("{at}.retry.attempts must be at least 1"));
        }
        Ok(())
    }
}

/// The event stream's settings (`bridge.events`). Left out of the hash
/// while at their defaults, so that a policy that does not set them keeps
/// the hash it had.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsPolicy {
    /// A comment line this often on an idle stream, so that proxies keep
    /// it open and clients see it alive.
    pub heartbeat: HumanDuration,
    /// How many records a stream may fall behind the log before it is cut
    /// off (with an event saying where to resume).
    pub buffer: u32,
}

impl Default for EventsPolicy {
    fn default() -> Self {
        EventsPolicy {
            heartbeat: HumanDuration::from_secs(15),
            buffer: 8192,
        }
    }
}

impl EventsPolicy {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Default for BridgePolicy {
    fn default() -> Self {
        BridgePolicy {
            listen: "127.0.0.1:8700".into(),
            max_body: 64 * 1024,
            clients: Vec::new(),
            rate_limit: RateLimits::default(),
            metadata_rules: Vec::new(),
            replay_window: HumanDuration::from_secs(600),
            header_timeout: HumanDuration::from_secs(10),
            max_connections: 256,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            events: EventsPolicy::default(),
            webhooks: Vec::new(),
        }
    }
}

/// `bridge.write_timeout`'s default.
const DEFAULT_WRITE_TIMEOUT: HumanDuration = HumanDuration::from_secs(30);

impl BridgePolicy {
    fn is_default_write_timeout(d: &HumanDuration) -> bool {
        *d == DEFAULT_WRITE_TIMEOUT
    }

    /// What the types cannot say, so that `policy check` refuses every
    /// policy `serve` would: each metadata rule's regex compiles, client
    /// names are unique, and replays are remembered at least as long as a
    /// signed request's timestamp is accepted (else a captured request
    /// could be replayed after the cache forgot it).
    pub fn check(&self) -> Result<(), String> {
        for (i, r) in self.metadata_rules.iter().enumerate() {
            if r.op == MetadataOp::Regex {
                regex::Regex::new(&r.value).map_err(|e| {
                    format!(
                        "bridge.metadata_rules[{i}]: invalid regex `{}`: {}",
                        r.value,
                        e.to_string().lines().last().unwrap_or_default()
                    )
                })?;
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            if self.clients[..i].iter().any(|o| o.name == c.name) {
                return Err(format!("bridge.clients: `{}` is named twice", c.name));
            }
        }
        if self.max_connections == 0 || self.header_timeout.get().is_zero() {
            return Err("bridge: max_connections and header_timeout must be above zero".into());
        }
        if self.write_timeout.get().is_zero()
            || self.events.heartbeat.get().is_zero()
            || self.events.buffer == 0
        {
            return Err(
                "bridge: write_timeout, events.heartbeat and events.buffer must be above zero"
                    .into(),
            );
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            w.check(&format!("bridge.webhooks[{i}]"))?;
            if self.webhooks[..i].iter().any(|o| o.name == w.name) {
                return Err(format!("bridge.webhooks: `{}` is named twice", w.name));
            }
        }
        if self.replay_window.get() < std::time::Duration::from_secs(300) {
            return Err(format!(
                "bridge.replay_window: {} is shorter than the 5m a signed request's timestamp is accepted; a captured request could be replayed after it is forgotten",
                self.replay_window
            ));
        }
        Ok(())
    }
}

/// A condition a chat decision's metadata must meet when the plan is at
/// `level` or above.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataRule {
    pub level: RiskLevel,
    pub key: String,
    pub op: MetadataOp,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataOp {
    Eq,
    Neq,
    Contains,
    Regex,
}

/// Token buckets per sender and per client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    pub per_sender: Rate,
    pub per_client: Rate,
    /// When this many senders have buckets, new senders are refused (fail
    /// closed), never evicted to make room.
    pub max_senders: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_sender: Rate {
                count: 10,
                per_seconds: 60,
            },
            per_client: Rate {
                count: 600,
                per_seconds: 60,
            },
            max_senders: 10_000,
        }
    }
}

/// `10/min`, `5/s`, `100/h`: so many requests per period (the bucket's
/// size, refilled evenly over the period).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per_seconds: u32,
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}/{}s", self.count, self.per_seconds))
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!("rate `{s}` is not N/s, N/min or N/h (e.g. 10/min)"))
        };
        let (n, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let unit = unit.trim();
        let per_seconds = match unit {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            other => other
                .strip_suffix('s')
                .and_then(|n| n.parse().ok())
                .ok_or_else(bad)?,
        };
        if count == 0 || per_seconds == 0 {
            return Err(bad());
        }
        Ok(Rate { count, per_seconds })
    }
}

/// One chat bridge allowed to call the API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeClient {
    pub name: String,
    /// Hex SHA-256 of the bearer token; the token itself is never stored.
    pub token_sha256: TokenDigest,
    /// An environment variable holding a secret: when set, requests must be
    /// signed with it.
    #[serde(default)]
    pub signing_secret_env: Option<String>,
    /// Chat user id → approver name: the only people this client speaks for.
    #[serde(default)]
    pub senders: BTreeMap<String, String>,
}

/// 64 hex digits, checked when the policy loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TokenDigest(pub String);

impl<'de> Deserialize<'de> for TokenDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let hex = s.trim().to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(serde::de::Error::custom(format!(
                "token_sha256 `{s}` is not 64 hex digits (the SHA-256 of the token: `printf %s TOKEN | sha256sum`)"
            )));
        }
        Ok(TokenDigest(hex))
    }
}

/// The terminal UI's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TuiPolicy {
    pub keys: TuiKeys,
}

/// The TUI's action keys, one character each (the arrows, Enter, Esc, tab,
/// `j` and `k` are fixed).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TuiKeys {
    pub approve: char,
    pub reject: char,
    pub explain: char,
    pub modify: char,
    pub dry_run: char,
    pub execute: char,
    pub stop: char,
    pub audit: char,
    pub replay: char,
    pub filter: char,
    pub help: char,
    pub quit: char,
}

impl Default for TuiKeys {
    fn default() -> Self {
        TuiKeys {
            approve: 'a',
            reject: 'r',
            explain: 'e',
            modify: 'm',
            dry_run: 'd',
            execute: 'x',
            stop: 's',
            audit: 'l',
            replay: 'p',
            filter: '/',
            help: '?',
            quit: 'q',
        }
    }
}

impl TuiKeys {
    /// Each binding with its action's name.
    pub fn bindings(&self) -> [(&'static str, char); 12] {
        [
            ("approve", self.approve),
            ("reject", self.reject),
            ("explain", self.explain),
            ("modify", self.modify),
            ("dry_run", self.dry_run),
            ("execute", self.execute),
            ("stop", self.stop),
            ("audit", self.audit),
            ("replay", self.replay),
            ("filter", self.filter),
            ("help", self.help),
            ("quit", self.quit),
        ]
    }

    /// Two actions on one key, or an action on a fixed key, is an error.
    pub fn check(&self) -> Result<(), String> {
        let b = self.bindings();
        for (i, (name, key)) in b.iter().enumerate() {
            if matches!(key, 'j' | 'k') || key.is_whitespace() {
                return Err(format!("tui.keys.{name}: `{key}` is a fixed key"));
            }
            if let Some((other, _)) = b[..i].iter().find(|(_, k)| k == key) {
                return Err(format!(
                    "tui.keys: `{key}` is bound to both {other} and {name}"
                ));
            }
        }
        Ok(())
    }
}

/// A person allowed to approve.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Approver {
    pub name: String,
    /// The highest level they may approve.
    #[serde(default = "critical")]
    pub max_risk: RiskLevel,
    /// The channels they may approve from (default: all).
    #[serde(default = "all_channels")]
    pub channels: Vec<Channel>,
    /// Their SSH public keys (`ssh-ed25519 AAAA… comment`), as lines of
    /// an allowed signers file would list them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
}

fn critical() -> RiskLevel {
    RiskLevel::Critical
}

fn all_channels() -> Vec<Channel> {
    vec![Channel::Tui, Channel::Cli, Channel::Chat]
}

/// Where the audit log lives: `url: postgres://USER@HOST:PORT/DB` for team
/// mode (`file:PATH` or nothing: the file log). Never a password: it
/// comes from `PGPASSFILE` or `PGPASSWORD`, so no credential enters the
/// policy hash.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorePolicy {
    pub url: Option<String>,
}

impl StorePolicy {
    pub fn is_empty(&self) -> bool {
        self.url.is_none()
    }

    /// Refuses a URL that is not a store, or that carries a password.
    pub fn check(&self) -> Result<(), String> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        crate::store::StoreUrl::parse(url).map_err(|e| format!("store.url: {e}"))?;
        if crate::store::redact_url(url) != *url {
            return Err(format!(
                "store.url `{}` carries a password: the policy is hashed and shown, so the password goes in PGPASSFILE (~/.pgpass) or PGPASSWORD",
                crate::store::redact_url(url)
            ));
        }
        Ok(())
    }
}

/// The audit log's key and extra redaction patterns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditPolicy {
    /// A file holding the HMAC key for the hash chain, relative to the
    /// policy file. `OPSGATE_AUDIT_KEY` takes precedence.
    pub key_file: Option<PathBuf>,
    /// Regexes masked in every logged string, after the built-in ones. A
    /// group named `secret` limits the mask to that group.
    pub redact: Vec<RedactPattern>,
}

/// Distinct approvals each level needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequiredApprovals {
    #[serde(rename = "LOW")]
    pub low: u32,
    #[serde(rename = "MEDIUM")]
    pub medium: u32,
    #[serde(rename = "HIGH")]
    pub high: u32,
    #[serde(rename = "CRITICAL")]
    pub critical: u32,
}

impl RequiredApprovals {
    pub fn for_level(&self, level: RiskLevel) -> u32 {
        match level {
            RiskLevel::Low => self.low,
            RiskLevel::Medium => self.medium,
            RiskLevel::High => self.high,
            RiskLevel::Critical => self.critical,
        }
    }
}
