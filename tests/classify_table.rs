//! The risk classifier, cell by cell, under the embedded default policy.
//!
//! One table per tool (kubectl, aws, docker/podman, helm, terraform/tofu,
//! systemd, SQL clients, files and system) rates realistic command lines at
//! LOW, MEDIUM, HIGH and CRITICAL, and one table per cross-cutting concern
//! covers what every line goes through: wrappers that are unwrapped (`sudo`,
//! `env`, `sh -c`, `ssh`, `kubectl exec`, …), compound lines, quoting and
//! obfuscation, flag positions, production scopes and dry runs, fail-closed
//! handling of what is only known at run time, and output redirections.
//!
//! Levels are compared exactly; only the fail-closed rows that promise "at
//! least HIGH" use a floor. Each test collects every wrong row before it
//! fails, so one run shows all of them.

use std::sync::LazyLock;

use opsgate::core::classify::{ClassifyContext, ClassifyError};
use opsgate::core::policy::LoadedPolicy;
use opsgate::core::risk::{Classification, RiskLevel};

use RiskLevel::{Critical, High, Low, Medium};

/// The embedded default policy, loaded once for the whole binary.
static POLICY: LazyLock<LoadedPolicy> = LazyLock::new(|| match LoadedPolicy::embedded() {
    Ok(p) => p,
    Err(e) => panic!("the embedded policy does not load: {e}"),
});

fn classify(line: &str, ctx: &ClassifyContext) -> Result<Classification, ClassifyError> {
    POLICY.rules.classify(line, ctx)
}

/// A plan target: the namespace and kube context a line runs against when it
/// does not say.
fn target(namespace: Option<&str>, kube_context: Option<&str>) -> ClassifyContext {
    ClassifyContext {
        namespace: namespace.map(str::to_owned),
        kube_context: kube_context.map(str::to_owned),
    }
}

/// The deciding reason, for mismatch messages.
fn why(c: &Classification) -> String {
    c.reasons
        .first()
        .map_or_else(|| "no reasons".to_owned(), ToString::to_string)
}

/// Every row of `rows` whose level is not exactly the expected one (or, with
/// `floor`, is below it), as a readable line.
fn mismatches_in(rows: &[(&str, RiskLevel)], ctx: &ClassifyContext, floor: bool) -> Vec<String> {
    let mut out = Vec::new();
    for &(line, want) in rows {
        match classify(line, ctx) {
            Ok(c) if c.risk == want || (floor && c.risk > want) => {}
            Ok(c) => {
                let op = if floor { ">=" } else { "==" };
                out.push(format!(
                    "{line:?}: want {op} {want}, got {} ({})",
                    c.risk,
                    why(&c)
                ));
            }
            Err(e) => out.push(format!("{line:?}: want {want}, got error: {e}")),
        }
    }
    out
}

/// Rows rated exactly, with no plan target.
fn mismatches(rows: &[(&str, RiskLevel)]) -> Vec<String> {
    mismatches_in(rows, &ClassifyContext::default(), false)
}

// ------------------------------------------------------------------ tools

#[test]
fn kubectl() {
    let rows: &[(&str, RiskLevel)] = &[
        // LOW: reads
        ("kubectl get pods -n default -o wide", Low),
        ("kubectl get pods -A", Low),
        ("kubectl describe deployment api", Low),
        ("kubectl logs -f deploy/api --tail 100 -c app", Low),
        ("kubectl top pods --sort-by=cpu", Low),
        ("kubectl top nodes", Low),
        ("kubectl explain deployment.spec.strategy", Low),
        ("kubectl api-resources --namespaced=true", Low),
        ("kubectl api-versions", Low),
        ("kubectl version --client", Low),
        ("kubectl cluster-info", Low),
        ("kubectl config view --minify", Low),
        ("kubectl config current-context", Low),
        ("kubectl config get-contexts", Low),
        ("kubectl auth can-i delete pods --as jane", Low),
        ("kubectl diff -f deploy.yaml", Low),
        ("kubectl events --for deployment/api", Low),
        (
            "kubectl wait --for=condition=Ready pod/api-0 --timeout=60s",
            Low,
        ),
        ("kubectl rollout status deployment/api", Low),
        ("kubectl rollout history deployment/api", Low),
        // MEDIUM: ordinary changes
        ("kubectl scale deploy/api --replicas=3", Medium),
        ("kubectl rollout restart deployment/api", Medium),
        (
            "kubectl rollout undo deployment/api --to-revision=4",
            Medium,
        ),
        ("kubectl rollout pause deployment/api", Medium),
        ("kubectl rollout resume deployment/api", Medium),
        ("kubectl label pod api-0 tier=web --overwrite", Medium),
        ("kubectl annotate deployment api owner=team-a", Medium),
        ("kubectl cordon node-1", Medium),
        ("kubectl uncordon node-1", Medium),
        (
            "kubectl set image deployment/api api=registry.example.com/api:1.2.3",
            Medium,
        ),
        (
            "kubectl autoscale deployment api --min=2 --max=10 --cpu-percent=80",
            Medium,
        ),
        ("kubectl apply -f deploy.yaml", Medium),
        ("kubectl apply -k overlays/staging", Medium),
        ("kubectl create deployment web --image=nginx:1.27", Medium),
        (
            "kubectl create configmap app-config --from-file=app.conf",
            Medium,
        ),
        (
            r#"kubectl patch deployment api -p '{"spec":{"replicas":2}}'"#,
            Medium,
        ),
        ("kubectl edit configmap app-config", Medium),
        ("kubectl replace --force -f deploy.yaml", Medium),
        ("kubectl exec -it api-0 -- ls /app", Medium),
        ("kubectl cp api-0:/tmp/heap.hprof ./heap.hprof", Medium),
        ("kubectl port-forward svc/api 8080:80", Medium),
        ("kubectl debug -it api-0 --image=busybox", Medium),
        ("kubectl config use-context staging", Medium),
        // HIGH: deletes, evictions, network exposure and TLS
        ("kubectl delete pod api-0", High),
        ("kubectl delete deployment api -n staging", High),
        ("kubectl delete -f deploy.yaml", High),
        (
            "kubectl drain node-1 --ignore-daemonsets --delete-emptydir-data",
            High,
        ),
        ("kubectl taint nodes node-1 dedicated=db:NoSchedule", High),
        // `apply` names a kind on the line only here; `apply -f netpol.yaml`
        // is rated by its verb (docs/policy.md, "Known limits")
        ("kubectl apply edit-last-applied ingress/web", High),
        (
            r#"kubectl patch networkpolicy default-deny --type=merge -p '{"spec":{}}'"#,
            High,
        ),
        (
            r#"kubectl create ingress web --class=nginx --rule="example.com/*=web:80""#,
            High,
        ),
        ("kubectl delete netpol allow-all", High),
        ("kubectl delete networkpolicies allow-all", High),
        ("kubectl delete ingress web", High),
        ("kubectl delete certificate web-tls", High),
        (
            r#"kubectl patch certificate web-tls --type=merge -p '{"spec":{"renewBefore":"720h"}}'"#,
            High,
        ),
        // CRITICAL: namespaces, volumes, CRDs, secrets, RBAC, --all, -A
        ("kubectl delete ns staging", Critical),
        ("kubectl delete namespace team-a", Critical),
        ("kubectl delete pv pv-0001", Critical),
        ("kubectl delete persistentvolume pv-0001", Critical),
        ("kubectl delete pvc data-db-0", Critical),
        ("kubectl delete crd certificates.cert-manager.io", Critical),
        (
            "kubectl delete customresourcedefinitions widgets.example.com",
            Critical,
        ),
        (
            "kubectl create secret generic db-pass --from-literal=password=hunter2",
            Critical,
        ),
        (
            r#"kubectl patch secret db-pass -p '{"data":{"password":"aHVudGVyMg=="}}'"#,
            Critical,
        ),
        ("kubectl edit secret db-pass", Critical),
        ("kubectl delete secret db-pass", Critical),
        (
            "kubectl create role pod-reader --verb=get --resource=pods",
            Critical,
        ),
        (
            "kubectl create rolebinding jane-read --role=pod-reader --user=jane",
            Critical,
        ),
        ("kubectl edit rolebinding jane-read", Critical),
        ("kubectl delete clusterrole legacy-admin", Critical),
        (
            "kubectl create clusterrolebinding jane-admin --clusterrole=cluster-admin --user=jane",
            Critical,
        ),
        ("kubectl delete clusterrolebinding jane-admin", Critical),
        (
            "kubectl set subject rolebinding jane-read --user=bob",
            Critical,
        ),
        ("kubectl auth reconcile -f rbac.yaml", Critical),
        ("kubectl delete crd/widgets.example.com", Critical),
        ("kubectl delete pods,pvc -l app=db", Critical),
        ("kubectl delete pods --all -n staging", Critical),
        (
            "kubectl delete pods -A --field-selector=status.phase=Failed",
            Critical,
        ),
        (
            "kubectl rollout restart deployment --all-namespaces",
            Critical,
        ),
        ("kubectl label pods -A -l app=api tier=web", Critical),
    ];
    let mismatches = mismatches(rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn aws() {
    let rows: &[(&str, RiskLevel)] = &[
        // A later argument that names a service is not the subcommand.
        ("aws s3api delete-bucket --bucket logs", Critical),
        (
            "aws s3api put-bucket-policy --bucket logs --policy file://policy.json",
            High,
        ),
        ("aws cloudformation delete-stack --stack-name iam", Critical),
        // s3 spells its dry run `--dryrun`.
        ("aws s3 rm s3://bucket/tmp/ --recursive --dryrun", Low),
        // LOW
        (
            "aws ec2 describe-instances --filters Name=tag:env,Values=staging",
            Low,
        ),
        ("aws rds describe-db-instances", Low),
        ("aws s3api list-buckets", Low),
        ("aws iam list-users", Low),
        ("aws ssm get-parameter --name /app/config", Low),
        ("aws sts get-caller-identity", Low),
        ("aws s3 ls s3://backups/db/", Low),
        // get-secret-value and get-password-data reveal secrets
        (
            "aws secretsmanager get-secret-value --secret-id prod/db",
            High,
        ),
        ("aws ec2 get-password-data --instance-id i-0abc", High),
        // MEDIUM
        ("aws ec2 start-instances --instance-ids i-0abc", Medium),
        // stopping is HIGH: the service is down until someone starts it
        ("aws ec2 stop-instances --instance-ids i-0abc", High),
        ("aws ec2 reboot-instances --instance-ids i-0abc", Medium),
        (
            "aws rds stop-db-instance --db-instance-identifier db1",
            High,
        ),
        (
            "aws ec2 create-tags --resources i-0abc --tags Key=env,Value=staging",
            Medium,
        ),
        ("aws s3 cp backup.tgz s3://backups/db/", Medium),
        ("aws s3 mv s3://backups/a.tgz s3://archive/a.tgz", Medium),
        ("aws s3 sync ./site s3://web-assets", Medium),
        // HIGH
        (
            "aws ec2 modify-instance-attribute --instance-id i-0abc --instance-type m5.large",
            High,
        ),
        (
            "aws s3api put-bucket-policy --bucket web-assets --policy file://policy.json",
            High,
        ),
        (
            "aws lambda update-function-code --function-name api --zip-file fileb://api.zip",
            High,
        ),
        (
            "aws ec2 create-security-group --group-name web --description web",
            High,
        ),
        (
            "aws ec2 authorize-security-group-ingress --group-id sg-1 --protocol tcp --port 22 --cidr 0.0.0.0/0",
            High,
        ),
        (
            "aws ec2 revoke-security-group-ingress --group-id sg-1 --protocol tcp --port 22 --cidr 0.0.0.0/0",
            High,
        ),
        (
            "aws ec2 attach-volume --volume-id vol-1 --instance-id i-0abc --device /dev/sdf",
            High,
        ),
        ("aws ec2 detach-volume --volume-id vol-1", High),
        (
            "aws ec2 associate-address --instance-id i-0abc --allocation-id eipalloc-1",
            High,
        ),
        ("aws s3 rm s3://backups/db/old.dump", High),
        (
            "aws ec2 run-instances --image-id ami-123 --instance-type t3.micro --count 1",
            High,
        ),
        // CRITICAL
        (
            "aws ec2 terminate-instances --instance-ids i-0abc",
            Critical,
        ),
        (
            "aws rds delete-db-instance --db-instance-identifier db1 --skip-final-snapshot",
            Critical,
        ),
        ("aws ec2 deregister-image --image-id ami-123", Critical),
        ("aws s3 rm s3://backups --recursive", Critical),
        ("aws s3 rb s3://backups --force", Critical),
        ("aws iam create-user --user-name deploy", Critical),
        (
            "aws iam attach-user-policy --user-name deploy --policy-arn arn:aws:iam::aws:policy/AdministratorAccess",
            Critical,
        ),
        (
            "aws iam put-role-policy --role-name app --policy-name s3 --policy-document file://p.json",
            Critical,
        ),
        ("aws iam create-access-key --user-name deploy", Critical),
        (
            "aws iam update-access-key --access-key-id AKIA0 --status Inactive --user-name deploy",
            Critical,
        ),
        (
            "aws iam tag-user --user-name deploy --tags Key=team,Value=ops",
            Critical,
        ),
        ("aws cloudformation delete-stack --stack-name web", Critical),
        // --region / --profile before or after the service
        ("aws --region us-east-1 ec2 describe-instances", Low),
        ("aws ec2 --region eu-west-1 describe-instances", Low),
        ("aws --profile prod s3 ls", Low),
        (
            "aws --region us-east-1 --profile ops ec2 terminate-instances --instance-ids i-0abc",
            Critical,
        ),
        (
            "aws ec2 --profile ops stop-instances --instance-ids i-0abc",
            High,
        ),
        (
            "aws s3 rm --region us-east-1 s3://backups --recursive",
            Critical,
        ),
    ];
    let mismatches = mismatches(rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn docker_and_podman() {
    let rows: &[(&str, RiskLevel)] = &[
        // LOW
        ("docker ps -a", Low),
        ("docker images", Low),
        ("docker logs -f --tail 100 web", Low),
        ("docker inspect web", Low),
        ("docker stats --no-stream", Low),
        ("docker top web", Low),
        ("docker version", Low),
        ("docker info", Low),
        ("docker events --since 1h", Low),
        ("docker history nginx:1.27", Low),
        ("docker diff web", Low),
        ("podman ps --all", Low),
        ("podman images", Low),
        ("podman logs web", Low),
        // MEDIUM
        ("docker start web", Medium),
        ("docker stop web", High),
        ("docker restart web", Medium),
        ("docker pause web", Medium),
        ("docker kill web", High),
        ("docker run --rm -it alpine:3.20 sh", Medium),
        ("docker exec -it web sh", Medium),
        ("docker create --name web nginx:1.27", Medium),
        ("docker build -t app:1.0 .", Medium),
        ("docker pull nginx:1.27", Medium),
        ("docker tag app:1.0 registry.example.com/app:1.0", Medium),
        ("docker cp web:/etc/nginx/nginx.conf ./nginx.conf", Medium),
        ("podman run -d --name web nginx", Medium),
        ("podman restart web", Medium),
        // HIGH
        ("docker rm web", High),
        ("docker rm -f web", High),
        ("docker rmi nginx:1.25", High),
        ("docker network rm backend", High),
        ("docker image prune -a -f", High),
        ("docker container prune -f", High),
        ("docker compose down", High),
        ("podman rm -f web", High),
        // CRITICAL
        ("docker volume rm pgdata", Critical),
        ("docker volume prune -f", Critical),
        ("docker system prune -af", Critical),
        ("docker system prune -a --volumes", Critical),
        ("podman volume rm pgdata", Critical),
        ("podman system prune --all --force", Critical),
        ("docker compose down -v", Critical),
        // global flags before the subcommand
        ("docker -H tcp://build-1:2375 ps", Low),
        ("docker --context remote rm -f web", High),
    ];
    let mismatches = mismatches(rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn helm() {
    let rows: &[(&str, RiskLevel)] = &[
        // LOW
        ("helm list -A", Low),
        ("helm status web -n staging", Low),
        ("helm get values web -n staging", Low),
        ("helm history web", Low),
        ("helm show values bitnami/nginx", Low),
        ("helm template web ./chart -f values.yaml", Low),
        ("helm lint ./chart", Low),
        ("helm search repo nginx", Low),
        // MEDIUM
        ("helm install web bitnami/nginx -n staging", Medium),
        (
            "helm upgrade --install web ./chart -f values.yaml --namespace staging",
            Medium,
        ),
        ("helm rollback web 3", Medium),
        // HIGH
        ("helm uninstall web -n staging", High),
        ("helm delete web", High),
    ];
    let mismatches = mismatches(rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn terraform_and_tofu() {
    let rows: &[(&str, RiskLevel)] = &[
        // LOW
        ("terraform plan -out=tfplan", Medium),
        ("terraform plan -destroy -out=destroy.tfplan", Medium),
        ("terraform show -json tfplan", Low),
        ("terraform validate", Low),
        ("terraform output -json", Low),
        ("terraform fmt -check -recursive", Low),
        ("terraform version", Low),
        ("terraform providers", Low),
        ("terraform graph", Low),
        ("terraform state list", Low),
        ("terraform state show aws_instance.web", Low),
        ("terraform init -upgrade", Low),
        ("tofu plan", Low),
        // MEDIUM
        ("terraform import aws_instance.web i-0abc", Medium),
        ("terraform taint aws_instance.web", Medium),
        ("terraform untaint aws_instance.web", Medium),
        ("terraform refresh", Medium),
        (
            "terraform state mv aws_instance.web aws_instance.api",
            Medium,
        ),
        ("terraform state rm aws_instance.web", High),
        ("tofu state rm aws_instance.web", High),
        // HIGH
        ("terraform apply tfplan", High),
        (
            "terraform apply -auto-approve -var-file=staging.tfvars",
            High,
        ),
        ("terraform -chdir=infra apply -auto-approve", High),
        ("tofu apply", High),
        // CRITICAL
        ("terraform destroy -auto-approve", Critical),
        (
            "terraform destroy -target=aws_instance.web -auto-approve",
            Critical,
        ),
        ("terraform apply -destroy -auto-approve", Critical),
        ("terraform state push terraform.tfstate", Critical),
        (
            "terraform force-unlock -force 6638e010-8d1a-4a58-b0b6-0a1b2c3d4e5f",
            Critical,
        ),
        ("tofu destroy", Critical),
        ("tofu apply -destroy", Critical),
    ];
    let mismatches = mismatches(rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn systemctl_and_service() {
    let rows: &[(&str, RiskLevel)] = &[
        // LOW
        ("systemctl status nginx", Low),
        ("systemctl show nginx -p ActiveState", Low),
        ("systemctl list-units --failed", Low),
        ("systemctl list-timers --all", Low),
        ("systemctl is-active nginx", Low),
        ("systemctl is-enabled nginx", Low),
        ("service nginx status", Low),
        ("service --status-all", Low),
        ("journalctl -u nginx --since '1 hour ago'", Low),
        ("journalctl -fu nginx", Low),
        ("journalctl -xe", Low),
        // MEDIUM
        ("systemctl start nginx", Medium),
        ("systemctl restart nginx", Medium),
        ("systemctl reload nginx", Medium),
        ("service nginx start", Medium),
        ("service nginx restart", Medium),
        ("service nginx reload", Medium),
        // HIGH
        ("systemctl stop nginx", High),
        ("systemctl disable --now nginx", High),
        ("systemctl mask nginx", High),
        ("service nginx stop", High),
    ];
    let mismatches = mismatches(rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn sql_clients() {
    let rows: &[(&str, RiskLevel)] = &[
        // A leading block comment does not hide the statement.
        ("psql -c '/* cleanup */ DROP TABLE sessions' app", Critical),
        ("psql -c '/* a */ /* b */ SELECT 1' app", Low),
        // DROP and TRUNCATE count wherever they stand: a line comment before
        // them cannot be seen once the query is one argument.
        ("psql -c $'-- tidy up\\nDROP TABLE sessions' app", Critical),
        // LOW
        (
            "psql -h db.internal -U app -d shop -c 'SELECT count(*) FROM orders'",
            Low,
        ),
        ("psql -c 'SHOW max_connections'", Low),
        (
            "psql --command='EXPLAIN ANALYZE SELECT * FROM orders WHERE id = 1'",
            Low,
        ),
        ("mysql -u root -e 'SHOW DATABASES'", Low),
        (
            "mysql -h db -u app -psecret shop -e 'SELECT id FROM users LIMIT 10'",
            Low,
        ),
        ("sqlite3 app.db 'SELECT * FROM migrations'", Low),
        (
            "sqlite3 app.db 'EXPLAIN QUERY PLAN SELECT * FROM users'",
            Low,
        ),
        // HIGH
        (
            "psql -c \"INSERT INTO flags (name, on) VALUES ('beta', true)\"",
            Medium,
        ),
        (
            "psql -d shop -c 'UPDATE users SET active = false WHERE id = 42'",
            Medium,
        ),
        (
            "mysql -e 'ALTER TABLE orders ADD COLUMN note TEXT' shop",
            High,
        ),
        (
            "psql -c 'CREATE INDEX orders_user ON orders (user_id)'",
            High,
        ),
        ("psql -c 'GRANT SELECT ON orders TO report'", Critical),
        (
            "sqlite3 app.db \"UPDATE settings SET value = 'x' WHERE key = 'y'\"",
            Medium,
        ),
        (
            "psql -c 'DELETE FROM sessions WHERE expires < now()'",
            Medium,
        ),
        // SQL from a file or standard input
        ("psql -d shop -f migrate.sql", High),
        ("psql shop < dump.sql", High),
        ("mysql shop < dump.sql", High),
        ("cat cleanup.sql | sqlite3 app.db", High),
        // CRITICAL
        ("psql -c 'DROP TABLE orders'", Critical),
        ("mysql -e 'DROP DATABASE shop'", Critical),
        ("psql -c 'TRUNCATE audit_log'", Critical),
        ("mysql shop -e 'TRUNCATE TABLE sessions'", Critical),
        ("psql -c 'DELETE FROM sessions'", Critical),
        ("psql -c 'DELETE FROM sessions;'", Critical),
        ("sqlite3 app.db 'DELETE FROM users'", Critical),
        ("psql -c 'SELECT 1; DROP TABLE orders'", Critical),
        ("sqlite3 app.db 'DROP TABLE users'", Critical),
        ("psql -c 'DELETE FROM sessions RETURNING id'", Critical),
        // EXPLAIN ANALYZE and a data-modifying WITH run the statement
        ("psql -c 'EXPLAIN SELECT * FROM orders'", Low),
        ("psql -c 'EXPLAIN DELETE FROM sessions'", Low),
        (
            "psql -c 'EXPLAIN (ANALYZE, BUFFERS) UPDATE users SET active = false WHERE id = 42'",
            Medium,
        ),
        ("psql -c 'EXPLAIN ANALYZE DELETE FROM sessions'", Critical),
        (
            "psql -c 'WITH gone AS (DELETE FROM sessions WHERE expires < now() RETURNING id) SELECT count(*) FROM gone'",
            Medium,
        ),
        (
            "psql -c 'WITH gone AS (DELETE FROM sessions RETURNING id) SELECT count(*) FROM gone'",
            Critical,
        ),
    ];
    let mismatches = mismatches(rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn files_and_system() {
    let rows: &[(&str, RiskLevel)] = &[
        // LOW
        ("ls -la /var/log", Low),
        ("cat /etc/hosts", Low),
        ("head -n 50 app.log", Low),
        ("tail -f /var/log/syslog", Low),
        ("grep -rn ERROR /var/log/app", Low),
        ("awk '{print $1}' access.log", Low),
        ("sed -n '1,20p' app.conf", Low),
        ("sed 's/foo/bar/g' app.conf", Low),
        ("jq '.items[].metadata.name' pods.json", Low),
        ("yq '.spec.replicas' deploy.yaml", Low),
        ("wc -l access.log", Low),
        ("sort -u names.txt", Low),
        ("uniq -c names.txt", Low),
        ("df -h", Low),
        ("du -sh /var/lib/docker", Low),
        ("ps aux", Low),
        ("top -b -n 1", Low),
        ("free -m", Low),
        ("uptime", Low),
        ("whoami", Low),
        ("hostname", Low),
        ("hostname -f", Low),
        ("date -u", Low),
        ("echo hello", Low),
        ("printf '%s\\n' hello", Low),
        ("dig +short example.com", Low),
        ("ping -c 3 example.com", Low),
        ("curl -fsS https://api.example.com/health", Low),
        (
            "curl -H 'Accept: application/json' https://api.example.com/v1/status",
            Low,
        ),
        ("wget -q https://example.com/release.tar.gz", Low),
        // MEDIUM
        ("sed -i 's/debug/info/' app.conf", Medium),
        ("sed -i.bak -e 's/a/b/' app.conf", Medium),
        ("cp app.conf app.conf.bak", Medium),
        ("mv app.log app.log.1", Medium),
        ("mkdir -p /srv/app/releases", Medium),
        ("touch /tmp/maintenance", Medium),
        ("chmod 640 app.conf", High),
        ("chown app:app app.conf", High),
        ("rm app.log.1", Medium),
        ("rm -f /tmp/app.pid", Medium),
        ("kill -HUP 1234", Medium),
        ("pkill -f worker", Medium),
        ("curl -X POST https://api.example.com/v1/deploy", Medium),
        (
            "curl -XPUT https://api.example.com/v1/flags/beta -d on",
            Medium,
        ),
        (
            "curl --request PATCH https://api.example.com/v1/users/1",
            Medium,
        ),
        ("curl -X DELETE https://api.example.com/v1/cache", High),
        (
            "curl -fsSL -o /tmp/install.sh https://get.example.com/install.sh",
            Medium,
        ),
        (
            r#"curl -H 'Content-Type: application/json' -d '{"a":1}' https://api.example.com/v1"#,
            Medium,
        ),
        // HIGH
        ("rm -r build/", High),
        ("rm -rf ./node_modules", High),
        ("rm -rf /tmp/build-123", High),
        ("find /var/log/app -name '*.gz' -mtime +30 -delete", High),
        ("find . -type f -name '*.tmp' -print", Low),
        ("find /tmp -name '*.tmp' -exec rm -rf {} +", High),
        ("find / -maxdepth 1 -exec rm -rf {} \\;", Critical),
        ("shutdown -h now", High),
        ("shutdown -r +5", High),
        ("reboot", High),
        ("iptables -A INPUT -p tcp --dport 22 -j ACCEPT", High),
        ("iptables -F", High),
        ("nft add rule inet filter input tcp dport 22 accept", High),
        ("nft flush ruleset", High),
        ("ufw allow 22/tcp", High),
        ("ufw enable", High),
        ("curl -fsSL https://get.example.com/install.sh | sh", High),
        (
            "curl -fsSL https://get.example.com/install.sh | bash -s -- --yes",
            High,
        ),
        ("wget -qO- https://example.com/setup.py | python3", High),
        (
            "curl -fsSL https://get.example.com/install.sh | sudo bash",
            High,
        ),
        (
            "bash <(curl -fsSL https://get.example.com/install.sh)",
            High,
        ),
        ("sh < install.sh", High),
        (
            "wget --post-data 'a=1' https://api.example.com/v1/form",
            Medium,
        ),
        (
            "wget --method=DELETE https://api.example.com/v1/cache",
            High,
        ),
        // firewall reads stay LOW
        ("iptables -L -n -v", Low),
        ("nft list ruleset", Low),
        ("ufw status verbose", Low),
        // CRITICAL
        ("rm -rf /", Critical),
        ("rm -rf /*", Critical),
        ("rm -rf /etc", Critical),
        ("rm -rf /usr", Critical),
        ("rm -rf /var", Critical),
        ("rm -rf /home", Critical),
        ("rm -rf /boot", Critical),
        ("rm -rf /var/lib/docker", Critical),
        ("rm -rf /var/lib/postgresql", Critical),
        ("rm -fr /etc", Critical),
        ("rm -r -f /home", Critical),
        ("rm --recursive --force /usr", Critical),
        ("rm -rf /etc/", Critical),
        ("rm -rf /var/lib/mysql/", Critical),
        ("rm -rf /usr/", Critical),
        ("rm -rf ~/", Critical),
        ("rm -rf /etc/*", Critical),
        ("rm -rf /var/lib/*", Critical),
        ("rm -rf -- /", Critical),
        ("rm -rf --no-preserve-root /", Critical),
        ("rm --no-preserve-root -rf /", Critical),
        ("dd if=/dev/zero of=/dev/sda bs=1M", Critical),
        (
            "dd if=image.iso of=/dev/nvme0n1 bs=4M status=progress",
            Critical,
        ),
        ("mkfs.ext4 /dev/sdb1", Critical),
        ("mkfs -t xfs /dev/sdc", Critical),
        ("fdisk /dev/sda", Critical),
        ("parted /dev/sda mklabel gpt", Critical),
        ("wipefs -a /dev/sdb", Critical),
        ("shred -n 3 -z /dev/sdb", Critical),
        ("shred -u secrets.txt", Critical),
        // dd to /dev/null writes no device: an ordinary file operation
        ("dd if=/dev/sda of=/dev/null bs=1M count=100", Low),
    ];
    let mismatches = mismatches(rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

// ------------------------------------------------------------- categories

#[test]
fn wrappers_are_unwrapped() {
    let rows: &[(&str, RiskLevel)] = &[
        // sudo
        ("sudo rm -rf /", Critical),
        ("sudo -u root systemctl stop nginx", High),
        ("sudo -E kubectl delete ns staging", Critical),
        ("sudo -u postgres psql -c 'SELECT 1'", Low),
        ("sudo -iu deploy ls", Low),
        ("sudo -l", Low),
        ("sudo --user=root rm -rf /", Critical),
        ("sudo -- rm -rf /", Critical),
        ("busybox rm -rf /etc", Critical),
        // A syntax error does not hide a quoted command line.
        ("sudo ( sh -c 'dd if=/dev/zero of=/dev/sda' )", Critical),
        ("sudo kubectl exec api-0 -- rm -rf /data", Critical),
        ("doas rm -rf /etc", Critical),
        // env
        ("env KUBECONFIG=/tmp/kc kubectl delete pod api-0", High),
        ("env -u HOME terraform destroy -auto-approve", Critical),
        ("env -i PATH=/usr/bin rm -rf /etc", Critical),
        ("env", Low),
        // leading assignments
        ("KUBECONFIG=~/.kube/staging kubectl get pods", Low),
        (
            "AWS_PROFILE=ops AWS_REGION=us-east-1 aws ec2 terminate-instances --instance-ids i-0abc",
            Critical,
        ),
        ("TF_LOG=DEBUG terraform apply", High),
        // nohup, time, timeout, nice
        ("nohup terraform plan", Low),
        ("nohup rm -rf /var/lib/docker", Critical),
        ("time terraform plan", Low),
        ("time docker system prune -af", Critical),
        ("timeout 30 kubectl rollout status deploy/api", Low),
        ("timeout 60s helm uninstall web", High),
        ("timeout -s KILL 10 kubectl delete ns staging", Critical),
        ("timeout -k 5 10 rm -rf /", Critical),
        ("nice -n 10 tar czf backup.tgz /data", Medium),
        ("nice rm -rf /", Critical),
        // watch
        ("watch -n 5 kubectl get pods", Low),
        ("watch kubectl top nodes", Low),
        ("watch -n 60 kubectl delete pod api-0", High),
        // xargs
        ("ls | xargs -n1 echo", Low),
        ("find /tmp -name '*.tmp' | xargs rm", Medium),
        ("echo /srv/cache | xargs rm -rf", High),
        (
            "cat ids.txt | xargs -I{} aws ec2 terminate-instances --instance-ids {}",
            Critical,
        ),
        // sh / bash / zsh -c
        ("sh -c 'echo hello'", Low),
        ("sh -c 'kubectl delete ns staging'", Critical),
        (r#"bash -c "rm -rf /var/lib/docker""#, Critical),
        ("bash -lc 'terraform destroy -auto-approve'", Critical),
        ("zsh -c 'ls -la'", Low),
        ("bash -c 'systemctl restart nginx'", Medium),
        (
            "bash -euo pipefail -c 'terraform destroy -auto-approve'",
            Critical,
        ),
        ("su -c 'rm -rf /' root", Critical),
        ("sudo bash <<EOF\nsystemctl stop nginx\nEOF", High),
        // kubectl exec: the wrapper is MEDIUM, what it runs is rated too
        ("kubectl exec api-0 -- cat /etc/hosts", Medium),
        ("kubectl exec -it api-0 -c app -- rm -rf /tmp/cache", High),
        (
            "kubectl exec -it db-0 -- psql -c 'DROP TABLE orders'",
            Critical,
        ),
        ("kubectl exec deploy/api -- sh -c 'rm -rf /'", Critical),
        // ssh: the wrapper is MEDIUM, the remote command is rated too
        ("ssh web-1", Medium),
        ("ssh web-1 uptime", Medium),
        (
            "ssh -i ~/.ssh/ops.pem ubuntu@web-1 'sudo systemctl restart nginx'",
            Medium,
        ),
        ("ssh web-1 'sudo reboot'", High),
        ("ssh web-1 -- rm -rf /", Critical),
        // With no command, the remote shell runs what is fed on stdin.
        ("ssh web-1 <<'EOF'\nrm -rf /\nEOF", Critical),
        ("ssh web-1 bash <<'EOF'\nrm -rf /\nEOF", Critical),
        ("ssh web-1 < cleanup.sh", High),
        // the here-doc reaches psql through ssh, and its SQL is parsed
        ("ssh web-1 psql app <<'EOF'\nSELECT 1;\nEOF", Medium),
        (
            "ssh web-1 psql app <<'EOF'\nDROP TABLE users;\nEOF",
            Critical,
        ),
        ("ssh -p 2222 bastion rm -rf /", Critical),
        (
            "ssh -o StrictHostKeyChecking=no web-1 'kubectl delete ns staging'",
            Critical,
        ),
        ("ssh -J bastion web-1 'sudo systemctl stop nginx'", High),
        ("docker exec web rm -rf /", Critical),
        // nesting
        (r#"sudo sh -c "rm -rf /etc""#, Critical),
        (
            r#"sudo bash -c 'kubectl delete ns staging && echo done'"#,
            Critical,
        ),
        (
            r#"ssh db-1 "sudo sh -c 'dd if=/dev/zero of=/dev/sda bs=1M'""#,
            Critical,
        ),
        ("env X=1 timeout 10 nice -n 5 rm -rf /home", Critical),
        ("sudo nohup timeout 300 terraform apply -auto-approve", High),
        ("sudo -u app env RAILS_ENV=production ls", Low),
    ];
    let mismatches = mismatches(rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn compound_lines_take_the_maximum() {
    let rows: &[(&str, RiskLevel)] = &[
        ("kubectl get pods | grep api", Low),
        ("kubectl logs api-0 2>&1 | tail -n 100", Low),
        (
            "kubectl get pods -o name | grep old | xargs kubectl delete",
            High,
        ),
        ("cd /srv/app && rm -rf build", High),
        ("ls -la; rm -rf /", Critical),
        (
            "kubectl get ns staging || kubectl delete ns staging",
            Critical,
        ),
        ("sleep 10 & kubectl drain node-1 --ignore-daemonsets", High),
        (
            "(cd /srv/infra && terraform destroy -auto-approve)",
            Critical,
        ),
        ("{ echo start; systemctl stop nginx; }", High),
        ("echo $(kubectl delete ns staging)", Critical),
        ("echo `rm -rf /`", Critical),
        ("POD=$(kubectl get pods -o name | head -n 1)", Low),
        ("bash <<EOF\nkubectl delete ns staging\nEOF", Critical),
        ("bash <<'EOF'\nrm -rf /\nEOF", Critical),
        ("sh <<< 'systemctl stop nginx'", High),
        ("cat <<EOF > /etc/motd\nhello\nEOF", High),
        ("for ns in a b c; do kubectl delete ns $ns; done", Critical),
        (
            "if kubectl get ns staging; then kubectl delete ns staging; fi",
            Critical,
        ),
        ("while true; do kubectl get pods; sleep 5; done", Low),
        ("f() { rm -rf /; }; f", Critical),
        ("! kubectl delete ns staging", Critical),
        ("kubectl get pods\nkubectl delete ns staging", Critical),
        ("kubectl delete ns staging # cleanup", Critical),
        (
            "kubectl get pods -o yaml > pods.yaml && kubectl delete pod api-0",
            High,
        ),
    ];
    let mut mismatches = mismatches(rows);

    // The first reason names the part that set the level.
    let deciding: &[(&str, &str)] = &[
        ("ls -la; rm -rf /", "rm -rf /"),
        (
            "kubectl get pods && kubectl delete ns staging",
            "kubectl delete ns staging",
        ),
        (
            "kubectl get pods -o name | xargs kubectl delete",
            "kubectl delete",
        ),
        (
            "echo ok; sudo sh -c 'mkfs.ext4 /dev/sdb1'",
            "mkfs.ext4 /dev/sdb1",
        ),
    ];
    for &(line, part) in deciding {
        match classify(line, &ClassifyContext::default()) {
            Ok(c) => match c.reasons.first() {
                Some(r) if r.part.contains(part) => {}
                other => mismatches.push(format!(
                    "{line:?}: first reason should name `{part}`, got {other:?}"
                )),
            },
            Err(e) => mismatches.push(format!("{line:?}: error {e}")),
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn quoting_and_obfuscation_are_seen_through() {
    let rows: &[(&str, RiskLevel)] = &[
        ("k''ubectl delete ns staging", Critical),
        (r#""kubectl" delete pod api-0"#, High),
        (r"\kubectl delete ns staging", Critical),
        (r"$'\x72m' -rf /", Critical),
        (r"r''m -r''f /", Critical),
        (r#"kubectl "delete" 'namespace' staging"#, Critical),
        ("/usr/bin/kubectl delete ns staging", Critical),
        ("/usr/local/bin/terraform destroy -auto-approve", Critical),
        ("/bin/rm -rf /", Critical),
        ("./kubectl delete ns staging", Critical),
        (r"kubectl dele''te n\s staging", Critical),
        ("/usr/bin/env rm -rf /", Critical),
        ("command rm -rf /", Critical),
        // policy aliases: k -> kubectl, tf -> terraform
        ("k get pods", Low),
        ("k delete ns staging", Critical),
        ("k scale deploy/api --replicas=2", Medium),
        ("tf destroy", Critical),
    ];
    let mismatches = mismatches(rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn flag_positions_and_production_scopes() {
    let rows: &[(&str, RiskLevel)] = &[
        // every spelling of the namespace and context flags
        ("kubectl scale deploy/api --replicas=0 -n prod", High),
        ("kubectl scale deploy/api --replicas=0 -nprod", High),
        (
            "kubectl scale deploy/api --replicas=0 --namespace prod",
            High,
        ),
        (
            "kubectl scale deploy/api --replicas=0 --namespace=prod",
            High,
        ),
        ("kubectl scale deploy/api --replicas=0 -n=prod", High),
        ("kubectl apply -f deploy.yaml --context prod-east", High),
        (
            "kubectl --context=eu-prod-1 rollout restart deploy/api",
            High,
        ),
        ("kubectl -n prod rollout restart deploy/api", High),
        ("kubectl -n production annotate deploy api owner=x", High),
        ("kubectl -n live label pod api-0 tier=web", High),
        ("kubectl -n prod exec api-0 -- ls", High),
        // flags before the subcommand do not hide it
        ("kubectl -n prod delete ns team-a", Critical),
        ("kubectl --context staging -n prod delete pod api-0", High),
        ("kubectl -n staging delete deploy api", High),
        // non-production scopes leave the rule's level alone
        ("kubectl scale deploy/api --replicas=0 -n staging", Medium),
        ("kubectl scale deploy/api --replicas=0 -n tools", Medium),
        (
            "kubectl apply -f deploy.yaml --context staging-east",
            Medium,
        ),
        // reads stay LOW in production
        ("kubectl get pods -n prod", Low),
        ("kubectl -n prod logs deploy/api", Low),
        ("kubectl describe pod api-0 --context prod-east", Low),
        ("helm status web -n prod", Low),
        // helm namespace and kube context
        ("helm upgrade web ./chart -n prod", High),
        ("helm rollback web 2 --kube-context prod-eu", High),
        // explicit dry runs make a mutation LOW
        ("kubectl apply -f deploy.yaml -n prod --dry-run=server", Low),
        ("kubectl delete ns staging --dry-run=client", Low),
        (
            "kubectl delete secret db-pass -n prod --dry-run=server",
            Low,
        ),
        (
            "kubectl scale deploy/api --replicas=0 --dry-run=client -o yaml",
            Low,
        ),
        // ... but --dry-run=none does not
        ("kubectl apply -f deploy.yaml --dry-run=none", Medium),
        ("kubectl delete ns staging --dry-run=none", Critical),
        (
            "kubectl scale deploy/api --replicas=0 -n prod --dry-run=none",
            High,
        ),
        ("helm upgrade web ./chart -n prod --dry-run", Low),
        ("helm uninstall web --dry-run", Low),
        (
            "aws ec2 terminate-instances --instance-ids i-0abc --dry-run",
            Low,
        ),
        (
            "aws ec2 run-instances --image-id ami-123 --count 1 --dry-run",
            Low,
        ),
        // aws --dry-run only means something to ec2
        (
            "aws rds delete-db-instance --db-instance-identifier db1 --dry-run",
            Critical,
        ),
    ];
    let mut mismatches = mismatches(rows);

    // A plan's target applies when the command does not name its own.
    let prod_ns = target(Some("prod"), None);
    let prod_ns_rows: &[(&str, RiskLevel)] = &[
        ("kubectl scale deploy/api --replicas=2", High),
        ("kubectl rollout restart deploy/api", High),
        ("kubectl get pods", Low),
        ("kubectl -n staging scale deploy/api --replicas=2", Medium),
        ("kubectl delete ns team-a", Critical),
        ("kubectl apply -f deploy.yaml --dry-run=server", Low),
        ("helm upgrade web ./chart", High),
        ("docker restart web", Medium),
    ];
    mismatches.extend(mismatches_in(prod_ns_rows, &prod_ns, false));

    let prod_ctx = target(Some("staging"), Some("gke-prod-east"));
    let prod_ctx_rows: &[(&str, RiskLevel)] = &[
        ("kubectl apply -f deploy.yaml", High),
        ("kubectl get pods", Low),
        ("kubectl --context dev apply -f deploy.yaml", Medium),
        ("helm install web ./chart", High),
    ];
    mismatches.extend(mismatches_in(prod_ctx_rows, &prod_ctx, false));

    let staging = target(Some("staging"), Some("staging-east"));
    let staging_rows: &[(&str, RiskLevel)] = &[
        ("kubectl scale deploy/api --replicas=2", Medium),
        ("kubectl -n prod scale deploy/api --replicas=2", High),
        ("kubectl --context prod-east apply -f deploy.yaml", High),
    ];
    mismatches.extend(mismatches_in(staging_rows, &staging, false));
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn what_is_only_known_at_run_time_fails_closed() {
    let at_least_high: &[(&str, RiskLevel)] = &[
        ("$KUBECTL get pods", High),
        ("$CMD --force", High),
        (r#""$TOOL" delete pod api-0"#, High),
        ("${TOOL:-kubectl} get pods", High),
        ("$(which kubectl) get pods", High),
        ("eval kubectl get pods", High),
        (r#"eval "$(ssh-agent -s)""#, High),
        ("source ./env.sh", High),
        (". ~/.bashrc", High),
        (". ./deploy-vars", High),
        ("kubectl $VERB pod api-0", High),
        ("$(echo rm) -rf /", High),
        ("kubectl scale deploy/api --replicas=1 -n $NS", High),
        (r#"echo hi > "$OUT""#, High),
        ("echo 'unterminated", High),
        ("kubectl get pods \"", High),
    ];
    let mut mismatches = mismatches_in(at_least_high, &ClassifyContext::default(), true);

    let exact: &[(&str, RiskLevel)] = &[
        ("eval kubectl delete ns staging", Critical),
        ("kubectl delete ns prod 'x", Critical),
        ("frobctl --all", Medium),
        ("./deploy.sh staging", High), // a script the line does not show
        ("kubectl frobnicate pods", Medium),
        ("terraform frobnicate", Medium),
        ("helm frobnicate web", Medium),
        ("docker frobnicate web", Medium),
    ];
    mismatches.extend(mismatches_in(exact, &ClassifyContext::default(), false));

    // A line that cannot be parsed says so.
    for line in ["echo 'unterminated", "kubectl delete ns prod 'x"] {
        match classify(line, &ClassifyContext::default()) {
            Ok(c) if c.reasons.iter().any(|r| r.rule == "unparseable") => {}
            Ok(c) => mismatches.push(format!(
                "{line:?}: no `unparseable` reason in {:#?}",
                c.reasons
            )),
            Err(e) => mismatches.push(format!("{line:?}: error {e}")),
        }
    }

    // Nothing to run is an error, not a rating.
    for line in ["", "   ", "\n\t", "# just a comment"] {
        match classify(line, &ClassifyContext::default()) {
            Err(ClassifyError::Empty) => {}
            other => mismatches.push(format!("{line:?}: want Err(Empty), got {other:?}")),
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn redirections() {
    let rows: &[(&str, RiskLevel)] = &[
        ("kubectl get pods -o yaml > pods.yaml", Medium),
        ("echo done >> /tmp/notes.txt", Medium),
        ("echo 'nameserver 1.1.1.1' > /etc/resolv.conf", High),
        ("echo 'vm.swappiness=10' >> /etc/sysctl.conf", High),
        ("ls > /tmp/../etc/passwd", Critical),
        ("cat disk.img > /dev/sda", Critical),
        ("echo > /dev/nvme0n1", Critical),
        ("cat zero.img > /dev/vdb", Critical),
        ("cat zero.img > /dev/xvdf", Critical),
        (": > /dev/sda", Critical),
        ("echo 1 > /proc/sys/vm/drop_caches", High),
        ("kubectl logs api-0 2> errors.log", Medium),
        ("kubectl get pods > /dev/null", Low),
        ("kubectl get pods 2>&1", Low),
        ("kubectl get pods > /dev/null 2>&1", Low),
        ("terraform plan 2>/dev/null", Low),
        ("ls &> /dev/null", Low),
        ("echo hello >&2", Low),
    ];
    let mismatches = mismatches(rows);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

// ------------------------------------------------------------------ beyond the table

/// Cloud CLIs beyond aws: rules for what the lexicon would get wrong (IAM,
/// credentials, remote commands), the verb lexicon for the rest.
#[test]
fn cloud_clis() {
    let rows: &[(&str, RiskLevel)] = &[
        ("gcloud compute instances list --project acme-staging", Low),
        (
            "gcloud container clusters describe web --zone us-central1-a",
            Low,
        ),
        (
            "gcloud container clusters get-credentials web --zone us-central1-a",
            Medium,
        ),
        (
            "gcloud compute instances stop web-1 --zone us-east1-b",
            High,
        ),
        (
            "gcloud compute ssh web-1 --zone us-east1-b --command uptime",
            Medium,
        ),
        (
            "gcloud container clusters delete prod-cluster --zone us-central1-a --quiet",
            Critical,
        ),
        ("gcloud projects delete acme-staging", Critical),
        ("gcloud sql instances delete orders-db", Critical),
        (
            "gcloud projects add-iam-policy-binding acme --member user:bob@example.com --role roles/owner",
            Critical,
        ),
        ("gsutil ls gs://acme-backups", Low),
        ("gsutil cp report.csv gs://acme-reports/", Medium),
        ("gsutil rm gs://acme-reports/old.csv", High),
        ("gsutil -m rm -r gs://acme-backups", Critical),
        ("gsutil rb gs://acme-backups", Critical),
        (
            "gsutil iam ch allUsers:objectViewer gs://acme-site",
            Critical,
        ),
        ("az vm list -g rg1 -o table", Low),
        ("az vm stop -g rg1 -n vm1", High),
        ("az vm deallocate -g rg1 -n vm1", High),
        (
            "az group delete --name rg-staging --yes --no-wait",
            Critical,
        ),
        (
            "az keyvault secret show --name db-pass --vault-name kv1",
            Medium,
        ),
        (
            "az role assignment create --assignee bob@example.com --role Owner --scope /subscriptions/x",
            Critical,
        ),
        (
            "az vm run-command invoke -g rg1 -n vm1 --command-id RunShellScript --scripts 'uptime'",
            Medium,
        ),
        ("doctl compute droplet list", Low),
        ("doctl compute droplet delete web-1 --force", Critical),
        ("eksctl get clusters", Low),
        ("eksctl delete cluster --name staging", Critical),
        ("oc get pods -n payments", Low),
        ("oc delete project payments", Critical),
        (
            "oc adm policy add-cluster-role-to-user cluster-admin bob",
            Critical,
        ),
        (
            "aws ssm get-parameter --name /prod/db/password --with-decryption",
            Medium,
        ),
        ("aws ssm get-parameter --name /app/region", Low),
        ("aws sts get-session-token", Medium),
        (
            "aws ssm send-command --document-name AWS-RunShellScript --instance-ids i-1 --parameters commands=uptime",
            Medium,
        ),
        (
            "aws route53 change-resource-record-sets --hosted-zone-id Z1 --change-batch file://c.json",
            High,
        ),
        ("aws eks update-kubeconfig --name web", Medium),
        ("aws s3api delete-bucket --bucket acme-logs", Critical),
    ];
    let bad = mismatches(rows);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Data stores: whole-store wipes are CRITICAL, key deletes HIGH, reads LOW,
/// reads of secrets MEDIUM.
#[test]
fn data_stores() {
    let rows: &[(&str, RiskLevel)] = &[
        ("redis-cli GET session:123", Low),
        ("redis-cli -h cache-1 INFO memory", Low),
        ("redis-cli --scan --pattern 'user:*'", Low),
        ("redis-cli SET feature:x on", Medium),
        ("redis-cli DEL session:123", High),
        ("redis-cli CONFIG SET dir /var/spool/cron", Critical),
        ("redis-cli CONFIG GET maxmemory", Low),
        ("redis-cli SHUTDOWN NOSAVE", High),
        ("redis-cli FLUSHALL", Critical),
        ("redis-cli -n 2 FLUSHDB", Critical),
        (
            "mongosh --eval 'db.users.find({status: \"deleted\"}).count()'",
            Low,
        ),
        (
            "mongosh --eval 'db.users.updateOne({_id: 1}, {$set: {a: 1}})'",
            Medium,
        ),
        ("mongosh --eval 'db.users.deleteOne({_id: 1})'", High),
        ("mongosh --eval 'db.users.deleteMany({})'", Critical),
        (
            "mongosh \"mongodb://mongo-1:27017/app\" --eval \"db.dropDatabase()\"",
            Critical,
        ),
        ("mongosh --eval 'db.sessions.drop()'", Critical),
        ("etcdctl get /app --prefix --keys-only", Low),
        ("etcdctl put /app/flag on", Medium),
        ("etcdctl del /app/flag", High),
        ("etcdctl del \"\" --prefix", Critical),
        ("etcdctl defrag --endpoints=https://127.0.0.1:2379", High),
        (
            "etcdctl snapshot restore snap.db --data-dir /var/lib/etcd-new",
            High,
        ),
        ("kafka-topics --bootstrap-server localhost:9092 --list", Low),
        (
            "kafka-topics --bootstrap-server localhost:9092 --delete --topic orders",
            Critical,
        ),
        (
            "kafka-consumer-groups --bootstrap-server k:9092 --group g --reset-offsets --to-earliest --all-topics --execute",
            High,
        ),
        ("rabbitmqctl list_queues", Low),
        ("rabbitmqctl purge_queue orders", Critical),
        ("vault kv get secret/db", Medium),
        ("vault status", Low),
        ("vault secrets disable kv/", Critical),
        ("consul kv delete -recurse app/", High),
        ("nomad job stop -purge web", High),
        ("nomad job plan web.nomad", Low),
    ];
    let bad = mismatches(rows);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Hosts: network, processes, users, disks, with their read-only forms.
#[test]
fn hosts() {
    let rows: &[(&str, RiskLevel)] = &[
        ("ip addr show", Low),
        ("ip route", Low),
        ("ip route add 10.0.0.0/8 via 10.1.1.1", High),
        ("ip route del default", High),
        ("ip link set eth0 down", High),
        ("firewall-cmd --list-all", Low),
        ("firewall-cmd --permanent --add-port=8080/tcp", High),
        ("firewall-cmd --panic-on", High),
        ("kill -0 1234", Low),
        ("kill 1234", Medium),
        ("kill -9 1234", High),
        ("kill -s KILL 4242", High),
        ("kill -9 -1", High),
        ("pkill -9 nginx", High),
        ("pgrep -f nginx", Low),
        ("useradd -m deploy", Medium),
        ("userdel -r bob", High),
        ("passwd -S bob", Low),
        ("fdisk -l", Low),
        ("fdisk /dev/sdb", Critical),
        ("parted -l", Low),
        ("parted /dev/sda print", Low),
        ("parted -s /dev/sdb mklabel gpt", Critical),
        ("sgdisk -p /dev/sda", Low),
        ("sgdisk --zap-all /dev/sdb", Critical),
        ("wipefs /dev/sdb", Low),
        ("wipefs --no-act -a /dev/sdb", Low),
        ("wipefs -a /dev/sdb", Critical),
        ("mdadm --detail /dev/md0", Low),
        ("mdadm --zero-superblock /dev/sdb1", Critical),
        ("cryptsetup luksDump /dev/sdb1", Low),
        ("cryptsetup luksFormat /dev/sdb1", Critical),
        ("lvs", Low),
        ("zpool status", Low),
        ("zfs rollback tank/db@monday", High),
        ("rsync -avn --delete src/ dst/", Low),
        ("rsync -av --delete src/ dst/", High),
        ("rclone ls remote:bucket", Low),
        ("rclone sync ./site remote:bucket", High),
        ("rclone purge remote:bucket/old", Critical),
        ("find /var/log -name '*.gz' -exec rm -f {} \\;", High),
        ("find / -delete", Critical),
        ("cat /dev/sda", Medium),
    ];
    let bad = mismatches(rows);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Commands inside commands, inline scripts and config management: rated
/// by what they run; what cannot be read is at least HIGH.
#[test]
fn commands_inside_commands() {
    let rows: &[(&str, RiskLevel)] = &[
        (
            "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"x\"])'",
            Low,
        ),
        (
            "python3 -c 'import shutil; shutil.rmtree(\"/var/lib/postgresql\")'",
            Critical,
        ),
        ("python3 -c 'import os; os.system(\"reboot\")'", High),
        (
            "python3 -c \"exec(__import__('base64').b64decode('cm0='))\"",
            High,
        ),
        ("perl -e 'system(\"iptables -F\")'", High),
        ("perl -pi -e 's/foo/bar/' app.conf", Medium),
        ("ruby -e 'puts 1+1'", Low),
        (
            "node -e 'require(\"child_process\").execSync(\"shutdown -h now\")'",
            High,
        ),
        ("awk -F: '{print $1}' /etc/passwd", Low),
        ("awk 'BEGIN{system(\"rm -rf /\")}'", Critical),
        ("awk '{print > \"/etc/hosts\"}' x", High),
        ("docker run --rm busybox ls /", Medium),
        (
            "docker run --privileged --rm -v /dev:/dev ubuntu dd if=/dev/zero of=/dev/sdb bs=1M",
            Critical,
        ),
        ("docker run --rm --pid=host alpine ps", High),
        (
            "kubectl run tmp --image=busybox --restart=Never -- rm -rf /data",
            Critical,
        ),
        ("at now + 1 minute <<< 'rm -rf /srv/app'", High),
        ("tmux new -d 'rm -rf /tmp/x'", High),
        ("ansible web -m ping", Low),
        ("ansible all -m shell -a 'rm -rf /tmp/cache'", High),
        ("ansible all -m shell -a 'rm -rf /var/lib/mysql'", Critical),
        ("ansible-playbook site.yml --check", Low),
        ("ansible-playbook site.yml", High),
        ("salt '*' test.ping", Low),
        ("salt '*' cmd.run 'systemctl restart nginx'", High),
        ("pulumi preview", Low),
        ("pulumi up --yes", High),
        ("pulumi destroy --yes --stack prod", Critical),
        ("gdb -p 1234 -batch -ex 'call system(\"id\")'", High),
    ];
    let bad = mismatches(rows);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// LOW means nothing can change and nothing can run.
#[test]
fn low_runs_nothing() {
    let rows: &[(&str, RiskLevel)] = &[
        ("sed -n '1e id' notes.txt", High),
        ("sed 's/x/id/e' notes.txt", High),
        ("sed -n 'w /tmp/out' notes.txt", Medium),
        ("sed -n '/error/p' /var/log/syslog", Low),
        ("sort -o out.txt in.txt", Medium),
        ("sort in.txt", Low),
        ("git -c core.fsmonitor='touch /tmp/pwn' status", High),
        ("git -c alias.x='!id' x", High),
        ("git log --output=/tmp/log.txt", Medium),
        ("psql -c 'select 1' -c '\\! id'", High),
        ("test -v 'a[$(id)]'", High),
        (
            "aws ec2 terminate-instances --instance-ids i-1 --dry-run --no-dry-run",
            Critical,
        ),
        ("kubectl get secret db -o yaml", Medium),
        ("kubectl config view --raw", Medium),
        ("kubectl delete --raw /api/v1/namespaces/prod", Critical),
        (
            "tar --checkpoint=1 --checkpoint-action=exec=id -cf /dev/null x",
            High,
        ),
        ("rsync -e 'sh -c id' a b:", High),
        ("rsync -e 'ssh -p 2222' a b:", Medium),
        // `--help` is LOW only for a CLI that answers it itself
        ("kubectl delete ns prod --help", Low),
        ("aws ec2 terminate-instances help", Low),
        ("bash deploy.sh --help", High),
        ("python3 manage.py flush --help", High),
        ("rm -rf / --help", Critical),
        ("sudo rm -rf /srv --help", Critical),
        ("mytool destroy --help", Critical),
        ("git clean -n", Low),
        ("git -c clean.requireForce=false clean -xd", High),
        ("export AWS_PROFILE=$P; aws s3 cp a s3://b/a", High),
        ("AWS_PROFILE=prod aws s3 cp a s3://b/a", High),
        ("AWS_PROFILE=prod aws s3 ls", Low),
        (
            "terraform workspace select prod && terraform apply -auto-approve",
            High,
        ),
        ("cd / ; cd /tmp; cd - ; rm -rf etc", High),
        ("[[ -f /etc/hosts ]]", Low),
        ("[[ 'a[$(id)]' -eq 1 ]]", High),
        ("vi +':!id' notes.txt", High),
    ];
    let bad = mismatches(rows);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Tools no rule names: the verb lexicon, with wide objects, production
/// names and dry runs.
#[test]
fn tools_no_rule_names() {
    let rows: &[(&str, RiskLevel)] = &[
        (
            "heroku apps:destroy --app acme-web --confirm acme-web",
            Critical,
        ),
        ("flyctl apps list", Low),
        ("flyctl apps destroy my-app --yes", Critical),
        ("openstack server delete web-1", Critical),
        ("openstack server list", Low),
        ("firebase firestore:delete --all-collections", Critical),
        ("mc rb --force myminio/backups", Critical),
        ("mc ls myminio", Low),
        ("argocd app list", Low),
        ("velero backup delete nightly-2024", High),
        ("cf delete-space dev", Critical),
        ("gh repo delete acme/old --yes", Critical),
        ("restic forget --prune --keep-last 5", High),
        ("pg_ctl stop -D /var/lib/postgresql/data", High),
        ("frobnicate --now", Medium),
        ("frobnicate deploy-prod", High),
        ("aliyun ecs DeleteInstance --InstanceId i-123", Critical),
        ("http DELETE api.example.com/users/1", High),
        ("http GET api.example.com/users", Low),
        ("curl -X DELETE http://localhost:9200/_all", Critical),
        (
            "curl -XPOST 'http://es:9200/logs/_delete_by_query' -d '{\"query\":{\"match_all\":{}}}'",
            Critical,
        ),
        ("velero restore create --from-backup nightly --dry-run", Low),
    ];
    let bad = mismatches(rows);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Globs, the working directory and pipes of paths: a target hidden by the
/// shell is rated at its worst.
#[test]
fn globs_and_the_working_directory() {
    let rows: &[(&str, RiskLevel)] = &[
        ("/bin/r? -rf /", Critical),
        ("/usr/bin/[r]m -rf /srv/data", Critical),
        ("/???/?m -rf /tmp/x", High),
        ("/opt/tool*/bin/run --all", High),
        ("rm -rf /e*c", Critical),
        ("rm -rf /[e]tc", Critical),
        ("rm -rf '/e*c'", High),
        ("cd /etc && rm -rf *", Critical),
        ("cd / && rm -rf etc", Critical),
        ("cd /tmp && rm -rf build", High),
        ("cd $DIR && rm -rf *", High),
        ("find /etc | xargs rm -rf", Critical),
        ("find /tmp/build -name '*.o' | xargs rm -f", Medium),
        (
            "kubectl config use-context prod-eu && kubectl rollout restart deploy/api -n payments",
            High,
        ),
        (
            "kubectx prod-eu; kubectl scale deploy/api --replicas=1",
            High,
        ),
        ("ssh db-prod-1 'sudo systemctl restart postgresql'", High),
        ("ssh db-prod-1 'df -h'", Medium),
    ];
    let bad = mismatches(rows);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// SQL is parsed: literals and comments never count; side effects do.
#[test]
fn sql_parsed() {
    let rows: &[(&str, RiskLevel)] = &[
        (
            "psql -c \"SELECT 'DROP TABLE ' || tablename FROM pg_tables\"",
            Low,
        ),
        (
            "psql -c \"SELECT * FROM audit WHERE action = 'TRUNCATE'\"",
            Low,
        ),
        ("psql -c 'SELECT 1 -- DROP TABLE users'", Low),
        (
            "psql -c 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity'",
            High,
        ),
        ("psql -c 'DELETE FROM sessions WHERE 1=1'", Critical),
        ("psql -c 'UPDATE users SET admin = true'", Critical),
        (
            "mysql -e \"SELECT * FROM users INTO OUTFILE '/tmp/u.csv'\"",
            High,
        ),
        ("psql shop <<< 'DROP TABLE sessions'", Critical),
        ("echo 'TRUNCATE TABLE events;' | mysql analytics", Critical),
        ("sqlite3 app.db .tables", Low),
        ("sqlite3 app.db '.shell rm -rf /srv'", Critical),
        ("psql -c '\\! rm -rf /var/lib/postgresql'", Critical),
        (
            "psql -At -c \"SELECT format('DROP TABLE %I;', tablename) FROM pg_tables\" shop | psql shop",
            Critical,
        ),
        (
            "wrangler d1 execute prod-db --command=\"SELECT count(*) FROM users\"",
            Low,
        ),
        (
            "wrangler d1 execute prod-db --command=\"DROP TABLE users\"",
            Critical,
        ),
    ];
    let bad = mismatches(rows);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The policy's production lists, one per kind of scope: a glob in
/// `production_profiles` names a profile, not a host.
#[test]
fn production_lists_by_kind() {
    let yaml = "safety:
  production_profiles: [acme-live]
  production_projects: [billing-*]
  production_hosts: [db-main-*]
  production_stacks: [main]
";
    let policy = match LoadedPolicy::load(Some(("kinds.yaml", yaml))) {
        Ok(p) => p,
        Err(e) => panic!("the policy must load: {e}"),
    };
    let rows: &[(&str, RiskLevel)] = &[
        ("aws --profile acme-live s3 cp a s3://b/a", High),
        ("aws --profile acme-dev s3 cp a s3://b/a", Medium),
        ("AWS_PROFILE=acme-live aws s3 cp a s3://b/a", High),
        (
            "gcloud --project billing-eu compute instances start vm-1 --zone z",
            High,
        ),
        (
            "gcloud --project db-main-1 compute instances start vm-1 --zone z",
            Medium,
        ),
        (
            "psql -h db-main-3 -c 'UPDATE t SET a = 1 WHERE id = 2'",
            High,
        ),
        ("psql -h db-main-3 -c 'SELECT 1'", Low),
        ("ssh db-main-2 'sudo systemctl restart postgresql'", High),
        ("pulumi refresh --stack main --yes", High),
        ("pulumi refresh --stack dev --yes", Medium),
        ("TF_WORKSPACE=main terraform import aws_s3_bucket.b b", High),
    ];
    let mut bad = Vec::new();
    for &(line, want) in rows {
        match policy.rules.classify(line, &ClassifyContext::default()) {
            Ok(c) if c.risk == want => {}
            Ok(c) => bad.push(format!(
                "{line:?}: want {want}, got {} ({})",
                c.risk,
                why(&c)
            )),
            Err(e) => bad.push(format!("{line:?}: {e}")),
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// A read-only exception cannot be used to hide a change: each of these
/// once matched a built-in exception (`override`) or a read rule and came
/// out LOW, with the change beside the read-only word.
#[test]
fn read_only_exceptions_cannot_hide_a_change() {
    let at_least: &[(&str, RiskLevel)] = &[
        ("dd if=/dev/zero of=/dev/null of=/dev/sda", Critical),
        ("kill -9 1 -0", High),
        ("sgdisk -d 1 /dev/sda", Critical),
        ("sgdisk -s /dev/sda", Critical),
        ("sfdisk /dev/sdb < layout.sfdisk", Critical),
        ("fdisk /dev/sdb", Critical),
        ("wipefs --offset 0x438 /dev/sdb", Critical),
        ("passwd -S -d root", Critical),
        (
            "ansible all -m setup -m copy -a 'src=x dest=/etc/sudoers'",
            High,
        ),
        ("salt '*' pkg.remove nginx test=True", High),
        ("pulumi up --show-secrets --yes", High),
        ("terraform apply -refresh-only -destroy", Critical),
        ("losetup -l -d /dev/loop3", High),
        ("multipath -ll -F", High),
        ("kamal app exec 'rm -rf /data' logs", High),
    ];
    let bad = mismatches_in(at_least, &ClassifyContext::default(), true);
    assert!(bad.is_empty(), "{bad:#?}");
    // The read-only forms themselves stay LOW.
    let reads: &[(&str, RiskLevel)] = &[
        ("dd if=/dev/sda of=/dev/null bs=1M", Low),
        ("kill -0 1234", Low),
        ("sgdisk -p /dev/sda", Low),
        ("gdisk -l /dev/sda", Low),
        ("sfdisk -l /dev/sda", Low),
        ("wipefs /dev/sdb", Low),
        ("passwd -S bob", Low),
        ("salt '*' state.apply test=True", Low),
        ("pulumi stack output --show-secrets", Medium),
        ("losetup -a", Low),
        ("multipath -ll", Low),
        // a program-wide read rule vouches for its arguments: they are data
        ("echo 'rm -rf /'", Low),
        ("grep -r 'kubectl delete' .", Low),
    ];
    let bad = mismatches(reads);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Found by the third held-out set: what a tool no rule knows runs after
/// `--`, and what a client runs from its standard input, were not rated.
#[test]
fn commands_after_double_dash_and_on_standard_input() {
    let rows: &[(&str, RiskLevel)] = &[
        // An unknown tool's `--` tail is rated as a command.
        ("mytool run -- rm -rf /", Critical),
        (
            "acme-env exec --stage prod -- kubectl delete namespace payments",
            Critical,
        ),
        ("mytool run -- ls -la", Medium),
        // redis-cli: each line of standard input is a command.
        ("redis-cli -h cache-staging <<< FLUSHDB", Critical),
        ("printf 'FLUSHALL\\n' | redis-cli", Critical),
        ("echo PING | redis-cli", Low),
        ("redis-cli <<< 'GET session:42'", Low),
        ("cat cmds.txt | redis-cli", High),
        ("redis-cli < cmds.txt", High),
        // With a command on the line, standard input is data (`-x`).
        ("redis-cli -x SET blob < file.bin", Medium),
        // mongosh: standard input is the script.
        (
            "mongosh mongodb://db-1/app <<< 'db.dropDatabase()'",
            Critical,
        ),
        (
            "mongosh --quiet <<< 'db.orders.find({status: \"new\"})'",
            Low,
        ),
        ("mongosh < migrate.js", High),
        // Beside --eval, --shell goes on to run standard input.
        (
            "mongosh --eval 'db.version()' --shell <<< 'db.dropDatabase()'",
            Critical,
        ),
        // sqlplus: SQL on standard input, scripts by `@`.
        (
            "sqlplus -s / as sysdba <<< 'select status from v$instance;'",
            Low,
        ),
        ("sqlplus -s / as sysdba <<< 'shutdown immediate'", High),
        ("sqlplus -s scott/tiger@db @/opt/sql/purge.sql", High),
        (
            "sqlplus -s scott/tiger@db <<< 'DROP TABLE audit_log;'",
            Critical,
        ),
    ];
    let bad = mismatches(rows);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Found by the third held-out set: a change made on many hosts at once, a
/// script the line does not show, and permission changes.
#[test]
fn fleets_scripts_and_permissions() {
    let rows: &[(&str, RiskLevel)] = &[
        // ansible on every host (`all`, `*`) with a module that changes.
        (
            "ansible all -i inventory/staging -m service -a 'name=nginx state=restarted' --become",
            High,
        ),
        ("ansible -i inv '*' -m copy -a 'src=a dest=/tmp/a'", High),
        ("ansible all -m ping", Low),
        (
            "ansible web01 -m service -a 'name=nginx state=restarted'",
            Medium,
        ),
        // Several groups, or all but some, are a fleet too.
        (
            "ansible 'all:!db' -m service -a 'name=nginx state=restarted'",
            High,
        ),
        (
            "ansible 'web:db' -m service -a 'name=nginx state=restarted'",
            High,
        ),
        (
            "ansible '~web0[1-3]' -m service -a 'name=nginx state=restarted'",
            High,
        ),
        // Parallel shells: the payload is rated; a change is at least HIGH.
        ("pdsh -w web[01-10] uptime", Medium),
        ("pdsh -R ssh -w web[01-10] 'systemctl restart nginx'", High),
        ("clush -w node[1-4] -b 'df -h /var'", Medium),
        ("clush -a 'rm -rf /'", Critical),
        ("pssh -h hosts.txt -i 'reboot'", High),
        // Scripts: the line does not show what runs.
        ("./deploy.sh", High),
        ("/opt/scripts/reindex.sh", High),
        (
            "nohup /opt/scripts/reindex.sh > /var/log/reindex.log 2>&1 &",
            High,
        ),
        ("python3 manage.py showmigrations", High),
        ("scripts/rotate-logs", High),
        ("bash -- deploy.sh", High),
        ("bash -x -- deploy.sh staging", High),
        ("./cleanup.sh --delete-all-clusters", Critical),
        ("python3 --version", Low),
        (
            "kafka-topics.sh --bootstrap-server localhost:9092 --list",
            Low,
        ),
        // Permissions and ownership.
        ("chmod +x deploy.sh", High),
        ("chown -R www-data:www-data /var/www/html", High),
        ("find . -name '*.sh' -exec chmod +x {} \\;", High),
        ("chown -R nobody:nogroup /srv/app", Critical),
        ("chmod --help", Low),
    ];
    let bad = mismatches(rows);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Found by the third held-out set: production named in what a change acts
/// on, and words an unknown tool uses.
#[test]
fn production_names_and_unknown_tools_words() {
    let rows: &[(&str, RiskLevel)] = &[
        // A change whose target is named production (not a secret read).
        (
            "aws rds reboot-db-instance --db-instance-identifier db-prod-1",
            High,
        ),
        (
            "aws autoscaling set-desired-capacity --auto-scaling-group-name web-prod-asg --desired-capacity 0",
            High,
        ),
        (
            "aws rds reboot-db-instance --db-instance-identifier db-staging-1",
            Medium,
        ),
        ("vault kv get -field=password secret/prod/db", Medium),
        ("terraform plan -var-file=prod.tfvars", Low),
        // A namespace or context whose name says production.
        (
            "kubectl scale deploy web -n acme-api-production --replicas=3",
            High,
        ),
        (
            "kubectl scale deploy web -n acme-api-staging --replicas=3",
            Medium,
        ),
        ("kubectl scale deploy/api --replicas=0 -n prod-tools", High),
        // A flag given a value is a setting: `--login=jdoe` is no verb.
        ("ipa user-find --login=jdoe", Low),
        // ...but a flag's verb still counts when no other verb is found.
        ("iamctl user --create=bob", Critical),
        ("acmectl --delete=db-1", High),
        // A destroy or disrupt verb later on the line still counts.
        ("wg set wg0 peer abc remove", High),
        (
            "ipmitool -I lanplus -H bmc-web-07 -U admin -E chassis power off",
            High,
        ),
        ("acmectl vm snapshot create 42 --name pre-upgrade", Medium),
        // Verbs and objects.
        ("fail2ban-client set sshd banip 203.0.113.45", High),
        ("tiup cluster display tidb-staging", Low),
        ("ipa group-add-member admins --users=jdoe", Critical),
        // Environment setters run their command.
        (
            "envdir /etc/app/env kubectl delete namespace payments",
            Critical,
        ),
        (
            "chpst -u app -e /etc/app/env rm -rf /var/lib/postgresql",
            Critical,
        ),
        ("direnv exec . terraform destroy -auto-approve", Critical),
        // ufw's own dry run.
        ("ufw --dry-run delete allow 22/tcp", Low),
        ("ufw delete allow 22/tcp", High),
    ];
    let bad = mismatches(rows);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Found by the third held-out set: the LDAP clients, and a long flag that
/// is a verb and its object.
#[test]
fn directory_tools_and_action_flags() {
    let rows: &[(&str, RiskLevel)] = &[
        (
            "ldapsearch -x -H ldap://ldap.acme.internal -b 'ou=People,dc=acme,dc=com' '(uid=jdoe)' cn",
            Low,
        ),
        (
            "ldapdelete -n -x -D 'cn=admin,dc=acme,dc=com' -W 'uid=u14,ou=People,dc=acme,dc=com'",
            Low,
        ),
        (
            "ldapdelete -x -D 'cn=admin,dc=acme,dc=com' -W 'uid=u14,ou=People,dc=acme,dc=com'",
            High,
        ),
        (
            "ldapdelete -r -x -D 'cn=admin,dc=acme,dc=com' -W 'ou=People,dc=acme,dc=com'",
            Critical,
        ),
        (
            "ldapmodify -x -D 'cn=admin,dc=acme,dc=com' -W -f add-to-admins.ldif",
            High,
        ),
        (
            "ldappasswd -x -D 'cn=admin,dc=acme,dc=com' -W -S 'uid=jdoe,ou=People,dc=acme,dc=com'",
            Critical,
        ),
        // `--accept-routes`: accept (a change) of routes (guards access).
        ("tailscale up --accept-routes", High),
        ("meshctl join --add-role=admin", Critical),
        ("meshctl join --add-roles", Critical),
        ("meshctl status --show-routes", Low),
    ];
    let bad = mismatches(rows);
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Found by the fourth held-out set: mkfs's own dry run, deleting backups
/// through `find -exec`, and verbs of tools no rule names.
#[test]
fn dry_run_mkfs_backups_and_more_verbs() {
    let rows: &[(&str, RiskLevel)] = &[
        ("mkfs.ext4 -n /dev/sdc1", Low),
        ("mke2fs -n /dev/sdc1", Low),
        ("mkfs.xfs -N /dev/sdd", Low),
        ("mkfs.ext4 /dev/sdc1", Critical),
        ("find /backups -name '*.tar.gz' -exec rm -f {} +", Critical),
        ("find /var/backups/pg -mtime +30 -exec rm {} \\;", Critical),
        ("find /tmp -name '*.tmp' -exec rm -f {} +", High),
        (
            "repmgr -f /etc/repmgr.conf standby switchover --siblings-follow",
            High,
        ),
        ("racadm -r 10.0.0.21 -u root serveraction powerdown", High),
        (
            "radosgw-admin key create --uid=ci-bot --key-type=s3 --gen-access-key --gen-secret",
            Critical,
        ),
        ("pdnsutil delete-zone acme.com", Critical),
    ];
    let bad = mismatches(rows);
    assert!(bad.is_empty(), "{bad:#?}");
}
