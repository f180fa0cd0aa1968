//! From plan text to a validated, classified plan.
//!
//! Problems are collected rather than stopping at the first, each as
//! `file:line:col: message`, sorted by position. A YAML or schema error stops
//! early, since nothing after it can be trusted.
//!
//! About 690 lines with its unit tests: every check of a plan file, each
//! with its `file:line:col`, in the order a reader meets them.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use serde_saphyr::{Location, Spanned};

use super::doc::{ActionDoc, ActionFields, CheckDoc, PlanDoc, PlanRollbackDoc, StepDoc};
use super::model::{
    Action, Check, DEFAULT_CHECK_TIMEOUT, DEFAULT_RETRY_INTERVAL, DEFAULT_STEP_TIMEOUT, Expect,
    Override, Plan, PlanRollback, Retry, RollbackStep, Step, Target,
};
use super::native_load::{PlanReader, Role, Scope, native};
use super::params::{is_param_name, references, substitute};
use super::review::{ClassifiedPlan, StepReview, classify_action, plan_risk};
use crate::core::classify::ClassifyContext;
use crate::core::policy::LoadedPolicy;
use crate::core::risk::{Classification, RiskLevel};
use crate::core::yaml::{self, FileError, Position};

/// Every problem found in one plan file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct PlanErrors(pub Vec<FileError>);

impl PlanErrors {
    pub fn first(&self) -> Option<&FileError> {
        self.0.first()
    }
}

/// Parses the YAML into the document types.
pub fn parse_doc(file: &str, text: &str) -> Result<PlanDoc, PlanErrors> {
    yaml::from_str(file, text).map_err(|e| PlanErrors(vec![e]))
}

/// Parses, validates and classifies a plan. `today` names the plan when it
/// has no `id`.
pub fn load_plan(
    file: &str,
    text: &str,
    policy: &LoadedPolicy,
    today: NaiveDate,
) -> Result<ClassifiedPlan, PlanErrors> {
    let doc = parse_doc(file, text)?;
    review(&doc, file, text, policy, today, &BTreeMap::new())
}

/// What `load_plan` and `review` read files with: nothing. A plan that
/// names a file (a kube `apply` manifest, a script) loads through
/// `review_with`, given a reader.
fn no_files(path: &std::path::Path) -> Result<String, String> {
    Err(format!(
        "`{}` is not read here: load the plan from its file (`opsgate plan validate`, `submit`)",
        path.display()
    ))
}

fn no_digests(word: &str) -> Result<super::model::LocalFile, String> {
    no_files(std::path::Path::new(word)).map(|_| unreachable_file())
}

/// `no_files` never returns a file; this keeps `no_digests` total.
fn unreachable_file() -> super::model::LocalFile {
    super::model::LocalFile {
        path: String::new(),
        sha256: String::new(),
    }
}

/// Validates and classifies a parsed plan. `overrides` replace parameter
/// values (a modified plan is a new plan, with a new hash).
pub fn review(
    doc: &PlanDoc,
    file: &str,
    text: &str,
    policy: &LoadedPolicy,
    today: NaiveDate,
    overrides: &BTreeMap<String, String>,
) -> Result<ClassifiedPlan, PlanErrors> {
    review_with(
        doc,
        file,
        text,
        policy,
        today,
        overrides,
        &PlanReader {
            read: &no_files,
            digest: &no_digests,
        },
    )
}

/// `review`, reading the files the plan names (relative to `file`'s
/// directory) with `read`.
pub fn review_with(
    doc: &PlanDoc,
    file: &str,
    text: &str,
    policy: &LoadedPolicy,
    today: NaiveDate,
    overrides: &BTreeMap<String, String>,
    reader: &PlanReader<'_>,
) -> Result<ClassifiedPlan, PlanErrors> {
    let mut v = Validator {
        file,
        source: text,
        problems: Vec::new(),
    };
    let mut params: BTreeMap<String, String> = doc
        .params
        .iter()
        .map(|(k, s)| (k.clone(), s.value.clone()))
        .collect();
    for (name, value) in &doc.params {
        if !is_param_name(name) {
            v.at(
                &value.referenced,
                format!("invalid parameter name `{name}`: use letters, digits, `_` and `-`"),
            );
        }
    }
    for (k, val) in overrides {
        if !params.contains_key(k) {
            v.problems.push(FileError {
                file: file.to_owned(),
                position: Position { line: 1, column: 1 },
                message: format!("cannot set parameter `{k}`: the plan defines no such parameter"),
            });
        }
        params.insert(k.clone(), val.clone());
    }

    let id = match &doc.id {
        Some(id) => {
            if !is_valid_id(&id.value) {
                v.at(&id.referenced, format!(
                    "invalid plan id `{}`: use 1 to 64 letters, digits, `.`, `_` and `-`, starting with a letter or digit",
                    id.value
                ));
            }
            id.value.clone()
        }
        None => derive_id(&doc.title.value, today),
    };
    if doc.title.value.trim().is_empty() {
        v.at(&doc.title.referenced, "the title is empty".into());
    }
    if doc.steps.is_empty() {
        v.problems.push(FileError {
            file: file.to_owned(),
            position: Position { line: 1, column: 1 },
            message: "the plan has no steps".into(),
        });
    }

    let target = Target {
        kube_context: doc.target.kube_context.clone(),
        namespace: doc.target.namespace.clone(),
        aws_region: doc.target.aws_region.clone(),
        docker_host: doc.target.docker_host.clone(),
    };
    let ctx = ClassifyContext {
        namespace: target.namespace.clone(),
        kube_context: target.kube_context.clone(),
    };
    let redactor = crate::core::redact::Redactor::new(policy.policy.audit.redact.clone());
    let scope = Scope {
        params: &params,
        target: &target,
        dir: std::path::Path::new(file).parent(),
        read: reader.read,
    };
    let files = std::cell::RefCell::new(BTreeMap::new());
    let rate = |v: &mut Validator<'_>,
                fields: ActionFields<'_>,
                owner: &Location,
                what: &str,
                role: Role|
     -> (Action, Location, Classification) {
        let Some((action, at)) = resolve(v, fields, owner, what, role, &scope) else {
            return (
                Action::Run(String::new()),
                *owner,
                Classification::from_reasons(Vec::new()),
            );
        };
        if let Action::Run(cmd) = &action {
            for f in policy.rules.files(cmd, &ctx) {
                if f.dynamic {
                    v.at(&at, format!(
                        "{what} {} `{}`, a path only known at run time: a file a step runs or reads is hashed with the plan, so it must be named as it is",
                        f.role, f.path
                    ));
                    continue;
                }
                match (reader.digest)(&f.path) {
                    Ok(local) => {
                        files.borrow_mut().insert(f.path, local);
                    }
                    Err(e) => v.at(&at, format!(
                        "{what} {} `{}`, which cannot be hashed: {e}. A file a step runs or reads is hashed with the plan when it is loaded",
                        f.role, f.path
                    )),
                }
            }
        }
        if let Action::Run(cmd) = &action
            && let Err(masked) = redactor.masks_only_values(cmd)
        {
            v.at(
                &at,
                format!(
                    "{what}: the audit log would mask `{}`, which is more than a secret value: the log must show what runs. Pass the secret through the environment or a file",
                    crate::core::event::printable(&masked)
                ),
            );
        }
        let c = match classify_action(&policy.rules, &action, &ctx) {
            Ok(c) => c,
            Err(e) => {
                v.at(&at, format!("{what}: {e}"));
                Classification::from_reasons(Vec::new())
            }
        };
        (action, at, c)
    };

    let mut seen = HashSet::new();
    let mut steps = Vec::new();
    let mut reviews = Vec::new();
    for sd in &doc.steps {
        let name = v.text(&sd.name, &params, "step name").trim().to_owned();
        if name.is_empty() {
            v.at(&sd.name.referenced, "a step name is empty".into());
        } else if !seen.insert(name.clone()) {
            v.at(
                &sd.name.referenced,
                format!("duplicate step name `{name}`: step names must be unique"),
            );
        }
        let (step, review) = step(&mut v, sd, &name, &params, &rate);
        steps.push(step);
        reviews.push(review);
    }

    let (rollback, rollback_ratings) = plan_rollback(&mut v, doc.rollback.as_ref(), &params, &rate);
    let steps_risk = reviews
        .iter()
        .map(|r| r.action.risk)
        .max()
        .unwrap_or(RiskLevel::Low);
    if steps_risk >= RiskLevel::Medium && matches!(rollback, PlanRollback::Absent) {
        for (sd, r) in doc.steps.iter().zip(&reviews) {
            if r.action.risk >= RiskLevel::Medium && r.rollback.is_none() {
                v.at(&sd.name.referenced, format!(
                    "step `{}` is {} and has no rollback, and the plan has no plan-level `rollback:`; add one, or say `rollback: {{none: \"why\"}}`",
                    sd.name.value.trim(),
                    r.action.risk
                ));
            }
        }
    }

    let mut env = BTreeMap::new();
    for (name, value) in &doc.env {
        if !crate::core::environment::is_env_name(name) {
            v.at(
                &value.referenced,
                format!("env: `{name}` is not a variable name (letters, digits and `_`)"),
            );
        } else if crate::core::environment::never_passed(name) {
            v.at(
                &value.referenced,
                format!("env: `{name}` never reaches a step (a file a shell would run first)"),
            );
        }
        env.insert(
            name.clone(),
            v.text(value, &params, &format!("env `{name}`")),
        );
    }

    let production_override = doc.production_override.as_ref().map(|o| {
        let reason = o.value.reason.trim().to_owned();
        if reason.is_empty() {
            v.at(
                &o.referenced,
                "`override: {reason: …}` needs a reason".into(),
            );
        }
        Override { reason }
    });

    if !v.problems.is_empty() {
        v.problems.sort_by_key(|p| p.position);
        return Err(PlanErrors(v.problems));
    }
    let plan = Plan {
        id,
        title: doc.title.value.trim().to_owned(),
        description: doc.description.clone(),
        author: doc.author.clone(),
        target,
        params,
        files: files.into_inner(),
        env,
        estimated_time: doc.estimated_time,
        steps,
        rollback,
        production_override,
    };
    let (risk, risk_set_by_rollback) = plan_risk(&plan, &reviews, &rollback_ratings);
    Ok(ClassifiedPlan {
        hash: plan.hash(),
        plan,
        risk,
        risk_set_by_rollback,
        steps: reviews,
        rollback: rollback_ratings,
    })
}

type Rate<'r> = dyn Fn(
        &mut Validator<'_>,
        ActionFields<'_>,
        &Location,
        &str,
        Role,
    ) -> (Action, Location, Classification)
    + 'r;

/// The one action among `run:`, `kube:`, `ec2:` and `docker:`, resolved,
/// with where it is written.
fn resolve(
    v: &mut Validator<'_>,
    fields: ActionFields<'_>,
    owner: &Location,
    what: &str,
    role: Role,
    scope: &Scope<'_>,
) -> Option<(Action, Location)> {
    let given: Vec<&str> = [
        fields.run.map(|_| "run"),
        fields.kube.map(|_| "kube"),
        fields.ec2.map(|_| "ec2"),
        fields.docker.map(|_| "docker"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        v.at(
            owner,
            format!(
                "{what} has more than one action (`{}`): give exactly one",
                given.join("`, `")
            ),
        );
        return None;
    }
    if let Some(run) = fields.run {
        return Some((Action::Run(v.text(run, scope.params, what)), run.referenced));
    }
    let (backend, doc) = match (fields.kube, fields.ec2, fields.docker) {
        (Some(d), _, _) => ("kube", d),
        (_, Some(d), _) => ("ec2", d),
        (_, _, Some(d)) => ("docker", d),
        _ => {
            v.at(
                owner,
                format!("{what} has no action: add `run:`, `kube:`, `ec2:` or `docker:`"),
            );
            return None;
        }
    };
    let action = native(v, backend, doc, what, role, scope)?;
    Some((action, doc.referenced))
}

fn step(
    v: &mut Validator<'_>,
    sd: &StepDoc,
    name: &str,
    params: &BTreeMap<String, String>,
    rate: &Rate<'_>,
) -> (Step, StepReview) {
    let (action, _, action_rating) = rate(
        v,
        sd.action_fields(),
        &sd.name.referenced,
        &format!("step `{name}`"),
        Role::Op,
    );
    let checks =
        |v: &mut Validator<'_>, list: &[CheckDoc], kind: &str| {
            let mut out = Vec::new();
            let mut ratings = Vec::new();
            for (i, c) in list.iter().enumerate() {
                let cname = match &c.name {
                    Some(n) => v.text(n, params, &format!("{kind} name")),
                    None => format!("{kind} {}", i + 1),
                };
                let owner = c.name.as_ref().map_or(sd.name.referenced, |n| n.referenced);
                let (check_action, at, rating) = rate(
                    v,
                    c.action_fields(),
                    &owner,
                    &format!("{kind} `{cname}` of step `{name}`"),
                    Role::Check,
                );
                if rating.risk > RiskLevel::Low {
                    let why = rating
                        .deciding_reasons()
                        .next()
                        .map_or(String::new(), |r| format!(": {}", r.message));
                    v.at(&at, format!(
                    "{kind} `{cname}` of step `{name}` must be read-only (LOW) but is {}{why}",
                    rating.risk
                ));
                }
                let retry = match &c.retry {
                    Some(r) => {
                        if r.attempts.value == 0 {
                            v.at(
                                &r.attempts.referenced,
                                "retry attempts must be at least 1".into(),
                            );
                        }
                        Retry {
                            attempts: r.attempts.value,
                            interval: r.interval.unwrap_or(DEFAULT_RETRY_INTERVAL),
                        }
                    }
                    None => Retry {
                        attempts: 1,
                        interval: DEFAULT_RETRY_INTERVAL,
                    },
                };
                let expect = c.expect.as_ref();
                let stdout_contains = expect
                    .and_then(|e| e.stdout_contains.as_ref())
                    .map(|s| v.text(s, params, &format!("{kind} `{cname}` expectation")));
                out.push(Check {
                    name: cname,
                    action: check_action,
                    timeout: c.timeout.unwrap_or(DEFAULT_CHECK_TIMEOUT),
                    retry,
                    expect: Expect {
                        exit_code: expect.and_then(|e| e.exit_code).unwrap_or(0),
                        stdout_contains,
                    },
                });
                ratings.push(rating);
            }
            (out, ratings)
        };
    let (pre_checks, pre_ratings) = checks(v, &sd.pre_checks, "pre_check");
    let (post_checks, post_ratings) = checks(v, &sd.post_checks, "post_check");
    let (rollback, rollback_rating) = match &sd.rollback {
        Some(r) => {
            let (a, _, c) = rate(
                v,
                r.action_fields(),
                &sd.name.referenced,
                &format!("rollback of step `{name}`"),
                Role::Op,
            );
            (Some(a), Some(c))
        }
        None => (None, None),
    };
    let keep_background = match &sd.keep_background {
        Some(k) if k.value && !matches!(action, Action::Run(_)) => {
            v.at(
                &k.referenced,
                format!("step `{name}`: `keep_background` is for `run:` steps; a native action starts no process"),
            );
            false
        }
        Some(k) => k.value,
        None => false,
    };
    (
        Step {
            name: name.to_owned(),
            action,
            timeout: sd.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT),
            pre_checks,
            post_checks,
            rollback,
            keep_background,
        },
        StepReview {
            action: action_rating,
            pre_checks: pre_ratings,
            post_checks: post_ratings,
            rollback: rollback_rating,
        },
    )
}

fn plan_rollback(
    v: &mut Validator<'_>,
    doc: Option<&PlanRollbackDoc>,
    params: &BTreeMap<String, String>,
    rate: &Rate<'_>,
) -> (PlanRollback, Vec<Classification>) {
    let Some(doc) = doc else {
        return (PlanRollback::Absent, Vec::new());
    };
    if let Some(none) = &doc.none {
        if !doc.steps.is_empty() || doc.method.is_some() {
            v.at(
                &none.referenced,
                "`rollback` has both `none` and steps: choose one".into(),
            );
        }
        if none.value.trim().is_empty() {
            v.at(
                &none.referenced,
                "`rollback: {none: …}` needs a reason".into(),
            );
        }
        return (
            PlanRollback::None {
                reason: none.value.trim().to_owned(),
            },
            Vec::new(),
        );
    }
    if doc.steps.is_empty() {
        let message = "`rollback` has no steps: add `steps:`, or say `rollback: {none: \"why\"}`";
        match &doc.method {
            Some(m) => v.at(&m.referenced, message.into()),
            None => v.problems.push(FileError {
                file: v.file.to_owned(),
                position: Position { line: 1, column: 1 },
                message: message.into(),
            }),
        }
    }
    let mut steps = Vec::new();
    let mut ratings = Vec::new();
    for (i, s) in doc.steps.iter().enumerate() {
        let name = match &s.name {
            Some(n) => v.text(n, params, "rollback step name"),
            None => format!("rollback {}", i + 1),
        };
        let fields = s.action_fields();
        let owner = s
            .name
            .as_ref()
            .map(|n| n.referenced)
            .or_else(|| fields.location())
            .or_else(|| doc.method.as_ref().map(|m| m.referenced))
            .unwrap_or(Location::UNKNOWN);
        let (a, _, c) = rate(
            v,
            fields,
            &owner,
            &format!("rollback step `{name}`"),
            Role::Op,
        );
        steps.push(rollback_step(s, name, a));
        ratings.push(c);
    }
    (
        PlanRollback::Steps {
            method: doc
                .method
                .as_ref()
                .map(|m| v.text(m, params, "rollback method").trim().to_owned()),
            steps,
            estimated_time: doc.estimated_time,
            on_error: doc.on_error,
        },
        ratings,
    )
}

fn rollback_step(s: &ActionDoc, name: String, action: Action) -> RollbackStep {
    RollbackStep {
        name,
        action,
        timeout: s.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT),
    }
}

pub(super) struct Validator<'a> {
    file: &'a str,
    source: &'a str,
    problems: Vec<FileError>,
}

impl Validator<'_> {
    pub(super) fn at(&mut self, loc: &serde_saphyr::Location, message: String) {
        self.problems.push(FileError {
            file: self.file.to_owned(),
            position: Position::from_location(loc),
            message,
        });
    }

    /// Substitutes parameters into a text (a command, a name, an expected
    /// output), reporting each undefined
    /// reference at its own line and column.
    pub(super) fn text(
        &mut self,
        s: &Spanned<String>,
        params: &BTreeMap<String, String>,
        what: &str,
    ) -> String {
        for r in references(&s.value) {
            if !params.contains_key(&r.name) {
                let written = &s.value[r.start..r.end];
                let position = self.position_within(&s.referenced, written);
                self.problems.push(FileError {
                    file: self.file.to_owned(),
                    position,
                    message: format!("{what}: parameter `{}` is not defined in `params:`", r.name),
                });
            }
        }
        substitute(&s.value, params)
    }

    /// The position of `needle` inside the scalar at `loc`, found in the
    /// source text; the scalar's own position when it cannot be found.
    fn position_within(&self, loc: &serde_saphyr::Location, needle: &str) -> Position {
        let start = Position::from_location(loc);
        let span = loc.span();
        let (Some(off), Some(len)) = (span.byte_offset(), span.byte_len()) else {
            return start;
        };
        let (Ok(off), Ok(len)) = (usize::try_from(off), usize::try_from(len)) else {
            return start;
        };
        let Some(raw) = self.source.get(off..off.saturating_add(len)) else {
            return start;
        };
        let Some(idx) = raw.find(needle) else {
            return start;
        };
        let before = &raw[..idx];
        match before.rfind('\n') {
            None => Position {
                line: start.line,
                column: start.column + before.chars().count() as u64,
            },
            Some(nl) => Position {
                line: start.line + before.matches('\n').count() as u64,
                column: before[nl + 1..].chars().count() as u64 + 1,
            },
        }
    }
}

fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && id.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `Fix slow API response!` on 2026-01-26 is `fix-slow-api-response-20260126`.
fn derive_id(title: &str, today: NaiveDate) -> String {
    let mut slug = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "plan" } else { slug };
    format!("{slug}-{}", today.format("%Y%m%d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_derived_from_title_and_date() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 26).unwrap();
        assert_eq!(
            derive_id("Fix slow API response!", d),
            "fix-slow-api-response-20260126"
        );
        assert_eq!(derive_id("!!!", d), "plan-20260126");
    }

    #[test]
    fn ids_are_checked() {
        assert!(is_valid_id("api-scale-20260126"));
        assert!(!is_valid_id("-x"));
        assert!(!is_valid_id("a b"));
        assert!(!is_valid_id(&"a".repeat(65)));
    }
}
