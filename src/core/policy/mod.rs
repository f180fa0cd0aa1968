//! The policy: the embedded default, the user's overlay, and the compiled
//! rule set and hash that come out of them.

mod load;
mod model;

pub mod diff;
pub use load::{BUILTIN_RULES_YAML, DEFAULT_POLICY_YAML, LoadedPolicy, PolicyError, builtin_pack};
pub use model::{
    ApprovalPolicy, Approver, ExecutionPolicy, Policy, RequiredApprovals, SafetyPolicy, TuiKeys,
    TuiPolicy,
};
pub use model::{BackendsPolicy, BreakerPolicy, DriftExemption, EnvironmentPolicy};
pub use model::{EventsPolicy, WEBHOOK_EVENTS, Webhook, WebhookFormat, WebhookRetry};
pub use model::{MetadataOp, MetadataRule, Rate, RateLimits};
