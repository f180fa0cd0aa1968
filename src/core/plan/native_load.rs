//! Checks a native action as written (`kube: {op: scale, …}`) and resolves
//! it against the plan's target. Every problem names the step (or check) and
//! the field, at the field's line.
//!
//! Long on purpose: one loader per native kind (kube, EC2, Docker), each
//! with the fields its API takes, side by side so their checks stay alike.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::doc::NativeDoc;
use super::load::Validator;
use super::model::{Action, Target};
use super::native::{
    DockerAction, DockerVerb, Ec2Action, Ec2Verb, InstanceState, KubeAction, KubeVerb, Propagation,
    known_kind,
};

/// Where a native action sits: checks take `check:`; steps and rollbacks
/// take `op:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Op,
    Check,
}

/// Reads a file a plan names (a kube `apply` manifest). The core does no
/// I/O: the edge passes a reader in, as it passes the date.
pub type ReadFile<'a> = &'a dyn Fn(&Path) -> Result<String, String>;

/// Hashes a local file (or directory) a `run:` line runs or reads, named
/// as the line names it: resolved as the step's shell would resolve it.
pub type DigestFile<'a> = &'a dyn Fn(&str) -> Result<super::model::LocalFile, String>;

/// What the plan loader may read, from the edge.
#[derive(Clone, Copy)]
pub struct PlanReader<'a> {
    /// Native `apply` manifests, relative to the plan's directory.
    pub read: ReadFile<'a>,
    /// The files `run:` lines run or read.
    pub digest: DigestFile<'a>,
}

impl std::fmt::Debug for PlanReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanReader")
    }
}

/// What resolving needs beyond the action itself.
pub(super) struct Scope<'a> {
    pub params: &'a BTreeMap<String, String>,
    pub target: &'a Target,
    /// The plan file's directory: manifests are read relative to it.
    pub dir: Option<&'a Path>,
    pub read: ReadFile<'a>,
}

/// Fields that name something: one plain word each (`Fields::word`).
const NAME_FIELDS: &[&str] = &[
    "name",
    "namespace",
    "context",
    "kind",
    "api_version",
    "container",
    "region",
];

const KUBE_OPS: &[&str] = &["scale", "rollout_restart", "apply", "delete", "get"];
const KUBE_CHECKS: &[&str] = &["rollout_complete", "exists", "replicas_ready"];
const EC2_OPS: &[&str] = &[
    "describe_instances",
    "start_instances",
    "stop_instances",
    "reboot_instances",
    "terminate_instances",
];
const EC2_CHECKS: &[&str] = &["instance_state"];
const DOCKER_OPS: &[&str] = &["ps", "inspect", "start", "stop", "restart", "remove"];
const DOCKER_CHECKS: &[&str] = &["running", "healthy"];

/// Resolves `backend: {…}` into an action; `None` after reporting problems.
pub(super) fn native(
    v: &mut Validator<'_>,
    backend: &str,
    doc: &Spanned<NativeDoc>,
    what: &str,
    role: Role,
    scope: &Scope<'_>,
) -> Option<Action> {
    let mut f = Fields {
        map: &doc.value,
        at: doc.referenced,
        used: Vec::new(),
        missing: Vec::new(),
        what: format!("{what}: `{backend}`"),
        scope,
    };
    let (key, other) = match role {
        Role::Check => ("check", "op"),
        Role::Op => ("op", "check"),
    };
    let (ops, checks) = match backend {
        "kube" => (KUBE_OPS, KUBE_CHECKS),
        "ec2" => (EC2_OPS, EC2_CHECKS),
        _ => (DOCKER_OPS, DOCKER_CHECKS),
    };
    let allowed = if role == Role::Check { checks } else { ops };
    if let Some(o) = doc.value.get(other) {
        let hint = if role == Role::Check {
            format!(
                "a check names what it checks with `check:` ({})",
                checks.join(", ")
            )
        } else {
            format!(
                "a step or rollback names its operation with `op:` ({})",
                ops.join(", ")
            )
        };
        v.at(&o.referenced, format!("{}: {hint}", f.what));
        return None;
    }
    let verb = f.required_string(v, key)?;
    if !allowed.contains(&verb.as_str()) {
        let at = doc.value.get(key).map_or(doc.referenced, |s| s.referenced);
        v.at(
            &at,
            format!(
                "{}: unknown {key} `{verb}`; expected one of: {}",
                f.what,
                allowed.join(", ")
            ),
        );
        return None;
    }
    f.what = format!("{what}: `{backend} {verb}`");
    let action = match backend {
        "kube" => kube(v, &mut f, &verb).map(Action::Kube),
        "ec2" => ec2(v, &mut f, &verb).map(Action::Ec2),
        _ => docker(v, &mut f, &verb).map(Action::Docker),
    };
    f.finish(v);
    action
}

fn kube(v: &mut Validator<'_>, f: &mut Fields<'_, '_>, verb: &str) -> Option<KubeAction> {
    let context = f.string(v, "context");
    let context = f.word(
        v,
        "context",
        context.or_else(|| f.scope.target.kube_context.clone()),
    )?;
    let namespace_field = f.string(v, "namespace");
    let target_ns = f.word(v, "namespace", f.scope.target.namespace.clone())?;
    if verb == "apply" {
        return kube_apply(v, f, context, namespace_field, target_ns);
    }
    let kind_written = f.required_string(v, "kind");
    let api_version = f.string(v, "api_version");
    let name = f.required_string(v, "name");
    let verb = match verb {
        "scale" => KubeVerb::Scale {
            replicas: f.required_int(v, "replicas")?,
        },
        "rollout_restart" => KubeVerb::RolloutRestart,
        "delete" => KubeVerb::Delete {
            propagation: match f.string(v, "propagation") {
                None => Propagation::Background,
                Some(p) => match p.to_ascii_lowercase().as_str() {
                    "foreground" => Propagation::Foreground,
                    "background" => Propagation::Background,
                    "orphan" => Propagation::Orphan,
                    _ => {
                        f.bad(v, "propagation", &format!(
                            "unknown propagation `{p}`; expected Foreground, Background or Orphan"
                        ));
                        return None;
                    }
                },
            },
        },
        "get" => KubeVerb::Get,
        "rollout_complete" => KubeVerb::RolloutComplete,
        "exists" => KubeVerb::Exists,
        _ => KubeVerb::ReplicasReady {
            replicas: f.int(v, "replicas"),
        },
    };
    let kind_written = kind_written?;
    let (kind, namespaced) = match known_kind(&kind_written) {
        Some(k) => (k.kind.to_owned(), Some(k.namespaced)),
        None if api_version.is_some() => (kind_written, None),
        None => {
            f.bad(v, "kind", &format!(
                "unknown kind `{kind_written}`; name a built-in kind (Deployment, StatefulSet, Namespace, …) or give `api_version:` for another"
            ));
            return None;
        }
    };
    let needs_workload = match verb {
        KubeVerb::Scale { .. } | KubeVerb::ReplicasReady { .. } => {
            Some(&["Deployment", "StatefulSet"][..])
        }
        KubeVerb::RolloutRestart | KubeVerb::RolloutComplete => {
            Some(&["Deployment", "StatefulSet", "DaemonSet"][..])
        }
        _ => None,
    };
    if let Some(kinds) = needs_workload
        && !kinds.contains(&kind.as_str())
    {
        f.bad(
            v,
            "kind",
            &format!(
                "`{}` works on {}, not on `{kind}`",
                verb.name(),
                kinds.join(" or ")
            ),
        );
        return None;
    }
    let namespace = match namespaced {
        Some(false) => {
            if namespace_field.is_some() {
                f.bad(
                    v,
                    "namespace",
                    &format!("`{kind}` is cluster-scoped: it has no namespace"),
                );
                return None;
            }
            None
        }
        Some(true) => Some(
            namespace_field
                .or_else(|| target_ns.clone())
                .unwrap_or_else(|| "default".into()),
        ),
        // A kind the loader does not know is namespaced only when the
        // action says so.
        None => namespace_field,
    };
    Some(KubeAction {
        context,
        verb,
        kind,
        api_version,
        namespace,
        name: name?,
    })
}

/// `apply`: reads the manifest into the plan, so the hash covers it.
fn kube_apply(
    v: &mut Validator<'_>,
    f: &mut Fields<'_, '_>,
    context: Option<String>,
    namespace_field: Option<String>,
    target_ns: Option<String>,
) -> Option<KubeAction> {
    let manifest = f.required_string(v, "manifest")?;
    let path = match f.scope.dir {
        Some(dir) => dir.join(&manifest),
        None => Path::new(&manifest).to_path_buf(),
    };
    let content = match (f.scope.read)(&path) {
        Ok(c) => c,
        Err(e) => {
            f.bad(v, "manifest", &e);
            return None;
        }
    };
    let object: Value = match crate::core::yaml::from_str(&path.display().to_string(), &content) {
        Ok(o) => o,
        Err(e) => {
            f.bad(v, "manifest", &e.to_string());
            return None;
        }
    };
    let field = |k: &str| object.get(k).and_then(Value::as_str).map(str::to_owned);
    let meta = |k: &str| {
        object
            .get("metadata")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (Some(api_version), Some(kind), Some(name)) =
        (field("apiVersion"), field("kind"), meta("name"))
    else {
        f.bad(
            v,
            "manifest",
            &format!(
                "`{}` must be one object with `apiVersion`, `kind` and `metadata.name`",
                path.display()
            ),
        );
        return None;
    };
    let namespaced = known_kind(&kind).map(|k| k.namespaced);
    let namespace = match (meta("namespace"), namespace_field) {
        (Some(a), Some(b)) if a != b => {
            f.bad(
                v,
                "namespace",
                &format!("the manifest says namespace `{a}`, the step says `{b}`"),
            );
            return None;
        }
        (Some(ns), _) | (None, Some(ns)) => Some(ns),
        // A kind the loader does not know is namespaced only when the
        // manifest or the step says so.
        (None, None) if namespaced == Some(true) => {
            Some(target_ns.unwrap_or_else(|| "default".into()))
        }
        (None, None) => None,
    };
    Some(KubeAction {
        context,
        verb: KubeVerb::Apply { manifest, content },
        kind,
        api_version: Some(api_version),
        namespace,
        name,
    })
}

fn ec2(v: &mut Validator<'_>, f: &mut Fields<'_, '_>, verb: &str) -> Option<Ec2Action> {
    let region = f
        .string(v, "region")
        .or_else(|| f.scope.target.aws_region.clone());
    let ids = f.required_strings(v, "instance_ids");
    let verb = match verb {
        "describe_instances" => Ec2Verb::DescribeInstances,
        "start_instances" => Ec2Verb::StartInstances,
        "stop_instances" => Ec2Verb::StopInstances,
        "reboot_instances" => Ec2Verb::RebootInstances,
        "terminate_instances" => Ec2Verb::TerminateInstances,
        _ => {
            let state = f.required_string(v, "state")?;
            Ec2Verb::InstanceState {
                state: match state.as_str() {
                    "running" => InstanceState::Running,
                    "stopped" => InstanceState::Stopped,
                    "terminated" => InstanceState::Terminated,
                    _ => {
                        f.bad(
                            v,
                            "state",
                            &format!(
                                "unknown state `{state}`; expected running, stopped or terminated"
                            ),
                        );
                        return None;
                    }
                },
            }
        }
    };
    let region = f.word(v, "region", region)?;
    let ids = ids?;
    if let Some(bad) = ids.iter().find(|id| !is_instance_id(id)) {
        f.bad(
            v,
            "instance_ids",
            &format!("`{bad}` is not an instance id (i- and hex digits)"),
        );
        return None;
    }
    Some(Ec2Action {
        region,
        verb,
        instance_ids: ids,
    })
}

fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-")
        .is_some_and(|h| !h.is_empty() && h.len() <= 17 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

fn docker(v: &mut Validator<'_>, f: &mut Fields<'_, '_>, verb: &str) -> Option<DockerAction> {
    let host = f
        .string(v, "host")
        .or_else(|| f.scope.target.docker_host.clone());
    let verb = match verb {
        "ps" => DockerVerb::Ps,
        "inspect" => DockerVerb::Inspect,
        "start" => DockerVerb::Start,
        "stop" => DockerVerb::Stop,
        "restart" => DockerVerb::Restart,
        "remove" => DockerVerb::Remove {
            force: f.bool(v, "force").unwrap_or(false),
        },
        "running" => DockerVerb::Running,
        _ => DockerVerb::Healthy,
    };
    let host = f.word(v, "host", host)?;
    let container = if verb == DockerVerb::Ps {
        None
    } else {
        Some(f.required_string(v, "container")?)
    };
    Some(DockerAction {
        host,
        verb,
        container,
    })
}

/// The fields of one native action, tracking which were read so that the
/// rest can be reported as unknown.
struct Fields<'d, 's> {
    map: &'d NativeDoc,
    at: Location,
    used: Vec<&'static str>,
    /// Required fields found missing, reported by `finish` (where a
    /// misspelling can explain them).
    missing: Vec<&'static str>,
    what: String,
    scope: &'s Scope<'s>,
}

impl Fields<'_, '_> {
    fn get(&mut self, key: &'static str) -> Option<&Spanned<Value>> {
        self.used.push(key);
        self.map.get(key)
    }

    fn location(&self, key: &str) -> Location {
        self.map.get(key).map_or(self.at, |s| s.referenced)
    }

    fn bad(&self, v: &mut Validator<'_>, key: &str, message: &str) {
        v.at(
            &self.location(key),
            format!("{}: field `{key}`: {message}", self.what),
        );
    }

    /// A name-like value (from the field, or the plan's target) as one
    /// plain word: letters, digits and `-_./:=@,+`, not starting with `-`.
    /// So no value can pass for a flag, a comment or a second command in
    /// the shell twin the classifier rates.
    fn word(
        &self,
        v: &mut Validator<'_>,
        key: &str,
        value: Option<String>,
    ) -> Option<Option<String>> {
        let Some(s) = value else {
            return Some(None);
        };
        let plain = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c));
        if plain && !s.starts_with('-') {
            return Some(Some(s));
        }
        let from = if self.map.contains_key(key) {
            String::new()
        } else {
            " (from the plan's target)".into()
        };
        self.bad(
            v,
            key,
            &format!(
                "`{s}`{from} is not a plain name: use letters, digits and `-_./:=@,+`, not starting with `-`"
            ),
        );
        None
    }

    /// A text field, with parameters substituted. Numbers are read as text.
    fn string(&mut self, v: &mut Validator<'_>, key: &'static str) -> Option<String> {
        let s = self.get(key)?.clone();
        let text = match &s.value {
            Value::String(t) => t.clone(),
            Value::Number(n) => n.to_string(),
            other => {
                self.bad(v, key, &format!("expected text, found {}", kind_of(other)));
                return None;
            }
        };
        let spanned = Spanned::new(text, s.referenced, s.defined);
        let what = format!("{}: field `{key}`", self.what);
        let out = v.text(&spanned, self.scope.params, &what);
        if out.trim().is_empty() {
            self.bad(v, key, "is empty");
            return None;
        }
        if NAME_FIELDS.contains(&key) {
            return self.word(v, key, Some(out))?;
        }
        Some(out)
    }

    /// Whether a required field is there; noted as missing when not.
    fn present(&mut self, key: &'static str) -> bool {
        if self.map.contains_key(key) {
            return true;
        }
        self.used.push(key);
        self.missing.push(key);
        false
    }

    fn required_string(&mut self, v: &mut Validator<'_>, key: &'static str) -> Option<String> {
        if !self.present(key) {
            return None;
        }
        self.string(v, key)
    }

    fn int(&mut self, v: &mut Validator<'_>, key: &'static str) -> Option<i32> {
        let text = self.string(v, key)?;
        match text.trim().parse::<i32>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                self.bad(
                    v,
                    key,
                    &format!("expected a whole number of 0 or more, found `{text}`"),
                );
                None
            }
        }
    }

    fn required_int(&mut self, v: &mut Validator<'_>, key: &'static str) -> Option<i32> {
        if !self.present(key) {
            return None;
        }
        self.int(v, key)
    }

    fn bool(&mut self, v: &mut Validator<'_>, key: &'static str) -> Option<bool> {
        let s = self.get(key)?;
        match s.value {
            Value::Bool(b) => Some(b),
            ref other => {
                let found = kind_of(other);
                self.bad(v, key, &format!("expected true or false, found {found}"));
                None
            }
        }
    }

    /// A list of texts; one text is a list of one.
    fn required_strings(
        &mut self,
        v: &mut Validator<'_>,
        key: &'static str,
    ) -> Option<Vec<String>> {
        if !self.present(key) {
            return None;
        }
        let s = self.get(key).cloned()?;
        let items: Vec<Value> = match &s.value {
            Value::Array(items) => items.clone(),
            one @ Value::String(_) => vec![one.clone()],
            other => {
                self.bad(
                    v,
                    key,
                    &format!("expected a list, found {}", kind_of(other)),
                );
                return None;
            }
        };
        if items.is_empty() {
            self.bad(v, key, "is empty");
            return None;
        }
        let what = format!("{}: field `{key}`", self.what);
        let mut out = Vec::new();
        for item in items {
            let Value::String(t) = item else {
                self.bad(v, key, &format!("expected text, found {}", kind_of(&item)));
                return None;
            };
            let spanned = Spanned::new(t, s.referenced, s.defined);
            out.push(v.text(&spanned, self.scope.params, &what));
        }
        Some(out)
    }

    /// Reports every field that was not read, and every required field
    /// that is missing (once: a misspelt field names the one it stands for).
    fn finish(&self, v: &mut Validator<'_>) {
        let mut missing = self.missing.clone();
        for (key, value) in self.map {
            if !self.used.contains(&key.as_str()) && key != "op" && key != "check" {
                let hint = match missing.iter().position(|m| close(m, key)) {
                    Some(i) => format!("did you mean `{}`?", missing.remove(i)),
                    None => {
                        let mut known: Vec<&str> = self.used.clone();
                        known.sort_unstable();
                        known.dedup();
                        format!("it takes: {}", known.join(", "))
                    }
                };
                v.at(
                    &value.referenced,
                    format!("{}: unknown field `{key}`; {hint}", self.what),
                );
            }
        }
        for key in missing {
            v.at(&self.at, format!("{}: missing field `{key}`", self.what));
        }
    }
}

/// Whether two field names are at most two edits apart (a typo).
fn close(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            row.push((prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()] <= 2
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
