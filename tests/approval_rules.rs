//! The approval rules (`core::approval`) and the state fold (`core::state`),
//! one table per rule: what each level needs, CRITICAL, separation of
//! duties, the approvers list and the channel ceilings, the binding of a
//! vote to the plan hash, the policy hash and the TTL (with the exact
//! boundary), rejections, production blocking, `require_approval`, dry runs,
//! and the ledger folded from audit records: votes, runs, dry runs,
//! resubmissions and recorded expiries.
//!
//! Each table collects every wrong row before it fails, so one run shows
//! all of them.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, TimeDelta, Utc};
use opsgate::core::approval::{
    Requirement, Subject, Verdict, Vote, VoteProblem, evaluate, may_approve, needs_dry_run,
    requirement,
};
use opsgate::core::digest::{PlanHash, PolicyHash};
use opsgate::core::event::{Channel, Decision, Event, Record, Status, short};
use opsgate::core::policy::LoadedPolicy;
use opsgate::core::risk::RiskLevel::{self, Critical, High, Low, Medium};
use opsgate::core::state::{Ledger, PlanStatus};
use serde_json::{Value, json};

// ---------------------------------------------------------------- fixtures

/// The people of the tables. Each has a key of their own (one key counts
/// once), made from their name as compared (`person_key`), so `ALICE` and
/// a disguised `аlice` sign with alice's key; each key is listed for any
/// name (`*`), so that the tables of the other rules see signed votes, as
/// decisions at HIGH and CRITICAL must be.
const PEOPLE: [&str; 8] = [
    "alice", "bob", "carol", "dana", "dave", "engine", "eve", "émile",
];

/// The key of `name`'s person.
fn key_of(name: &str) -> ssh_key::PrivateKey {
    use sha2::Digest;
    let seed: [u8; 32] = sha2::Sha256::digest(opsgate::core::identity::person_key(name)).into();
    ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&seed))
}

/// The allowed signers of every table: each of [`PEOPLE`]'s keys.
fn allowed_signers() -> String {
    PEOPLE
        .iter()
        .map(|p| {
            let Ok(public) = key_of(p).public_key().to_openssh() else {
                panic!("the key of {p} has an OpenSSH form");
            };
            format!("* namespaces=\"opsgate\" {public}\n")
        })
        .collect()
}

/// The default policy overlaid by `yaml` (`""`: the default alone), with
/// [`allowed_signers`].
fn load(yaml: &str) -> LoadedPolicy {
    match LoadedPolicy::load(Some(("test.yaml", yaml)))
        .and_then(|p| p.with_signers_file("allowed_signers", &allowed_signers()))
    {
        Ok(p) => p,
        Err(e) => panic!("the policy overlay {yaml:?} does not load: {e}"),
    }
}

/// `vote` signed by its approver's key over its statement.
fn sign(mut vote: Vote, signed_at: i64) -> Vote {
    let message = vote.statement("p1", signed_at).message();
    let key = key_of(&vote.approver);
    let sig = match key
        .sign("opsgate", ssh_key::HashAlg::Sha512, &message)
        .and_then(|s| s.to_pem(ssh_key::LineEnding::LF))
    {
        Ok(sig) => sig,
        Err(e) => panic!("signing failed: {e}"),
    };
    vote.proof = Some(opsgate::core::identity::Proof::Ssh {
        fingerprint: key
            .public_key()
            .fingerprint(ssh_key::HashAlg::Sha256)
            .to_string(),
        signature: sig,
        signed_at,
    });
    vote
}

/// The embedded default policy.
static DEFAULT: LazyLock<LoadedPolicy> = LazyLock::new(|| load(""));

/// `sha256:` and 64 hex digits made of `pattern` repeated.
fn sha(pattern: &str) -> String {
    format!("sha256:{}", pattern.repeat(64 / pattern.len()))
}

/// The plan's current hash.
static CURRENT: LazyLock<PlanHash> = LazyLock::new(|| PlanHash::new(sha("cd34")));
/// The hash of an earlier version of the plan.
static OLD: LazyLock<PlanHash> = LazyLock::new(|| PlanHash::new(sha("ab12")));
/// A policy hash no loaded policy has.
static STALE_POLICY: LazyLock<PolicyHash> = LazyLock::new(|| PolicyHash::new(sha("ef56")));

fn at(rfc3339: &str) -> DateTime<Utc> {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => panic!("{rfc3339:?}: {e}"),
    }
}

/// "Now" for the approval rules.
fn now() -> DateTime<Utc> {
    at("2026-01-26T13:00:00Z")
}

/// A plan as the rules see it: its author is `carol` unless told.
#[derive(Debug, Clone, Copy)]
struct Plan {
    risk: RiskLevel,
    author: &'static str,
    production: bool,
    overridden: bool,
}

fn plan(risk: RiskLevel) -> Plan {
    Plan {
        risk,
        author: "carol",
        production: false,
        overridden: false,
    }
}

impl Plan {
    fn by(self, author: &'static str) -> Self {
        Plan { author, ..self }
    }

    /// Mutates a production scope, without an override.
    fn production(self) -> Self {
        Plan {
            production: true,
            ..self
        }
    }

    /// Mutates a production scope and carries `override: {reason}`.
    fn overridden(self) -> Self {
        Plan {
            production: true,
            overridden: true,
            ..self
        }
    }

    fn subject(&self) -> Subject<'static> {
        Subject {
            plan_id: "p1",
            plan_hash: &CURRENT,
            risk: self.risk,
            author: self.author,
            author_key: None,
            mutates_production: self.production,
            has_override: self.overridden,
        }
    }
}

/// A vote to cast: by default granted from the CLI a minute ago, for the
/// current plan hash under the current policy.
#[derive(Debug, Clone)]
struct Cast {
    who: &'static str,
    channel: Channel,
    granted: bool,
    reason: Option<&'static str>,
    age: TimeDelta,
    stale_plan: bool,
    stale_policy: bool,
    proof: Signed,
}

/// How a cast vote is signed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Signed {
    /// By its approver's key, over the vote.
    Yes,
    /// Not at all: an OS user.
    No,
    /// Over the vote, then the vote's reason is changed.
    Tampered,
    /// Attested by a chat bridge.
    Chat,
}

fn yes(who: &'static str) -> Cast {
    Cast {
        who,
        channel: Channel::Cli,
        granted: true,
        reason: None,
        age: TimeDelta::minutes(1),
        stale_plan: false,
        stale_policy: false,
        proof: Signed::Yes,
    }
}

fn no(who: &'static str) -> Cast {
    Cast {
        granted: false,
        ..yes(who)
    }
}

impl Cast {
    fn via(self, channel: Channel) -> Self {
        Cast { channel, ..self }
    }

    fn aged(self, age: TimeDelta) -> Self {
        Cast { age, ..self }
    }

    fn because(self, reason: &'static str) -> Self {
        Cast {
            reason: Some(reason),
            ..self
        }
    }

    fn for_old_plan(self) -> Self {
        Cast {
            stale_plan: true,
            ..self
        }
    }

    fn under_old_policy(self) -> Self {
        Cast {
            stale_policy: true,
            ..self
        }
    }

    fn signed(self, proof: Signed) -> Self {
        Cast { proof, ..self }
    }

    fn vote(&self, policy_hash: &PolicyHash) -> Vote {
        let vote = Vote {
            approver: self.who.to_owned(),
            channel: self.channel,
            plan_hash: if self.stale_plan {
                OLD.clone()
            } else {
                CURRENT.clone()
            },
            policy_hash: if self.stale_policy {
                STALE_POLICY.clone()
            } else {
                policy_hash.clone()
            },
            at: now() - self.age,
            granted: self.granted,
            reason: self.reason.map(str::to_owned),
            proof: None,
            submission_seq: None,
            rollback_of: None,
        };
        let signed_at = vote.at.timestamp();
        match self.proof {
            Signed::Yes => sign(vote, signed_at),
            Signed::No => Vote {
                proof: Some(opsgate::core::identity::Proof::Os { uid: 1000 }),
                ..vote
            },
            Signed::Tampered => Vote {
                reason: Some("changed after signing".into()),
                ..sign(vote, signed_at)
            },
            Signed::Chat => Vote {
                proof: Some(opsgate::core::identity::Proof::Chat {
                    client: "bot".into(),
                    sender: "U1".into(),
                }),
                ..vote
            },
        }
    }
}

/// The verdict on `plan` under `policy` with `casts`, at [`now`].
fn verdict(policy: &LoadedPolicy, plan: Plan, casts: &[Cast]) -> Verdict {
    let votes: Vec<Vote> = casts.iter().map(|c| c.vote(&policy.hash)).collect();
    evaluate(&policy.policy, &policy.hash, &plan.subject(), &votes, now())
}

/// A verdict reduced to what the tables compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Refused,
    Rejected(String),
    Approved {
        needed: u32,
        by: Vec<String>,
    },
    Pending {
        needed: u32,
        have: Vec<String>,
        discounted: Vec<(String, VoteProblem)>,
        expired: bool,
    },
}

fn outcome(v: &Verdict) -> Outcome {
    match v {
        Verdict::Refused { .. } => Outcome::Refused,
        Verdict::Rejected { by, .. } => Outcome::Rejected(by.clone()),
        Verdict::Approved { plan, needed } => Outcome::Approved {
            needed: *needed,
            by: plan.approvers().to_vec(),
        },
        Verdict::Pending {
            needed,
            have,
            discounted,
            expired,
        } => Outcome::Pending {
            needed: *needed,
            have: have.clone(),
            discounted: discounted
                .iter()
                .map(|d| (d.approver.clone(), d.problem.clone()))
                .collect(),
            expired: *expired,
        },
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn refused() -> Outcome {
    Outcome::Refused
}

fn rejected(by: &str) -> Outcome {
    Outcome::Rejected(by.to_owned())
}

fn approved(needed: u32, by: &[&str]) -> Outcome {
    Outcome::Approved {
        needed,
        by: names(by),
    }
}

fn pending(needed: u32, have: &[&str], discounted: &[(&str, VoteProblem)]) -> Outcome {
    Outcome::Pending {
        needed,
        have: names(have),
        discounted: discounted
            .iter()
            .map(|(w, p)| ((*w).to_owned(), p.clone()))
            .collect(),
        expired: false,
    }
}

/// Pending with `expired: true`.
fn expired(needed: u32, have: &[&str], discounted: &[(&str, VoteProblem)]) -> Outcome {
    match pending(needed, have, discounted) {
        Outcome::Pending {
            needed,
            have,
            discounted,
            ..
        } => Outcome::Pending {
            needed,
            have,
            discounted,
            expired: true,
        },
        other => other,
    }
}

/// One row of a verdict table: a policy overlay, a plan, the votes, and the
/// expected outcome.
struct Row {
    name: &'static str,
    policy: &'static str,
    plan: Plan,
    votes: Vec<Cast>,
    want: Outcome,
}

fn row(
    name: &'static str,
    policy: &'static str,
    plan: Plan,
    votes: Vec<Cast>,
    want: Outcome,
) -> Row {
    Row {
        name,
        policy,
        plan,
        votes,
        want,
    }
}

/// Every row whose outcome differs from the expected one.
fn mismatches(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for r in rows {
        let policy = load(r.policy);
        let v = verdict(&policy, r.plan, &r.votes);
        let got = outcome(&v);
        if got != r.want {
            out.push(format!(
                "{}:\n  want {:?}\n  got  {:?}\n  ({:?})",
                r.name,
                r.want,
                got,
                v.missing()
            ));
        }
    }
    out
}

fn req(level: RiskLevel, approvals: u32) -> Result<Requirement, &'static str> {
    Ok(Requirement { level, approvals })
}

/// Every row whose requirement differs; an `Err` row names a part of the
/// refusal's text.
fn requirement_mismatches(rows: &[(&str, &str, Plan, Result<Requirement, &str>)]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, overlay, plan, want) in rows {
        let policy = load(overlay);
        let got = requirement(&policy.policy, &plan.subject());
        let ok = match (&got, want) {
            (Ok(g), Ok(w)) => g == w,
            (Err(refusal), Err(part)) => refusal.0.contains(part),
            _ => false,
        };
        if !ok {
            out.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    out
}

// ------------------------------------------------------- what a level needs

#[test]
fn required_approvals_come_from_the_policy_per_level() {
    let auto = "execution: {auto_approve_low_risk: true}";
    let rows = [
        ("default LOW needs 1", "", plan(Low), req(Low, 1)),
        ("default MEDIUM needs 1", "", plan(Medium), req(Medium, 1)),
        ("default HIGH needs 1", "", plan(High), req(High, 1)),
        ("auto-approve: LOW needs 0", auto, plan(Low), req(Low, 0)),
        (
            "auto-approve: LOW needs 0 whatever required.LOW says",
            "execution: {auto_approve_low_risk: true}\napprovals: {required: {LOW: 3}}",
            plan(Low),
            req(Low, 0),
        ),
        (
            "auto-approve leaves MEDIUM alone",
            auto,
            plan(Medium),
            req(Medium, 1),
        ),
        (
            "auto-approve leaves HIGH alone",
            auto,
            plan(High),
            req(High, 1),
        ),
        (
            "no auto-approve: LOW needs at least 1 although required.LOW is 0",
            "approvals: {required: {LOW: 0}}",
            plan(Low),
            req(Low, 1),
        ),
        (
            "no auto-approve: LOW needs required.LOW when above 1",
            "approvals: {required: {LOW: 2}}",
            plan(Low),
            req(Low, 2),
        ),
        (
            "required.MEDIUM: 2",
            "approvals: {required: {MEDIUM: 2}}",
            plan(Medium),
            req(Medium, 2),
        ),
        (
            "required.HIGH: 3",
            "approvals: {required: {HIGH: 3}}",
            plan(High),
            req(High, 3),
        ),
        (
            "required.HIGH: 3 leaves MEDIUM at its default",
            "approvals: {required: {HIGH: 3}}",
            plan(Medium),
            req(Medium, 1),
        ),
        (
            "required.MEDIUM: 0 needs none",
            "approvals: {required: {MEDIUM: 0}}",
            plan(Medium),
            req(Medium, 0),
        ),
    ];
    let mismatches = requirement_mismatches(&rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn evaluate_counts_approvals_against_what_the_level_needs() {
    let auto = "execution: {auto_approve_low_risk: true}";
    let rows = vec![
        row("LOW, no votes", "", plan(Low), vec![], pending(1, &[], &[])),
        row(
            "LOW, one approval",
            "",
            plan(Low),
            vec![yes("alice")],
            approved(1, &["alice"]),
        ),
        row(
            "LOW under auto-approve, no votes",
            auto,
            plan(Low),
            vec![],
            approved(0, &[]),
        ),
        row(
            "LOW under auto-approve, an approval is listed",
            auto,
            plan(Low),
            vec![yes("alice")],
            approved(0, &["alice"]),
        ),
        row(
            "MEDIUM, no votes",
            "",
            plan(Medium),
            vec![],
            pending(1, &[], &[]),
        ),
        row(
            "MEDIUM, one approval",
            "",
            plan(Medium),
            vec![yes("alice")],
            approved(1, &["alice"]),
        ),
        row(
            "HIGH, two approvals: both listed",
            "",
            plan(High),
            vec![yes("alice"), yes("bob")],
            approved(1, &["alice", "bob"]),
        ),
        row(
            "HIGH needs 2: one is not enough",
            "approvals: {required: {HIGH: 2}}",
            plan(High),
            vec![yes("alice")],
            pending(2, &["alice"], &[]),
        ),
        row(
            "HIGH needs 2: two distinct approvers",
            "approvals: {required: {HIGH: 2}}",
            plan(High),
            vec![yes("alice"), yes("bob")],
            approved(2, &["alice", "bob"]),
        ),
        row(
            "LOW needs required.LOW (2) without auto-approve",
            "approvals: {required: {LOW: 2}}",
            plan(Low),
            vec![yes("alice")],
            pending(2, &["alice"], &[]),
        ),
    ];
    let mismatches = mismatches(&rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

// ---------------------------------------------------------------- CRITICAL

#[test]
fn critical_is_refused_unless_allowed_then_needs_its_quorum() {
    let allow = "safety: {allow_critical: true}";
    let requirements = [
        (
            "default: CRITICAL refused",
            "",
            plan(Critical),
            Err("safety.allow_critical is false"),
        ),
        (
            "the refusal names the plan",
            "",
            plan(Critical),
            Err("plan `p1` is CRITICAL"),
        ),
        (
            "allowed: CRITICAL needs required.CRITICAL (2)",
            allow,
            plan(Critical),
            req(Critical, 2),
        ),
        (
            "allowed, required.CRITICAL: 3",
            "safety: {allow_critical: true}\napprovals: {required: {CRITICAL: 3}}",
            plan(Critical),
            req(Critical, 3),
        ),
        (
            "allowed, required.CRITICAL: 0 still needs 1",
            "safety: {allow_critical: true}\napprovals: {required: {CRITICAL: 0}}",
            plan(Critical),
            req(Critical, 1),
        ),
        (
            "allow_critical leaves HIGH alone",
            allow,
            plan(High),
            req(High, 1),
        ),
        (
            "auto-approve does not waive CRITICAL",
            "safety: {allow_critical: true}\nexecution: {auto_approve_low_risk: true}",
            plan(Critical),
            req(Critical, 2),
        ),
    ];
    let mut mismatches = requirement_mismatches(&requirements);

    let rows = vec![
        row(
            "refused whatever the votes",
            "",
            plan(Critical),
            vec![yes("alice"), yes("bob"), yes("dave")],
            refused(),
        ),
        row(
            "allowed, no votes",
            allow,
            plan(Critical),
            vec![],
            pending(2, &[], &[]),
        ),
        row(
            "allowed, one approver",
            allow,
            plan(Critical),
            vec![yes("alice")],
            pending(2, &["alice"], &[]),
        ),
        row(
            "allowed, two distinct approvers",
            allow,
            plan(Critical),
            vec![yes("alice"), yes("bob").via(Channel::Tui)],
            approved(2, &["alice", "bob"]),
        ),
        row(
            "allowed, three approvers, quorum 3",
            "safety: {allow_critical: true}\napprovals: {required: {CRITICAL: 3}}",
            plan(Critical),
            vec![yes("alice"), yes("bob"), yes("dave")],
            approved(3, &["alice", "bob", "dave"]),
        ),
        row(
            "allowed, quorum 3, two approvers",
            "safety: {allow_critical: true}\napprovals: {required: {CRITICAL: 3}}",
            plan(Critical),
            vec![yes("alice"), yes("bob")],
            pending(3, &["alice", "bob"], &[]),
        ),
    ];
    mismatches.extend(self::mismatches(&rows));
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

// ------------------------------------------------------ separation of duties

#[test]
fn separation_of_duties_excludes_the_author_and_counts_each_person_once() {
    let allow = "safety: {allow_critical: true}";
    let sod_off = "approvals: {separation_of_duties: false}";
    let rows = vec![
        row(
            "the author cannot approve",
            "",
            plan(High),
            vec![yes("carol")],
            pending(1, &[], &[("carol", VoteProblem::SelfApproval)]),
        ),
        row(
            "the author in other case",
            "",
            plan(High),
            vec![yes("Carol")],
            pending(1, &[], &[("Carol", VoteProblem::SelfApproval)]),
        ),
        row(
            "the author in capitals with spaces",
            "",
            plan(High),
            vec![yes(" CAROL ")],
            pending(1, &[], &[(" CAROL ", VoteProblem::SelfApproval)]),
        ),
        row(
            "an author named in capitals, approving in lower case",
            "",
            plan(High).by("CAROL"),
            vec![yes("carol")],
            pending(1, &[], &[("carol", VoteProblem::SelfApproval)]),
        ),
        row(
            "the author's vote does not block another's",
            "",
            plan(High),
            vec![yes("carol"), yes("alice")],
            approved(1, &["alice"]),
        ),
        row(
            "someone else approves",
            "",
            plan(High),
            vec![yes("alice")],
            approved(1, &["alice"]),
        ),
        row(
            "one person twice counts once",
            allow,
            plan(Critical),
            vec![yes("alice"), yes("alice").via(Channel::Tui)],
            pending(2, &["alice"], &[("alice", VoteProblem::Duplicate)]),
        ),
        row(
            "one person in two spellings counts once",
            allow,
            plan(Critical),
            vec![yes("alice"), yes("ALICE"), yes(" Alice")],
            pending(
                2,
                &["alice"],
                &[
                    ("ALICE", VoteProblem::Duplicate),
                    (" Alice", VoteProblem::Duplicate),
                ],
            ),
        ),
        row(
            "the author plus one other: not a quorum of 2",
            allow,
            plan(Critical),
            vec![yes("carol"), yes("alice")],
            pending(2, &["alice"], &[("carol", VoteProblem::SelfApproval)]),
        ),
        row(
            "two distinct others: a quorum of 2",
            allow,
            plan(Critical),
            vec![yes("alice"), yes("ALICE"), yes("bob")],
            approved(2, &["alice", "bob"]),
        ),
        row(
            "separation_of_duties off: the author may approve",
            sod_off,
            plan(High),
            vec![yes("carol")],
            approved(1, &["carol"]),
        ),
        row(
            "separation_of_duties off: the author in other case too",
            sod_off,
            plan(Medium),
            vec![yes("CAROL")],
            approved(1, &["CAROL"]),
        ),
        row(
            "below the default level (HIGH) the submitter may approve",
            "",
            plan(Medium),
            vec![yes("carol")],
            approved(1, &["carol"]),
        ),
        row(
            "separation_of_duties: MEDIUM holds a MEDIUM plan",
            "approvals: {separation_of_duties: MEDIUM}",
            plan(Medium),
            vec![yes("carol")],
            pending(1, &[], &[("carol", VoteProblem::SelfApproval)]),
        ),
        row(
            "separation_of_duties: true holds every level",
            "approvals: {separation_of_duties: true}",
            plan(Low),
            vec![yes("carol")],
            pending(1, &[], &[("carol", VoteProblem::SelfApproval)]),
        ),
        row(
            "separation_of_duties: CRITICAL leaves HIGH to the submitter",
            "approvals: {separation_of_duties: CRITICAL}",
            plan(High),
            vec![yes("carol")],
            approved(1, &["carol"]),
        ),
    ];
    let mismatches = mismatches(&rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn names_compare_case_insensitively_beyond_ascii() {
    let rows = vec![
        row(
            "a non-ASCII author in other case cannot approve",
            "",
            plan(High).by("Émile"),
            vec![yes("émile")],
            pending(1, &[], &[("émile", VoteProblem::SelfApproval)]),
        ),
        row(
            "one non-ASCII person in two cases counts once",
            "safety: {allow_critical: true}",
            plan(Critical),
            vec![yes("Émile"), yes("émile")],
            pending(2, &["Émile"], &[("émile", VoteProblem::Duplicate)]),
        ),
    ];
    let mismatches = mismatches(&rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// Attack: one person dressed up as a second (a zero-width space, a BOM,
/// a soft hyphen, fullwidth letters, a Cyrillic look-alike) is still one
/// person: not a CRITICAL quorum, and not someone other than the author.
#[test]
fn disguised_names_are_one_person() {
    let allow = "safety: {allow_critical: true}";
    let mut rows = Vec::new();
    for disguise in [
        "alice\u{200b}",
        "\u{feff}alice",
        "ali\u{00ad}ce",
        "ａｌｉｃｅ",
        "\u{0430}lice", // Cyrillic a
        "alice\u{200d}",
    ] {
        rows.push(row(
            "a disguised second approver counts once",
            allow,
            plan(Critical),
            vec![yes("alice"), yes(disguise)],
            pending(2, &["alice"], &[(disguise, VoteProblem::Duplicate)]),
        ));
        rows.push(row(
            "the author disguised cannot approve",
            "",
            plan(High).by("alice"),
            vec![yes(disguise)],
            pending(1, &[], &[(disguise, VoteProblem::SelfApproval)]),
        ));
    }
    rows.push(row(
        "two different people make a quorum",
        allow,
        plan(Critical),
        vec![yes("alice"), yes("bob")],
        approved(2, &["alice", "bob"]),
    ));
    let mismatches = mismatches(&rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

// ------------------------------------------------------------- identity

/// From `identity.require_signatures_from` (HIGH by default) a decision
/// counts only when it is signed, and a CRITICAL plan always needs
/// signatures; a signature that does not verify never counts; a chat
/// bridge's attestation counts up to the chat channel's ceiling.
#[test]
fn signatures_are_required_from_a_level_and_must_verify() {
    use Signed::{Chat, No, Tampered};
    let allow = "safety: {allow_critical: true}";
    let unsigned = |from| VoteProblem::Unsigned { from };
    let rows = vec![
        row(
            "an unsigned approval counts below HIGH",
            "",
            plan(Medium),
            vec![yes("alice").signed(No)],
            approved(1, &["alice"]),
        ),
        row(
            "an unsigned approval does not count at HIGH",
            "",
            plan(High),
            vec![yes("alice").signed(No)],
            pending(1, &[], &[("alice", unsigned(High))]),
        ),
        row(
            "nor at CRITICAL, even when signatures start above it",
            "safety: {allow_critical: true}\nidentity: {require_signatures_from: CRITICAL}",
            plan(Critical),
            vec![yes("alice").signed(No), yes("bob")],
            pending(2, &["bob"], &[("alice", unsigned(Critical))]),
        ),
        row(
            "require_signatures_from: MEDIUM holds MEDIUM",
            "identity: {require_signatures_from: MEDIUM}",
            plan(Medium),
            vec![yes("alice").signed(No)],
            pending(1, &[], &[("alice", unsigned(Medium))]),
        ),
        row(
            "require_signatures_from: CRITICAL frees HIGH",
            "identity: {require_signatures_from: CRITICAL}",
            plan(High),
            vec![yes("alice").signed(No)],
            approved(1, &["alice"]),
        ),
        row(
            "a chat bridge's attestation counts at HIGH (the chat ceiling)",
            "",
            plan(High),
            vec![yes("alice").via(Channel::Chat).signed(Chat)],
            approved(1, &["alice"]),
        ),
        row(
            "a chat attestation on another channel is not one (a forged record)",
            "",
            plan(High),
            vec![yes("alice").signed(Chat)],
            pending(1, &[], &[("alice", unsigned(High))]),
        ),
        row(
            "it counts up to the chat ceiling the policy sets, CRITICAL too",
            "safety: {allow_critical: true}\napprovals: {channel_max_risk: {chat: CRITICAL}}",
            plan(Critical),
            vec![yes("alice").via(Channel::Chat).signed(Chat), yes("bob")],
            approved(2, &["alice", "bob"]),
        ),
        row(
            "two signed people make a CRITICAL quorum",
            allow,
            plan(Critical),
            vec![yes("alice"), yes("bob")],
            approved(2, &["alice", "bob"]),
        ),
    ];
    let mut mismatches = mismatches(&rows);
    // The tampered row: the problem names the failed signature.
    let tampered = verdict(&load(""), plan(Medium), &[yes("alice").signed(Tampered)]);
    match &tampered {
        Verdict::Pending {
            discounted, have, ..
        } if have.is_empty()
            && discounted
                .iter()
                .any(|d| matches!(d.problem, VoteProblem::BadSignature { .. })) => {}
        other => mismatches.push(format!(
            "a signed approval whose reason was changed: want a bad signature, got {other:?}"
        )),
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

// ------------------------------------------- approvers list and channels

const APPROVERS: &str = "
approvers:
  - {name: alice, max_risk: CRITICAL, channels: [tui, cli, chat]}
  - {name: bob, max_risk: HIGH, channels: [chat]}
  - {name: Dana}
  - {name: sys, channels: [system]}
";

/// Every row whose `may_approve` answer differs. The plan's author is
/// `carol`.
fn may_approve_mismatches(
    overlay: &str,
    rows: &[(&str, RiskLevel, Channel, Result<(), VoteProblem>)],
) -> Vec<String> {
    let policy = load(overlay);
    let subject = plan(High).subject();
    let mut out = Vec::new();
    for (who, level, channel, want) in rows {
        let got = may_approve(&policy.policy, &subject, *level, who, *channel);
        if &got != want {
            out.push(format!(
                "{who} at {level} via {channel:?}: want {want:?}, got {got:?}"
            ));
        }
    }
    out
}

#[test]
fn the_approvers_list_limits_who_may_approve_by_level_and_channel() {
    use Channel::{Chat, Cli, System, Tui};
    let not_allowed = |channel| Err(VoteProblem::ChannelNotAllowed { channel });
    let rows = [
        ("alice", Critical, Cli, Ok(())),
        ("alice", Critical, Tui, Ok(())),
        ("alice", High, Chat, Ok(())),
        ("alice", Low, Cli, Ok(())),
        ("ALICE", High, Cli, Ok(())),
        (" alice ", Medium, Tui, Ok(())),
        // the chat ceiling still applies to a listed approver
        (
            "alice",
            Critical,
            Chat,
            Err(VoteProblem::ChannelCeiling {
                channel: Chat,
                ceiling: High,
            }),
        ),
        ("bob", High, Chat, Ok(())),
        ("bob", Low, Chat, Ok(())),
        ("bob", High, Cli, not_allowed(Cli)),
        ("bob", Medium, Tui, not_allowed(Tui)),
        (
            "bob",
            Critical,
            Chat,
            Err(VoteProblem::AboveMaxRisk { max: High }),
        ),
        // above max_risk is reported before the channel
        (
            "bob",
            Critical,
            Cli,
            Err(VoteProblem::AboveMaxRisk { max: High }),
        ),
        // defaults: max_risk CRITICAL, channels tui, cli, chat
        ("dana", Critical, Tui, Ok(())),
        ("dana", Critical, Cli, Ok(())),
        ("dana", High, Chat, Ok(())),
        ("dana", Low, System, not_allowed(System)),
        ("eve", Low, Cli, Err(VoteProblem::NotListed)),
        ("eve", Critical, Tui, Err(VoteProblem::NotListed)),
        ("alice2", Low, Cli, Err(VoteProblem::NotListed)),
        // the system channel never approves, even when listed
        ("sys", Low, System, not_allowed(System)),
        ("alice", Low, System, not_allowed(System)),
        // the author: self-approval comes first, listed or not
        ("carol", High, Cli, Err(VoteProblem::SelfApproval)),
        // below separation_of_duties' level (HIGH by default) the
        // submitter is like anyone else: carol is not listed
        ("carol", Low, Cli, Err(VoteProblem::NotListed)),
    ];
    let mismatches = may_approve_mismatches(APPROVERS, &rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn channel_ceilings_and_the_system_channel_without_a_list() {
    use Channel::{Chat, Cli, System, Tui};
    let ceiling = |channel, ceiling| Err(VoteProblem::ChannelCeiling { channel, ceiling });
    let system = Err(VoteProblem::ChannelNotAllowed { channel: System });
    let default_rows = [
        ("anyone", Low, Chat, Ok(())),
        ("anyone", High, Chat, Ok(())),
        ("anyone", Critical, Chat, ceiling(Chat, High)),
        ("anyone", Critical, Tui, Ok(())),
        ("anyone", Critical, Cli, Ok(())),
        ("anyone", Low, System, system.clone()),
        ("anyone", Critical, System, system.clone()),
    ];
    let mut mismatches = may_approve_mismatches("", &default_rows);

    // An overlay merges into the default map: chat keeps its HIGH ceiling.
    let cli_medium = "approvals: {channel_max_risk: {cli: MEDIUM}}";
    let custom_rows = [
        ("anyone", Medium, Cli, Ok(())),
        ("anyone", High, Cli, ceiling(Cli, Medium)),
        ("anyone", Critical, Cli, ceiling(Cli, Medium)),
        ("anyone", Critical, Chat, ceiling(Chat, High)),
        ("anyone", Critical, Tui, Ok(())),
        ("anyone", Low, System, system.clone()),
    ];
    mismatches.extend(may_approve_mismatches(cli_medium, &custom_rows));

    // Raising chat's ceiling lets chat approve CRITICAL.
    let chat_critical = "approvals: {channel_max_risk: {chat: CRITICAL}}";
    let raised_rows = [
        ("anyone", Critical, Chat, Ok(())),
        ("anyone", Critical, System, system),
    ];
    mismatches.extend(may_approve_mismatches(chat_critical, &raised_rows));
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn the_approvers_list_and_channels_decide_which_votes_count() {
    use Channel::{Chat, System, Tui};
    let allow_with_list: &str = "
safety: {allow_critical: true}
approvers:
  - {name: alice, max_risk: CRITICAL, channels: [tui, cli, chat]}
  - {name: bob, max_risk: HIGH, channels: [chat]}
  - {name: dana}
";
    let rows = vec![
        row(
            "a listed approver counts",
            APPROVERS,
            plan(High),
            vec![yes("alice")],
            approved(1, &["alice"]),
        ),
        row(
            "an unlisted approver does not",
            APPROVERS,
            plan(Medium),
            vec![yes("eve")],
            pending(1, &[], &[("eve", VoteProblem::NotListed)]),
        ),
        row(
            "bob from chat at HIGH counts",
            APPROVERS,
            plan(High),
            vec![yes("bob").via(Chat)],
            approved(1, &["bob"]),
        ),
        row(
            "bob from the CLI does not",
            APPROVERS,
            plan(High),
            vec![yes("bob")],
            pending(
                1,
                &[],
                &[(
                    "bob",
                    VoteProblem::ChannelNotAllowed {
                        channel: Channel::Cli,
                    },
                )],
            ),
        ),
        row(
            "CRITICAL: bob is above his max_risk, alice from chat above its ceiling",
            allow_with_list,
            plan(Critical),
            vec![
                yes("bob").via(Chat),
                yes("alice").via(Chat),
                yes("dana").via(Tui),
            ],
            pending(
                2,
                &["dana"],
                &[
                    ("bob", VoteProblem::AboveMaxRisk { max: High }),
                    (
                        "alice",
                        VoteProblem::ChannelCeiling {
                            channel: Chat,
                            ceiling: High,
                        },
                    ),
                ],
            ),
        ),
        row(
            "CRITICAL: alice from the TUI and dana from the CLI",
            allow_with_list,
            plan(Critical),
            vec![yes("alice").via(Tui), yes("dana")],
            approved(2, &["alice", "dana"]),
        ),
        row(
            "no list: CRITICAL from chat does not count",
            "safety: {allow_critical: true}",
            plan(Critical),
            vec![yes("alice").via(Chat), yes("bob").via(Chat)],
            pending(
                2,
                &[],
                &[
                    (
                        "alice",
                        VoteProblem::ChannelCeiling {
                            channel: Chat,
                            ceiling: High,
                        },
                    ),
                    (
                        "bob",
                        VoteProblem::ChannelCeiling {
                            channel: Chat,
                            ceiling: High,
                        },
                    ),
                ],
            ),
        ),
        row(
            "no list: CRITICAL from chat and the TUI: one counts",
            "safety: {allow_critical: true}",
            plan(Critical),
            vec![yes("alice").via(Chat), yes("bob").via(Tui)],
            pending(
                2,
                &["bob"],
                &[(
                    "alice",
                    VoteProblem::ChannelCeiling {
                        channel: Chat,
                        ceiling: High,
                    },
                )],
            ),
        ),
        row(
            "the system channel never approves",
            "",
            plan(Low),
            vec![yes("engine").via(System)],
            pending(
                1,
                &[],
                &[("engine", VoteProblem::ChannelNotAllowed { channel: System })],
            ),
        ),
    ];
    let mismatches = mismatches(&rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

// ------------------------------------- plan hash, policy hash and the TTL

#[test]
fn a_vote_counts_only_for_the_current_plan_hash_and_policy_hash() {
    let stale_plan = || VoteProblem::StalePlanHash {
        approved: OLD.clone(),
        current: CURRENT.clone(),
    };
    let stale_policy = |current: &PolicyHash| VoteProblem::StalePolicyHash {
        approved: STALE_POLICY.clone(),
        current: current.clone(),
    };
    let default_hash = DEFAULT.hash.clone();
    let rows = vec![
        row(
            "current hashes count",
            "",
            plan(High),
            vec![yes("alice")],
            approved(1, &["alice"]),
        ),
        row(
            "an approval for the old plan hash",
            "",
            plan(High),
            vec![yes("alice").for_old_plan()],
            pending(1, &[], &[("alice", stale_plan())]),
        ),
        row(
            "an approval under another policy",
            "",
            plan(High),
            vec![yes("alice").under_old_policy()],
            pending(1, &[], &[("alice", stale_policy(&default_hash))]),
        ),
        row(
            "both stale: the plan hash is reported",
            "",
            plan(High),
            vec![yes("alice").for_old_plan().under_old_policy()],
            pending(1, &[], &[("alice", stale_plan())]),
        ),
        row(
            "stale and expired: stale, not expired",
            "",
            plan(High),
            vec![yes("alice").for_old_plan().aged(TimeDelta::hours(2))],
            pending(1, &[], &[("alice", stale_plan())]),
        ),
        row(
            "a stale vote and a current one",
            "",
            plan(High),
            vec![yes("alice").for_old_plan(), yes("bob")],
            approved(1, &["bob"]),
        ),
        row(
            "re-approval of the new hash by the same person counts",
            "safety: {allow_critical: true}",
            plan(Critical),
            vec![yes("alice").for_old_plan(), yes("alice"), yes("bob")],
            approved(2, &["alice", "bob"]),
        ),
        row(
            "a stale vote is checked before the author",
            "",
            plan(High),
            vec![yes("carol").for_old_plan()],
            pending(1, &[], &[("carol", stale_plan())]),
        ),
    ];
    let mismatches = mismatches(&rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn a_changed_policy_makes_earlier_approvals_stale() {
    let before = &*DEFAULT;
    let after = load("approvals: {ttl: 1h}");
    assert_ne!(before.hash, after.hash, "a changed value changes the hash");
    let same = load("# nothing but a comment\napprovals:\n  ttl: 30m\n");
    let vote = yes("alice").vote(&before.hash);
    let subject = plan(High).subject();

    let under_before = evaluate(
        &before.policy,
        &before.hash,
        &subject,
        std::slice::from_ref(&vote),
        now(),
    );
    assert_eq!(outcome(&under_before), approved(1, &["alice"]));

    let under_same = evaluate(
        &same.policy,
        &same.hash,
        &subject,
        std::slice::from_ref(&vote),
        now(),
    );
    assert_eq!(
        outcome(&under_same),
        approved(1, &["alice"]),
        "the same values under another layout keep the hash"
    );

    let under_after = evaluate(&after.policy, &after.hash, &subject, &[vote], now());
    assert_eq!(
        outcome(&under_after),
        pending(
            1,
            &[],
            &[(
                "alice",
                VoteProblem::StalePolicyHash {
                    approved: before.hash.clone(),
                    current: after.hash.clone(),
                },
            )],
        )
    );
}

#[test]
fn a_vote_expires_at_exactly_the_ttl() {
    let ms = TimeDelta::milliseconds;
    let thirty_min = TimeDelta::minutes(30);
    let expired_after = |secs| VoteProblem::Expired { age_seconds: secs };
    let short_ttl = "approvals: {ttl: 90s}";
    let rows = vec![
        row(
            "just cast",
            "",
            plan(High),
            vec![yes("alice").aged(TimeDelta::zero())],
            approved(1, &["alice"]),
        ),
        row(
            "1 ms younger than the TTL counts",
            "",
            plan(High),
            vec![yes("alice").aged(thirty_min - ms(1))],
            approved(1, &["alice"]),
        ),
        row(
            "exactly the TTL does not count",
            "",
            plan(High),
            vec![yes("alice").aged(thirty_min)],
            expired(1, &[], &[("alice", expired_after(1800))]),
        ),
        row(
            "1 ms older than the TTL does not count",
            "",
            plan(High),
            vec![yes("alice").aged(thirty_min + ms(1))],
            expired(1, &[], &[("alice", expired_after(1800))]),
        ),
        row(
            "a minute past the TTL",
            "",
            plan(High),
            vec![yes("alice").aged(thirty_min + TimeDelta::minutes(1))],
            expired(1, &[], &[("alice", expired_after(1860))]),
        ),
        row(
            "ttl 90s: 89.999 s counts",
            short_ttl,
            plan(Medium),
            vec![yes("alice").aged(ms(89_999))],
            approved(1, &["alice"]),
        ),
        row(
            "ttl 90s: exactly 90 s does not",
            short_ttl,
            plan(Medium),
            vec![yes("alice").aged(ms(90_000))],
            expired(1, &[], &[("alice", expired_after(90))]),
        ),
        row(
            "ttl 1h: 59 minutes counts",
            "approvals: {ttl: 1h}",
            plan(Medium),
            vec![yes("alice").aged(TimeDelta::minutes(59))],
            approved(1, &["alice"]),
        ),
        row(
            "an expired vote and a fresh one: approved",
            "",
            plan(High),
            vec![yes("alice").aged(thirty_min), yes("bob")],
            approved(1, &["bob"]),
        ),
        row(
            "CRITICAL: one expired, one fresh: pending and expired",
            "safety: {allow_critical: true}",
            plan(Critical),
            vec![yes("alice").aged(TimeDelta::hours(1)), yes("bob")],
            expired(2, &["bob"], &[("alice", expired_after(3600))]),
        ),
        row(
            "an old vote that could not count anyway is not `expired`",
            "",
            plan(High),
            vec![yes("carol").aged(TimeDelta::hours(1))],
            pending(1, &[], &[("carol", VoteProblem::SelfApproval)]),
        ),
        row(
            "an old vote from chat on CRITICAL is a ceiling problem, not expiry",
            "safety: {allow_critical: true}",
            plan(Critical),
            vec![yes("alice").via(Channel::Chat).aged(TimeDelta::hours(1))],
            pending(
                2,
                &[],
                &[(
                    "alice",
                    VoteProblem::ChannelCeiling {
                        channel: Channel::Chat,
                        ceiling: High,
                    },
                )],
            ),
        ),
    ];
    let mismatches = mismatches(&rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// A row of the `missing()` table: name, policy overlay, plan, votes, and
/// the expected text.
type MissingRow = (&'static str, &'static str, Plan, Vec<Cast>, Option<String>);

#[test]
fn discounted_votes_and_missing_approvals_are_explained() {
    let allow = "safety: {allow_critical: true}";
    let policy_now = short(DEFAULT.hash.as_str()).to_owned();
    let stale_policy_msg = format!(
        "needs 1 approval from distinct approvers, has 0; approval by alice was under policy sha256:ef56ef56ef56, the policy is now {policy_now}"
    );
    let rows: Vec<MissingRow> = vec![
        ("approved", "", plan(High), vec![yes("alice")], None),
        (
            "nothing yet",
            "",
            plan(High),
            vec![],
            Some("needs 1 approval from distinct approvers, has 0".into()),
        ),
        (
            "one of two",
            allow,
            plan(Critical),
            vec![yes("alice")],
            Some("needs 2 approvals from distinct approvers, has 1 (alice)".into()),
        ),
        (
            "two of three",
            "safety: {allow_critical: true}\napprovals: {required: {CRITICAL: 3}}",
            plan(Critical),
            vec![yes("alice"), yes("bob")],
            Some("needs 3 approvals from distinct approvers, has 2 (alice, bob)".into()),
        ),
        (
            "a stale plan hash",
            "",
            plan(High),
            vec![yes("alice").for_old_plan()],
            Some(
                "needs 1 approval from distinct approvers, has 0; approval by alice was for sha256:ab12ab12ab12, plan is now sha256:cd34cd34cd34"
                    .into(),
            ),
        ),
        (
            "a stale policy hash",
            "",
            plan(High),
            vec![yes("alice").under_old_policy()],
            Some(stale_policy_msg),
        ),
        (
            "expired",
            "",
            plan(High),
            vec![yes("alice").aged(TimeDelta::minutes(31))],
            Some(
                "needs 1 approval from distinct approvers, has 0; approval by alice expired: it is 31m old, older than approvals.ttl"
                    .into(),
            ),
        ),
        (
            "the author and a duplicate",
            allow,
            plan(Critical),
            vec![yes("carol"), yes("alice"), yes("Alice")],
            Some(
                "needs 2 approvals from distinct approvers, has 1 (alice); carol submitted the plan and cannot approve it (separation_of_duties); Alice already approved; one person counts once"
                    .into(),
            ),
        ),
        (
            "listed approvers and channels",
            "safety: {allow_critical: true}\napprovers: [{name: alice}, {name: bob, max_risk: HIGH}, {name: dana, channels: [tui]}]",
            plan(Critical),
            vec![
                yes("eve"),
                yes("bob"),
                yes("dana"),
                yes("alice").via(Channel::Chat),
            ],
            Some(
                "needs 2 approvals from distinct approvers, has 0; eve is not on the policy's approvers list; bob may approve up to HIGH, and this plan is CRITICAL; dana may not approve from the cli channel; the chat channel may approve up to HIGH, and this plan is CRITICAL"
                    .into(),
            ),
        ),
        (
            "rejected with a reason",
            "",
            plan(High),
            vec![yes("alice"), no("bob").because("too risky")],
            Some("rejected by bob: too risky; a new submission is needed".into()),
        ),
        (
            "rejected without a reason",
            "",
            plan(High),
            vec![no("bob")],
            Some("rejected by bob; a new submission is needed".into()),
        ),
    ];
    let mut mismatches = Vec::new();
    for (name, overlay, plan, casts, want) in rows {
        let got = verdict(&load(overlay), plan, &casts).missing();
        if got != want {
            mismatches.push(format!("{name}:\n  want {want:?}\n  got  {got:?}"));
        }
    }
    let refusal = verdict(&DEFAULT, plan(Critical), &[]).missing();
    if !refusal
        .as_deref()
        .is_some_and(|m| m.contains("safety.allow_critical is false"))
    {
        mismatches.push(format!("refused: got {refusal:?}"));
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

// --------------------------------------------------------------- rejection

#[test]
fn one_rejection_rejects_the_plan() {
    let allow = "safety: {allow_critical: true}";
    let auto = "execution: {auto_approve_low_risk: true}";
    let rows = vec![
        row(
            "a lone rejection",
            "",
            plan(High),
            vec![no("bob")],
            rejected("bob"),
        ),
        row(
            "after enough approvals",
            "",
            plan(High),
            vec![yes("alice"), no("bob")],
            rejected("bob"),
        ),
        row(
            "before an approval",
            "",
            plan(Medium),
            vec![no("bob"), yes("alice")],
            rejected("bob"),
        ),
        row(
            "a CRITICAL quorum and one rejection",
            allow,
            plan(Critical),
            vec![yes("alice"), yes("dave"), no("bob")],
            rejected("bob"),
        ),
        row(
            "two rejections: the first is named",
            "",
            plan(High),
            vec![no("bob"), no("dave")],
            rejected("bob"),
        ),
        row(
            "a LOW plan that needs nothing",
            auto,
            plan(Low),
            vec![no("bob")],
            rejected("bob"),
        ),
        row(
            "a MEDIUM plan that needs nothing",
            "safety: {require_approval: false}",
            plan(Medium),
            vec![yes("alice"), no("bob")],
            rejected("bob"),
        ),
        row(
            "a refusal comes before a rejection",
            "",
            plan(Critical),
            vec![no("bob")],
            refused(),
        ),
        row(
            "approvals alone do not reject",
            "",
            plan(High),
            vec![yes("alice"), yes("bob")],
            approved(1, &["alice", "bob"]),
        ),
    ];
    let mut mismatches = mismatches(&rows);

    let v = verdict(
        &DEFAULT,
        plan(High),
        &[yes("alice"), no("bob").because("too risky")],
    );
    if v != (Verdict::Rejected {
        by: "bob".into(),
        reason: Some("too risky".into()),
    }) {
        mismatches.push(format!("the rejection keeps its reason: got {v:?}"));
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

// ------------------------------------------------------- block_production

#[test]
fn block_production_refuses_without_an_override_and_needs_the_critical_quorum_with_one() {
    let block = "safety: {block_production: true}";
    let requirements = [
        (
            "block_production off: a production plan needs its level",
            "",
            plan(High).production(),
            req(High, 1),
        ),
        (
            "block_production off: an override changes nothing",
            "",
            plan(High).overridden(),
            req(High, 1),
        ),
        (
            "on: a production mutation without an override is refused",
            block,
            plan(High).production(),
            Err("safety.block_production is on"),
        ),
        (
            "on: the refusal says how to override",
            block,
            plan(Medium).production(),
            Err("add `override: {reason: …}` to the plan"),
        ),
        (
            "on: a plan outside production needs its level",
            block,
            plan(High),
            req(High, 1),
        ),
        (
            "on: an override outside production changes nothing",
            block,
            Plan {
                overridden: true,
                ..plan(Medium)
            },
            req(Medium, 1),
        ),
        (
            "on: a HIGH override needs the CRITICAL quorum at CRITICAL",
            block,
            plan(High).overridden(),
            req(Critical, 2),
        ),
        (
            "on: a LOW override under auto-approve needs the CRITICAL quorum",
            "safety: {block_production: true}\nexecution: {auto_approve_low_risk: true}",
            plan(Low).overridden(),
            req(Critical, 2),
        ),
        (
            "on: required.CRITICAL: 3",
            "safety: {block_production: true}\napprovals: {required: {CRITICAL: 3}}",
            plan(Medium).overridden(),
            req(Critical, 3),
        ),
        (
            "on, require_approval off: an override still needs the quorum",
            "safety: {block_production: true, require_approval: false}",
            plan(Medium).overridden(),
            req(Critical, 2),
        ),
        (
            "on: a CRITICAL override is refused while allow_critical is off",
            block,
            plan(Critical).overridden(),
            Err("safety.allow_critical is false"),
        ),
        (
            "on, allow_critical: a CRITICAL override needs the quorum",
            "safety: {block_production: true, allow_critical: true}",
            plan(Critical).overridden(),
            req(Critical, 2),
        ),
    ];
    let mut mismatches = requirement_mismatches(&requirements);

    let chat_ceiling = VoteProblem::ChannelCeiling {
        channel: Channel::Chat,
        ceiling: High,
    };
    let rows = vec![
        row(
            "refused whatever the votes",
            block,
            plan(High).production(),
            vec![yes("alice"), yes("bob")],
            refused(),
        ),
        row(
            "an override with one approval",
            block,
            plan(High).overridden(),
            vec![yes("alice")],
            pending(2, &["alice"], &[]),
        ),
        row(
            "an override with two from the CLI and the TUI",
            block,
            plan(High).overridden(),
            vec![yes("alice"), yes("bob").via(Channel::Tui)],
            approved(2, &["alice", "bob"]),
        ),
        row(
            "an override cannot be approved from chat",
            block,
            plan(Medium).overridden(),
            vec![
                yes("alice").via(Channel::Chat),
                yes("bob").via(Channel::Chat),
            ],
            pending(
                2,
                &[],
                &[
                    ("alice", chat_ceiling.clone()),
                    ("bob", chat_ceiling.clone()),
                ],
            ),
        ),
        row(
            "an override holds listed approvers to CRITICAL",
            "safety: {block_production: true}\napprovers: [{name: alice}, {name: bob, max_risk: HIGH}, {name: dana}]",
            plan(High).overridden(),
            vec![yes("alice"), yes("bob"), yes("dana")],
            approved(2, &["alice", "dana"]),
        ),
        row(
            "an override: bob above his max_risk is discounted",
            "safety: {block_production: true}\napprovers: [{name: alice}, {name: bob, max_risk: HIGH}]",
            plan(High).overridden(),
            vec![yes("alice"), yes("bob")],
            pending(
                2,
                &["alice"],
                &[("bob", VoteProblem::AboveMaxRisk { max: High })],
            ),
        ),
        row(
            "an override: the author still cannot approve",
            block,
            plan(High).overridden(),
            vec![yes("carol"), yes("alice")],
            pending(2, &["alice"], &[("carol", VoteProblem::SelfApproval)]),
        ),
    ];
    mismatches.extend(self::mismatches(&rows));

    let v = verdict(
        &load(block),
        plan(Medium).overridden(),
        &[yes("alice"), yes("bob")],
    );
    match &v {
        Verdict::Approved { plan, .. } if plan.level() == Critical => {}
        other => mismatches.push(format!(
            "an approved override is held at CRITICAL: got {other:?}"
        )),
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

// ------------------------------------------------------- require_approval

#[test]
fn require_approval_false_waives_medium_and_high_but_not_critical() {
    let off = "safety: {require_approval: false}";
    let requirements = [
        ("MEDIUM needs 0", off, plan(Medium), req(Medium, 0)),
        ("HIGH needs 0", off, plan(High), req(High, 0)),
        (
            "HIGH needs 0 even with required.HIGH: 3",
            "safety: {require_approval: false}\napprovals: {required: {HIGH: 3}}",
            plan(High),
            req(High, 0),
        ),
        ("LOW still needs 1", off, plan(Low), req(Low, 1)),
        (
            "LOW under auto-approve needs 0",
            "safety: {require_approval: false}\nexecution: {auto_approve_low_risk: true}",
            plan(Low),
            req(Low, 0),
        ),
        (
            "CRITICAL still refused without allow_critical",
            off,
            plan(Critical),
            Err("safety.allow_critical is false"),
        ),
        (
            "CRITICAL still needs its quorum",
            "safety: {require_approval: false, allow_critical: true}",
            plan(Critical),
            req(Critical, 2),
        ),
        (
            "on (the default): HIGH needs 1",
            "safety: {require_approval: true}",
            plan(High),
            req(High, 1),
        ),
    ];
    let mut mismatches = requirement_mismatches(&requirements);

    let rows = vec![
        row(
            "HIGH with no votes is approved",
            off,
            plan(High),
            vec![],
            approved(0, &[]),
        ),
        row(
            "MEDIUM with no votes is approved",
            off,
            plan(Medium),
            vec![],
            approved(0, &[]),
        ),
        row(
            "CRITICAL with one vote is pending",
            "safety: {require_approval: false, allow_critical: true}",
            plan(Critical),
            vec![yes("alice")],
            pending(2, &["alice"], &[]),
        ),
    ];
    mismatches.extend(self::mismatches(&rows));
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

// ---------------------------------------------------------------- dry runs

#[test]
fn a_dry_run_is_needed_for_high_and_critical_only_when_required() {
    let on = load("execution: {require_dry_run: true}");
    let rows = [
        (false, Low, false),
        (false, Medium, false),
        (false, High, false),
        (false, Critical, false),
        (true, Low, false),
        (true, Medium, false),
        (true, High, true),
        (true, Critical, true),
    ];
    let mut mismatches = Vec::new();
    for (enabled, level, want) in rows {
        let policy = if enabled { &on.policy } else { &DEFAULT.policy };
        let got = needs_dry_run(policy, level);
        if got != want {
            mismatches.push(format!(
                "require_dry_run {enabled}, {level}: want {want}, got {got}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

// ------------------------------------------------------------ state fold

/// When the first record of a ledger table is written.
fn t0() -> DateTime<Utc> {
    at("2026-01-26T12:00:00Z")
}

/// The records for `events`, one second apart from [`t0`] (seq 1 at t0 + 1 s).
fn records(events: &[Event]) -> Vec<Record> {
    events
        .iter()
        .zip(1u64..)
        .map(|(event, seq)| Record {
            v: 1,
            seq,
            ts: t0() + TimeDelta::seconds(i64::try_from(seq).unwrap_or(i64::MAX)),
            event: event.clone(),
            alg: None,
            key_id: None,
            prev: String::new(),
            hash: String::new(),
        })
        .collect()
}

/// Folds `events`, each decision without an identity signed by
/// its approver's key over what it says (as `opsgate approve --key` would).
fn fold(events: &[Event]) -> Ledger {
    let mut ledger = Ledger::default();
    for mut r in records(events) {
        let signed_at = r.ts.timestamp();
        let sign_decision = |d: &mut Decision, granted: bool| {
            if d.identity.is_none() {
                let vote = sign(Vote::of(d, r.ts, granted), signed_at);
                d.identity = vote.proof;
            }
        };
        match &mut r.event {
            Event::ApprovalGranted(d) => sign_decision(d, true),
            Event::ApprovalRejected(d) => sign_decision(d, false),
            _ => {}
        }
        ledger.apply(&r);
    }
    ledger
}

/// A submission of plan `p1` by `carol`.
fn submitted_plan(hash: &PlanHash, risk: RiskLevel, production: bool, doc: Value) -> Event {
    Event::PlanSubmitted {
        fingerprints: Default::default(),
        plan_id: "p1".into(),
        plan_hash: hash.clone(),
        policy_hash: DEFAULT.hash.clone(),
        risk,
        author: "carol".into(),
        submitted_by: "carol".into(),
        identity: None,
        mutates_production: production,
        redacted: false,
        plan: doc,
    }
}

fn submitted(hash: &PlanHash, risk: RiskLevel) -> Event {
    submitted_plan(hash, risk, false, json!({"id": "p1"}))
}

fn decision(who: &str, hash: &PlanHash) -> Decision {
    Decision {
        rollback_of: None,
        identity: None,
        submission_seq: None,
        plan_id: "p1".into(),
        plan_hash: hash.clone(),
        policy_hash: DEFAULT.hash.clone(),
        risk: High,
        approver: who.into(),
        channel: Channel::Cli,
        reason: None,
        metadata: BTreeMap::new(),
    }
}

fn granted(who: &str) -> Event {
    Event::ApprovalGranted(decision(who, &CURRENT))
}

fn rejected_by(who: &str) -> Event {
    Event::ApprovalRejected(decision(who, &CURRENT))
}

fn expiry(who: &str) -> Event {
    Event::ApprovalExpired(Decision {
        channel: Channel::System,
        ..decision(who, &CURRENT)
    })
}

fn run_started_for(run_id: &str, dry_run: bool, hash: &PlanHash) -> Event {
    Event::RunStarted {
        env: Default::default(),
        plan_id: "p1".into(),
        run_id: run_id.into(),
        plan_hash: hash.clone(),
        policy_hash: DEFAULT.hash.clone(),
        dry_run,
        user: "alice".into(),
        drift: None,
    }
}

fn run_started(run_id: &str) -> Event {
    run_started_for(run_id, false, &CURRENT)
}

fn dry_run_started(run_id: &str) -> Event {
    run_started_for(run_id, true, &CURRENT)
}

fn run_finished(run_id: &str, dry_run: bool, status: Status) -> Event {
    Event::RunFinished {
        plan_id: "p1".into(),
        run_id: run_id.into(),
        dry_run,
        status,
        duration_seconds: 1.5,
    }
}

fn step_started(run_id: &str, step: u32) -> Event {
    Event::StepStarted {
        action_sha256: None,
        plan_id: "p1".into(),
        run_id: run_id.into(),
        step,
        name: format!("step {step}"),
        action: "kubectl rollout restart deploy/api".into(),
        risk: Medium,
        resource: None,
    }
}

fn step_finished(run_id: &str, step: u32, status: Status) -> Event {
    Event::StepFinished {
        plan_id: "p1".into(),
        run_id: run_id.into(),
        step,
        name: format!("step {step}"),
        action: "kubectl rollout restart deploy/api".into(),
        status,
        exit_code: Some(0),
        duration_seconds: 0.5,
        output: String::new(),
    }
}

fn run_cancelled(run_id: &str, kill: bool) -> Event {
    Event::RunCancelled {
        plan_id: "p1".into(),
        run_id: run_id.into(),
        user: "alice".into(),
        kill,
        reason: None,
    }
}

fn rollback_started(run_id: &str) -> Event {
    Event::RollbackStarted {
        user: None,
        plan_id: "p1".into(),
        run_id: run_id.into(),
        reason: "step failed".into(),
        actions: Vec::new(),
    }
}

fn rollback_finished(run_id: &str, status: Status) -> Event {
    Event::RollbackFinished {
        plan_id: "p1".into(),
        run_id: run_id.into(),
        status,
        duration_seconds: 0.25,
    }
}

/// `events` with every decision bound to `policy` instead of the default.
fn under(policy: &PolicyHash, events: Vec<Event>) -> Vec<Event> {
    events
        .into_iter()
        .map(|e| match e {
            Event::ApprovalGranted(d) => Event::ApprovalGranted(Decision {
                policy_hash: policy.clone(),
                ..d
            }),
            Event::ApprovalRejected(d) => Event::ApprovalRejected(Decision {
                policy_hash: policy.clone(),
                ..d
            }),
            Event::ApprovalExpired(d) => Event::ApprovalExpired(Decision {
                policy_hash: policy.clone(),
                ..d
            }),
            other => other,
        })
        .collect()
}

/// The status of `p1` under the default policy at `now`, with every run
/// live or none.
fn status_of(ledger: &Ledger, now: DateTime<Utc>, live: bool) -> Option<PlanStatus> {
    let p = ledger.plan("p1")?;
    let v = p.verdict(&DEFAULT.policy, &DEFAULT.hash, now);
    Some(p.status(&v, |_| live))
}

#[test]
fn the_ledger_status_follows_votes_and_the_ttl() {
    use PlanStatus::{Approved, Expired, Pending, Refused, Rejected};
    let minute = TimeDelta::minutes(1);
    // The last vote in these rows is at t0 + 2 s (seq 2).
    let vote_ts = t0() + TimeDelta::seconds(2);
    let ttl = TimeDelta::minutes(30);
    let high = || submitted(&CURRENT, High);
    let rows: Vec<(&str, Vec<Event>, DateTime<Utc>, PlanStatus)> = vec![
        ("submitted only", vec![high()], vote_ts + minute, Pending),
        (
            "one approval for HIGH",
            vec![high(), granted("alice")],
            vote_ts + minute,
            Approved,
        ),
        (
            "the author's approval does not count",
            vec![high(), granted("carol")],
            vote_ts + minute,
            Pending,
        ),
        (
            "an approval for an earlier plan hash",
            vec![high(), Event::ApprovalGranted(decision("alice", &OLD))],
            vote_ts + minute,
            Pending,
        ),
        // Hardening 7: a decision counts only for the submission it names
        // (a replayed request after a resubmission of the same hash).
        (
            "an approval for an earlier submission of the same hash",
            vec![
                high(),
                high(),
                Event::ApprovalGranted(Decision {
                    submission_seq: Some(1),
                    ..decision("alice", &CURRENT)
                }),
            ],
            vote_ts + minute,
            Pending,
        ),
        (
            "an approval for this submission",
            vec![
                high(),
                Event::ApprovalGranted(Decision {
                    submission_seq: Some(1),
                    ..decision("alice", &CURRENT)
                }),
            ],
            vote_ts + minute,
            Approved,
        ),
        (
            "a rejection",
            vec![high(), rejected_by("bob")],
            vote_ts + minute,
            Rejected,
        ),
        (
            "a rejection after an approval",
            vec![high(), granted("alice"), rejected_by("bob")],
            vote_ts + minute,
            Rejected,
        ),
        (
            "CRITICAL under the default policy",
            vec![submitted(&CURRENT, Critical), granted("alice")],
            vote_ts + minute,
            Refused,
        ),
        (
            "1 ms before the TTL",
            vec![high(), granted("alice")],
            vote_ts + ttl - TimeDelta::milliseconds(1),
            Approved,
        ),
        (
            "exactly at the TTL",
            vec![high(), granted("alice")],
            vote_ts + ttl,
            Expired,
        ),
        (
            "an hour later",
            vec![high(), granted("alice")],
            vote_ts + TimeDelta::hours(1),
            Expired,
        ),
        (
            "a recorded expiry",
            vec![high(), granted("alice"), expiry("alice")],
            vote_ts + minute,
            Expired,
        ),
        (
            "a recorded expiry, then a new approval",
            vec![high(), granted("alice"), expiry("alice"), granted("bob")],
            vote_ts + minute,
            Approved,
        ),
        (
            "a recorded expiry of someone else's vote keeps alice's",
            vec![high(), granted("alice"), expiry("bob")],
            vote_ts + minute,
            Approved,
        ),
        (
            "votes for another plan id are ignored",
            vec![
                high(),
                Event::ApprovalGranted(Decision {
                    plan_id: "p2".into(),
                    ..decision("alice", &CURRENT)
                }),
            ],
            vote_ts + minute,
            Pending,
        ),
    ];
    let mut mismatches = Vec::new();
    for (name, events, at_time, want) in rows {
        let got = status_of(&fold(&events), at_time, false);
        if got != Some(want) {
            mismatches.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn the_ledger_status_follows_the_last_real_run() {
    use PlanStatus::{Approved, Cancelled, Failed, Interrupted, RolledBack, Running, Succeeded};
    use Status as S;
    let approved_plan = || vec![submitted(&CURRENT, High), granted("alice")];
    let with = |more: Vec<Event>| {
        let mut v = approved_plan();
        v.extend(more);
        v
    };
    let rows: Vec<(&str, Vec<Event>, bool, PlanStatus)> = vec![
        ("no run", with(vec![]), false, Approved),
        (
            "started, the engine is live",
            with(vec![run_started("r1"), step_started("r1", 1)]),
            true,
            Running,
        ),
        (
            "started, no live engine and no run_finished",
            with(vec![run_started("r1"), step_started("r1", 1)]),
            false,
            Interrupted,
        ),
        (
            "succeeded",
            with(vec![
                run_started("r1"),
                step_started("r1", 1),
                step_finished("r1", 1, S::Succeeded),
                run_finished("r1", false, S::Succeeded),
            ]),
            false,
            Succeeded,
        ),
        (
            "a finished run is not running even when live",
            with(vec![
                run_started("r1"),
                run_finished("r1", false, S::Succeeded),
            ]),
            true,
            Succeeded,
        ),
        (
            "failed",
            with(vec![
                run_started("r1"),
                run_finished("r1", false, S::Failed),
            ]),
            false,
            Failed,
        ),
        (
            "timed out is a failure",
            with(vec![
                run_started("r1"),
                run_finished("r1", false, S::TimedOut),
            ]),
            false,
            Failed,
        ),
        (
            "killed is a failure",
            with(vec![
                run_started("r1"),
                run_finished("r1", false, S::Killed),
            ]),
            false,
            Failed,
        ),
        (
            "cancelled",
            with(vec![
                run_started("r1"),
                run_cancelled("r1", false),
                run_finished("r1", false, S::Cancelled),
            ]),
            false,
            Cancelled,
        ),
        (
            "a stop requested, the run still live",
            with(vec![run_started("r1"), run_cancelled("r1", true)]),
            true,
            Running,
        ),
        (
            "finished as interrupted",
            with(vec![
                run_started("r1"),
                run_finished("r1", false, S::Interrupted),
            ]),
            true,
            Interrupted,
        ),
        (
            "rolled back",
            with(vec![
                run_started("r1"),
                run_finished("r1", false, S::Failed),
                rollback_started("r1"),
                rollback_finished("r1", S::Succeeded),
            ]),
            false,
            RolledBack,
        ),
        (
            "a failed rollback leaves the run failed",
            with(vec![
                run_started("r1"),
                run_finished("r1", false, S::Failed),
                rollback_started("r1"),
                rollback_finished("r1", S::Failed),
            ]),
            false,
            Failed,
        ),
        (
            "a rollback under way leaves the run failed",
            with(vec![
                run_started("r1"),
                run_finished("r1", false, S::Failed),
                rollback_started("r1"),
            ]),
            true,
            Failed,
        ),
        (
            "the last real run decides",
            with(vec![
                run_started("r1"),
                run_finished("r1", false, S::Failed),
                run_started("r2"),
                run_finished("r2", false, S::Succeeded),
            ]),
            false,
            Succeeded,
        ),
        (
            "a dry run does not change an approved plan",
            with(vec![
                dry_run_started("d1"),
                run_finished("d1", true, S::Succeeded),
            ]),
            false,
            Approved,
        ),
        (
            "a failed dry run does not either",
            with(vec![
                dry_run_started("d1"),
                run_finished("d1", true, S::Failed),
            ]),
            false,
            Approved,
        ),
        (
            "an unfinished dry run does not either",
            with(vec![dry_run_started("d1")]),
            false,
            Approved,
        ),
        (
            "a dry run after a real run does not hide it",
            with(vec![
                run_started("r1"),
                run_finished("r1", false, S::Succeeded),
                dry_run_started("d1"),
                run_finished("d1", true, S::Failed),
            ]),
            false,
            Succeeded,
        ),
        (
            "records of an unknown run change nothing",
            with(vec![
                run_finished("r9", false, S::Failed),
                rollback_finished("r9", S::Succeeded),
            ]),
            false,
            Approved,
        ),
    ];
    let now = t0() + TimeDelta::minutes(5);
    let mut mismatches = Vec::new();
    for (name, events, live, want) in rows {
        let got = status_of(&fold(&events), now, live);
        if got != Some(want) {
            mismatches.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");

    // The liveness callback is asked about the unfinished run, by id.
    let ledger = fold(&with(vec![
        run_started("r1"),
        run_finished("r1", false, S::Failed),
        run_started("r2"),
    ]));
    let p = ledger.plan("p1").unwrap();
    let v = p.verdict(&DEFAULT.policy, &DEFAULT.hash, now);
    assert_eq!(p.status(&v, |id| id == "r2"), Running);
    assert_eq!(p.status(&v, |id| id == "r1"), Interrupted);
    let (plan, run) = ledger.run("r2").unwrap();
    assert_eq!((plan.plan_id.as_str(), run.finished), ("p1", None));
    assert_eq!(ledger.run("r1").unwrap().1.finished, Some(S::Failed));
    assert!(ledger.run("r9").is_none());
}

#[test]
fn a_dry_run_succeeded_only_for_the_current_plan_hash() {
    use Status as S;
    let base = || vec![submitted(&CURRENT, High), granted("alice")];
    let with = |more: Vec<Event>| {
        let mut v = base();
        v.extend(more);
        v
    };
    let rows: Vec<(&str, Vec<Event>, bool)> = vec![
        ("no run", with(vec![]), false),
        (
            "a succeeded dry run",
            with(vec![
                dry_run_started("d1"),
                run_finished("d1", true, S::Succeeded),
            ]),
            true,
        ),
        (
            "a failed dry run",
            with(vec![
                dry_run_started("d1"),
                run_finished("d1", true, S::Failed),
            ]),
            false,
        ),
        (
            "a cancelled dry run",
            with(vec![
                dry_run_started("d1"),
                run_finished("d1", true, S::Cancelled),
            ]),
            false,
        ),
        (
            "an unfinished dry run",
            with(vec![dry_run_started("d1")]),
            false,
        ),
        (
            "a succeeded dry run of an earlier plan hash",
            with(vec![
                run_started_for("d1", true, &OLD),
                run_finished("d1", true, S::Succeeded),
            ]),
            false,
        ),
        (
            "a succeeded real run is not a dry run",
            with(vec![
                run_started("r1"),
                run_finished("r1", false, S::Succeeded),
            ]),
            false,
        ),
        (
            "a failed dry run, then a succeeded one",
            with(vec![
                dry_run_started("d1"),
                run_finished("d1", true, S::Failed),
                dry_run_started("d2"),
                run_finished("d2", true, S::Succeeded),
            ]),
            true,
        ),
        (
            "a succeeded dry run, then the plan changed",
            with(vec![
                dry_run_started("d1"),
                run_finished("d1", true, S::Succeeded),
                submitted(&OLD, High),
            ]),
            false,
        ),
        (
            "a succeeded dry run, then the same plan submitted again",
            with(vec![
                dry_run_started("d1"),
                run_finished("d1", true, S::Succeeded),
                submitted(&CURRENT, High),
            ]),
            false,
        ),
    ];
    let mut mismatches = Vec::new();
    for (name, events, want) in rows {
        let ledger = fold(&events);
        let got = ledger.plan("p1").map(|p| p.dry_run_succeeded());
        if got != Some(want) {
            mismatches.push(format!("{name}: want {want}, got {got:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn a_new_submission_under_the_same_id_starts_the_plan_over() {
    let events = vec![
        submitted(&OLD, High),
        Event::ApprovalGranted(decision("alice", &OLD)),
        Event::ApprovalRejected(decision("bob", &OLD)),
        Event::ApprovalExpired(decision("alice", &OLD)),
        run_started_for("r1", false, &OLD),
        run_finished("r1", false, Status::Failed),
        // seq 7: the changed plan
        submitted(&CURRENT, High),
        // a late record of the old run
        run_finished("r1", false, Status::Succeeded),
    ];
    let ledger = fold(&events);
    assert_eq!(ledger.plans().count(), 1);
    let p = ledger.plan("p1").unwrap();
    assert_eq!(p.submission.seq, 7);
    assert_eq!(p.submission.plan_hash, *CURRENT);
    assert!(p.votes.is_empty(), "votes reset: {:?}", p.votes);
    assert!(p.runs.is_empty(), "runs reset: {:?}", p.runs);
    assert!(!p.expired_recorded, "the recorded expiry resets");
    // The old run is still found by its id, with the submission it ran
    // (hardening 10), and the late record applies to it.
    let (old, r1) = ledger.run("r1").expect("r1 is still known");
    assert_eq!(old.submission.seq, 1);
    assert_eq!(r1.finished, Some(Status::Succeeded));
    let now = t0() + TimeDelta::minutes(1);
    assert_eq!(status_of(&ledger, now, false), Some(PlanStatus::Pending));

    // An approval of the old hash arriving now is stale; one of the new
    // hash counts.
    let mut more = events.clone();
    more.push(Event::ApprovalGranted(decision("dave", &OLD)));
    let ledger = fold(&more);
    let p = ledger.plan("p1").unwrap();
    assert_eq!(
        outcome(&p.verdict(&DEFAULT.policy, &DEFAULT.hash, now)),
        pending(
            1,
            &[],
            &[(
                "dave",
                VoteProblem::StalePlanHash {
                    approved: OLD.clone(),
                    current: CURRENT.clone(),
                },
            )],
        )
    );
    more.push(granted("dave"));
    assert_eq!(
        status_of(&fold(&more), now, false),
        Some(PlanStatus::Approved)
    );

    // The same plan submitted again after a rejection is open again.
    let again = vec![
        submitted(&CURRENT, High),
        rejected_by("bob"),
        submitted(&CURRENT, High),
        granted("alice"),
    ];
    assert_eq!(
        status_of(&fold(&again), now, false),
        Some(PlanStatus::Approved)
    );
}

/// A row of the recorded-expiry table: name, events, the approvers that
/// count, `expired_recorded` when the row pins it, and the status.
type ExpiryRow = (
    &'static str,
    Vec<Event>,
    Vec<&'static str>,
    Option<bool>,
    PlanStatus,
);

#[test]
fn a_recorded_expiry_removes_that_vote_and_marks_the_plan_expired() {
    let allow = load("safety: {allow_critical: true}");
    let now = t0() + TimeDelta::minutes(1);
    let critical = submitted(&CURRENT, Critical);
    let rows: Vec<ExpiryRow> = vec![
        (
            "two approvals",
            vec![critical.clone(), granted("alice"), granted("bob")],
            vec!["alice", "bob"],
            Some(false),
            PlanStatus::Approved,
        ),
        (
            "one of two expired",
            vec![
                critical.clone(),
                granted("alice"),
                granted("bob"),
                expiry("alice"),
            ],
            vec!["bob"],
            Some(true),
            PlanStatus::Expired,
        ),
        (
            "the expired approver approves again",
            vec![
                critical.clone(),
                granted("alice"),
                granted("bob"),
                expiry("alice"),
                granted("alice"),
            ],
            vec!["bob", "alice"],
            Some(true),
            PlanStatus::Approved,
        ),
        (
            "an expiry for an earlier plan hash removes nothing",
            vec![
                critical.clone(),
                granted("alice"),
                granted("bob"),
                Event::ApprovalExpired(decision("alice", &OLD)),
            ],
            vec!["alice", "bob"],
            None,
            PlanStatus::Approved,
        ),
        (
            "both expired",
            vec![
                critical.clone(),
                granted("alice"),
                granted("bob"),
                expiry("bob"),
                expiry("alice"),
            ],
            vec![],
            Some(true),
            PlanStatus::Expired,
        ),
    ];
    let mut mismatches = Vec::new();
    for (name, events, want_have, want_flag, want_status) in rows {
        let ledger = fold(&under(&allow.hash, events));
        let Some(p) = ledger.plan("p1") else {
            mismatches.push(format!("{name}: no plan"));
            continue;
        };
        let v = p.verdict(&allow.policy, &allow.hash, now);
        let have: Vec<String> = match &v {
            Verdict::Approved { plan, .. } => plan.approvers().to_vec(),
            Verdict::Pending { have, .. } => have.clone(),
            other => {
                mismatches.push(format!("{name}: unexpected verdict {other:?}"));
                continue;
            }
        };
        let status = p.status(&v, |_| false);
        if have != names(&want_have)
            || want_flag.is_some_and(|f| f != p.expired_recorded)
            || status != want_status
        {
            mismatches.push(format!(
                "{name}: want {want_have:?} {want_flag:?} {want_status:?}, got {have:?} {} {status:?}",
                p.expired_recorded
            ));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn the_ledger_reads_the_override_from_the_recorded_plan() {
    let block = load("safety: {block_production: true}");
    let now = t0() + TimeDelta::minutes(1);
    let with_override = json!({"id": "p1", "override": {"reason": "hotfix"}});
    let rows: Vec<(&str, Event, Vec<Event>, PlanStatus)> = vec![
        (
            "a production plan without an override",
            submitted_plan(&CURRENT, High, true, json!({"id": "p1"})),
            vec![granted("alice"), granted("bob")],
            PlanStatus::Refused,
        ),
        (
            "with an override, one approval",
            submitted_plan(&CURRENT, High, true, with_override.clone()),
            vec![granted("alice")],
            PlanStatus::Pending,
        ),
        (
            "with an override, the CRITICAL quorum",
            submitted_plan(&CURRENT, High, true, with_override.clone()),
            vec![granted("alice"), granted("bob")],
            PlanStatus::Approved,
        ),
        (
            "not production: one approval",
            submitted_plan(&CURRENT, High, false, json!({"id": "p1"})),
            vec![granted("alice")],
            PlanStatus::Approved,
        ),
    ];
    let mut mismatches = Vec::new();
    for (name, submission, votes, want) in rows {
        let mut events = vec![submission];
        events.extend(votes);
        let ledger = fold(&under(&block.hash, events));
        let got = ledger.plan("p1").map(|p| {
            let v = p.verdict(&block.policy, &block.hash, now);
            p.status(&v, |_| false)
        });
        if got != Some(want) {
            mismatches.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

/// Hardening 10: a run stays reachable by its id after its plan id was
/// submitted again (as a crafted or raced log could have it), with the
/// submission it ran, so `cancel` and `rollback` still find it.
#[test]
fn a_run_is_found_by_its_id_after_a_resubmission() {
    let ledger = fold(&[
        submitted(&OLD, High),
        granted("alice"),
        run_started_for("r1", false, &OLD),
        submitted(&CURRENT, High),
    ]);
    let (plan, run) = ledger.run("r1").expect("the run is still known");
    assert_eq!(run.run_id, "r1");
    assert_eq!(plan.submission.plan_hash, *OLD);
    assert_eq!(plan.submission.seq, 1);
    let current = ledger.plan("p1").expect("the plan");
    assert_eq!(current.submission.plan_hash, *CURRENT);
    assert!(current.runs.is_empty());
}
