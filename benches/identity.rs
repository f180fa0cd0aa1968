//! What checking signatures costs `audit verify`: a log of 10,000 approvals
//! signed with ed25519 keys (made and signed in-process, as
//! `ssh-keygen -Y sign` would), against the same approvals unsigned (the
//! OS user), each verified as `opsgate audit verify` does: the chain, then
//! every identity against the policy's allowed signers.
//!
//! `cargo bench --bench identity` runs it (under a minute);
//! `OPSGATE_BENCH_SIGNED` changes the number of approvals. Under
//! `cargo test --benches` it runs small and checks its own results.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use opsgate::app::identity::audit_identities;
use opsgate::audit::verify::verify_file;
use opsgate::audit::{AuditLog, Channel, Decision, Event, Sealer};
use opsgate::core::approval::Vote;
use opsgate::core::digest::PlanHash;
use opsgate::core::identity::Proof;
use opsgate::core::policy::LoadedPolicy;
use opsgate::core::redact::Redactor;
use opsgate::core::risk::RiskLevel;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// People signing, each with a key made from a fixed seed.
const PEOPLE: usize = 20;

fn key(i: usize) -> ssh_key::PrivateKey {
    let mut seed = [0u8; 32];
    seed[0] = u8::try_from(i % 256).unwrap_or(0);
    seed[1] = 0x5a;
    ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&seed))
}

fn policy() -> BenchResult<LoadedPolicy> {
    let mut signers = String::new();
    for i in 0..PEOPLE {
        signers.push_str(&format!(
            "person{i} namespaces=\"opsgate\" {}\n",
            key(i).public_key().to_openssh()?
        ));
    }
    Ok(LoadedPolicy::load(Some((
        "bench.yaml",
        "identity:\n  allowed_signers: allowed_signers\n",
    )))?
    .with_signers_file("allowed_signers", &signers)?)
}

/// `n` approvals of `n` plans, signed or by the OS user.
fn write_log(path: &Path, policy: &LoadedPolicy, n: usize, signed: bool) -> BenchResult<()> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let log = AuditLog::open(path, Sealer::Sha256, Redactor::default())?;
    let signed_at = chrono::Utc::now().timestamp();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        let who = i % PEOPLE;
        let mut d = Decision {
            plan_id: format!("plan-{i}"),
            plan_hash: PlanHash::new(format!("sha256:{i:064x}")),
            policy_hash: policy.hash.clone(),
            risk: RiskLevel::High,
            approver: format!("person{who}"),
            channel: Channel::Cli,
            reason: None,
            metadata: Default::default(),
            submission_seq: Some(1),
            rollback_of: None,
            identity: Some(Proof::Os { uid: 1000 }),
        };
        if signed {
            let vote = Vote::of(&d, chrono::Utc::now(), true);
            let message = vote.statement(&d.plan_id, signed_at).message();
            let k = key(who);
            let signature = k
                .sign("opsgate", ssh_key::HashAlg::Sha512, &message)?
                .to_pem(ssh_key::LineEnding::LF)?;
            d.identity = Some(Proof::Ssh {
                fingerprint: k
                    .public_key()
                    .fingerprint(ssh_key::HashAlg::Sha256)
                    .to_string(),
                signature,
                signed_at,
            });
        }
        batch.push(Event::ApprovalGranted(d));
        if batch.len() == 1000 {
            log.append_all(std::mem::take(&mut batch))?;
        }
    }
    log.append_all(batch)?;
    Ok(())
}

/// The best of `rounds` times of `f`.
fn best(rounds: usize, mut f: impl FnMut() -> BenchResult<()>) -> BenchResult<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

fn main() -> BenchResult<()> {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = match std::env::var("OPSGATE_BENCH_SIGNED") {
        Ok(v) => v.parse()?,
        Err(_) if quick => 200,
        Err(_) => 10_000,
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("identity-bench");
    std::fs::create_dir_all(&dir)?;
    let policy = policy()?;
    let (signed, unsigned) = (dir.join("signed.jsonl"), dir.join("unsigned.jsonl"));
    write_log(&signed, &policy, n, true)?;
    write_log(&unsigned, &policy, n, false)?;
    let rounds = if quick { 1 } else { 5 };
    let verify = |path: &Path| -> BenchResult<()> {
        let report = verify_file(path, &Sealer::Sha256, None)?;
        if !report.ok {
            return Err("the chain does not verify".into());
        }
        audit_identities(path, &policy)?;
        Ok(())
    };
    // A fresh policy each round: checked signatures are remembered.
    let t_signed = best(rounds, || {
        let fresh = self::policy()?;
        let report = verify_file(&signed, &Sealer::Sha256, None)?;
        let ids = audit_identities(&signed, &fresh)?;
        if !report.ok || ids.signed != n as u64 || !ids.bad.is_empty() {
            return Err(format!(
                "signed log: {} signed, {:?} bad",
                ids.signed,
                ids.bad.first()
            )
            .into());
        }
        Ok(())
    })?;
    let t_unsigned = best(rounds, || verify(&unsigned))?;
    let t_chain = best(rounds, || {
        verify_file(&signed, &Sealer::Sha256, None)?;
        Ok(())
    })?;
    let size = std::fs::metadata(&signed)?.len();
    println!(
        "audit verify, {n} approvals ({:.1} MB signed):\n  signed (ed25519): {:.3} s ({:.1} µs per approval)\n  unsigned (OS user): {:.3} s\n  ratio signed / unsigned: {:.1}x\n  chain alone of the signed log: {:.3} s",
        size as f64 / 1e6,
        t_signed.as_secs_f64(),
        t_signed.as_secs_f64() * 1e6 / n as f64,
        t_unsigned.as_secs_f64(),
        t_signed.as_secs_f64() / t_unsigned.as_secs_f64(),
        t_chain.as_secs_f64(),
    );
    Ok(())
}
