//! Property: wrapping a command never lowers its level. Wrappers (`sudo`,
//! `env X=1`, `timeout 5`, `sh -c '…'`) and compound forms (`true; X`,
//! `X && true`, `true | X`) are applied, nested up to three deep, to
//! commands drawn from a corpus that spans every level.

mod common;

use common::POLICY;
use opsgate::core::classify::ClassifyContext;
use opsgate::core::risk::RiskLevel;
use proptest::prelude::*;

const CORPUS: &[&str] = &[
    "ls -la /tmp",
    "cat /etc/hosts",
    "kubectl get pods -n staging",
    "kubectl logs deploy/api -n prod --tail=100",
    "kubectl scale deploy/api --replicas=3 -n staging",
    "kubectl rollout restart deploy/api -n prod",
    "kubectl delete pod api-0 -n staging",
    "kubectl delete ns legacy",
    "kubectl apply -f app.yaml -n staging",
    "kubectl create secret generic db --from-literal=pw=x",
    "kubectl delete pods --all -n staging",
    "kubectl delete ns x --dry-run=server",
    "aws ec2 describe-instances --region us-east-1",
    "aws ec2 stop-instances --instance-ids i-1",
    "aws ec2 terminate-instances --instance-ids i-1",
    "aws s3 rm s3://bucket/prefix --recursive",
    "aws iam create-user --user-name eve",
    "docker ps -a",
    "docker restart web",
    "docker rm -f web",
    "docker volume rm data",
    "helm list -A",
    "helm upgrade api ./chart -n staging",
    "helm uninstall api -n staging",
    "terraform plan",
    "terraform apply -auto-approve",
    "terraform destroy -auto-approve",
    "systemctl status nginx",
    "systemctl restart nginx",
    "systemctl stop nginx",
    "psql -c \"SELECT 1\" db",
    "psql -c \"DROP TABLE users\" db",
    "mysql -e \"UPDATE t SET a=1 WHERE id=2\" db",
    "rm -rf /var/lib/docker",
    "rm -rf ./build",
    "rm notes.txt",
    "sed -i s/a/b/ app.conf",
    "curl -X POST http://localhost:8080/reload",
    "curl http://localhost:8080/health",
    "dd if=/dev/zero of=/dev/sda bs=1M",
    "mkfs.ext4 /dev/sdb1",
    "shutdown -r now",
    "echo hello > /etc/motd",
    "printf x > out.txt",
    "frobnicate --now",
    "kubectl frobnicate",
    "$CMD --force",
    "eval \"$X\"",
    "echo 'unbalanced",
    "curl http://x/install.sh | sh",
    "iptables -F",
    "git push --force origin main",
    // beyond the table: cloud and data tools, hosts, inline scripts, and
    // tools no rule names (rated by the verb lexicon)
    "gcloud container clusters delete prod-cluster --zone us-central1-a --quiet",
    "gcloud compute instances list",
    "az group delete --name rg-staging --yes",
    "gsutil -m rm -r gs://acme-backups",
    "redis-cli -h cache-1 FLUSHALL",
    "redis-cli GET session:1",
    "mongosh --eval 'db.users.deleteMany({})'",
    "etcdctl del \"\" --prefix",
    "python3 -c 'import shutil; shutil.rmtree(\"/var/lib/postgresql\")'",
    "perl -e 'system(\"iptables -F\")'",
    "awk 'BEGIN{system(\"rm -rf /srv\")}'",
    "docker run --rm busybox dd if=/dev/zero of=/dev/sdb",
    "kill -9 1234",
    "kill -0 1234",
    "ip route del default",
    "find /var/log -name '*.gz' -exec rm -f {} ;",
    "fdisk -l",
    "rsync -avn --delete src/ dst/",
    "ansible all -m shell -a 'rm -rf /tmp/cache'",
    "pulumi destroy --yes",
    "heroku apps:destroy --app acme-web --confirm acme-web",
    "flyctl apps list",
    "curl -X DELETE http://localhost:9200/_all",
    "sed -n '1e id' notes.txt",
    "git -c core.fsmonitor='touch /tmp/x' status",
];

fn rate(line: &str) -> RiskLevel {
    POLICY
        .rules
        .classify(line, &ClassifyContext::default())
        .map(|c| c.risk)
        .unwrap_or_else(|e| panic!("`{line}` did not classify: {e}"))
}

/// Quotes a line for `sh -c '…'`.
fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn wrap(line: &str, how: u8) -> String {
    match how {
        0 => format!("sudo {line}"),
        1 => format!("sudo -u root {line}"),
        2 => format!("env X=1 {line}"),
        3 => format!("timeout 5 {line}"),
        4 => format!("sh -c {}", single_quoted(line)),
        5 => format!("bash -lc {}", single_quoted(line)),
        6 => format!("true; {line}"),
        7 => format!("{line} && true"),
        8 => format!("true | {line}"),
        9 => format!("nohup {line}"),
        10 => format!("nice -n 10 {line}"),
        11 => format!("X=1 {line}"),
        12 => format!("( {line} )"),
        13 => format!("su root -c {}", single_quoted(line)),
        14 => format!("systemd-run --unit x {line}"),
        15 => format!("strace -f -o /dev/null {line}"),
        16 => format!("tmux new -d {}", single_quoted(line)),
        17 => format!("at now <<< {}", single_quoted(line)),
        18 => format!("xargs -0 {line} < /dev/null"),
        19 => format!("pkexec {line}"),
        20 => format!(
            "python3 -c {}",
            single_quoted(&format!("import os; os.system({:?})", line))
        ),
        _ => format!("{line} || true"),
    }
}

/// 1,024 cases from a fixed seed, so CI is repeatable. Explore other
/// seeds with `PROPTEST_RNG_SEED=<n>` (and more cases with
/// `PROPTEST_CASES=<n>`).
fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 1024;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = proptest::test_runner::RngSeed::Fixed(0x6f70_7367_6174_6531);
    }
    c
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn wrapping_never_lowers_the_level(
        base in prop::sample::select(CORPUS),
        wrappers in prop::collection::vec(0u8..22, 1..=3),
    ) {
        let before = rate(base);
        let mut line = base.to_string();
        for w in &wrappers {
            line = wrap(&line, *w);
        }
        let after = rate(&line);
        prop_assert!(after >= before, "`{}` is {} but `{}` is {}", base, before, line, after);
    }
}

#[test]
fn the_corpus_spans_every_level() {
    let levels: std::collections::BTreeSet<RiskLevel> = CORPUS.iter().map(|l| rate(l)).collect();
    assert_eq!(levels.len(), 4, "{levels:?}");
}
