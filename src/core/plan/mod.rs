//! The plan model: the file as written (`doc`), the normalized plan that is
//! hashed and run (`model`), parameters, and the loader that validates and
//! classifies a plan under a policy.

pub mod doc;
mod load;
pub mod model;
pub mod native;
mod native_load;
pub mod params;
mod review;

pub use load::{PlanErrors, load_plan, parse_doc, review, review_with};
pub use model::{
    Action, Check, Expect, LocalFile, Plan, PlanRollback, Retry, RollbackStep, Step, Target,
};
pub use native_load::{DigestFile, PlanReader, ReadFile};
pub use review::{ClassifiedPlan, PRODUCTION_RULE, StepReview};
