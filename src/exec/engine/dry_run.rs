//! The dry-run form of a command line: the same command with the flag
//! that makes its tool only show what it would change.

/// The native dry-run form of a simple mutating command, if it has one:
/// kubectl `--dry-run=server`, `aws ec2 … --dry-run`, `terraform plan`.
/// Compound commands (pipes, lists, substitutions, redirections) have none.
///
/// The form must not be able to run for real, so it is made only from
/// (tool, verb, flags) known to honour the dry-run flag:
/// - only plain words (letters, digits and `-_./=:,@%+`), so no quoting,
///   comment (`#`) or expansion can hide the added flag;
/// - no `--` (after which the flag would be an argument), and no dry-run
///   flag of the command's own (`--dry-run=none`, `--no-dry-run`: a flag
///   the line sets or overrides itself);
/// - kubectl: the verbs below, found after kubectl's own global flags,
///   without a flag that bypasses the dry run (`--raw` sends the request
///   as it is; `--edit` opens an editor) or a subcommand of `apply` that is
///   not a plain apply;
/// - aws: `ec2` operations only, without `--cli-input-json|yaml` (which
///   can carry `DryRun: false`).
pub fn dry_run_form(command: &str) -> Option<String> {
    let c = command.trim();
    let plain = |ch: char| ch.is_ascii_alphanumeric() || " -_./=:,@%+".contains(ch);
    if !c.chars().all(plain) {
        return None;
    }
    let words: Vec<&str> = c.split_whitespace().collect();
    if words.iter().any(|w| *w == "--" || w.contains("dry-run")) {
        return None;
    }
    match words.as_slice() {
        ["kubectl", rest @ ..] => kubectl_dry_run(rest).then(|| format!("{c} --dry-run=server")),
        ["aws", "ec2", rest @ ..]
            if !rest.is_empty()
                && !rest
                    .iter()
                    .any(|w| flag_is(w, "--cli-input-json") || flag_is(w, "--cli-input-yaml")) =>
        {
            Some(format!("{c} --dry-run"))
        }
        ["terraform", "apply", rest @ ..] => Some(
            format!("terraform plan {}", rest.join(" "))
                .trim_end()
                .to_owned(),
        ),
        ["terraform", "destroy", rest @ ..] => Some(
            format!("terraform plan -destroy {}", rest.join(" "))
                .trim_end()
                .to_owned(),
        ),
        _ => None,
    }
}

/// Whether `word` is the flag `name`, alone or as `name=value`.
fn flag_is(word: &str, name: &str) -> bool {
    word == name
        || word
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('='))
}

/// kubectl's global flags that take a value, as they may come before the
/// verb (`kubectl --context prod delete …`).
const KUBECTL_GLOBAL_VALUE_FLAGS: &[&str] = &[
    "--kubeconfig",
    "--context",
    "--cluster",
    "--user",
    "-n",
    "--namespace",
    "-s",
    "--server",
    "--request-timeout",
    "-v",
];

/// The kubectl verbs whose mutations honour `--dry-run=server`.
const KUBECTL_DRY_RUN_VERBS: &[&str] = &[
    "apply",
    "create",
    "delete",
    "patch",
    "replace",
    "scale",
    "label",
    "annotate",
    "set",
    "autoscale",
    "expose",
];

/// Flags with which kubectl ignores `--dry-run`: `--raw` sends the request
/// as written (a real DELETE, POST or PUT), `--edit` runs an editor.
const KUBECTL_NO_DRY_RUN_FLAGS: &[&str] = &["--raw", "--edit"];

/// Whether kubectl's arguments (after `kubectl`) are a verb and flags known
/// to honour `--dry-run=server`.
fn kubectl_dry_run(args: &[&str]) -> bool {
    let mut i = 0;
    while let Some(w) = args.get(i) {
        if KUBECTL_GLOBAL_VALUE_FLAGS.contains(w) {
            i += 2;
        } else if KUBECTL_GLOBAL_VALUE_FLAGS.iter().any(|f| flag_is(w, f)) {
            i += 1;
        } else {
            break;
        }
    }
    let Some(verb) = args.get(i) else {
        return false;
    };
    if !KUBECTL_DRY_RUN_VERBS.contains(verb) {
        return false;
    }
    let rest = &args[i + 1..];
    if rest
        .iter()
        .any(|w| KUBECTL_NO_DRY_RUN_FLAGS.iter().any(|f| flag_is(w, f)))
    {
        return false;
    }
    // `apply edit-last-applied` opens an editor; `set-last-applied` and
    // `view-last-applied` are not an apply either.
    !(*verb == "apply" && rest.first().is_some_and(|w| w.ends_with("-last-applied")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_forms() {
        assert_eq!(
            dry_run_form("kubectl scale deployment api --replicas=5").as_deref(),
            Some("kubectl scale deployment api --replicas=5 --dry-run=server")
        );
        assert_eq!(
            dry_run_form("aws ec2 stop-instances --instance-ids i-1").as_deref(),
            Some("aws ec2 stop-instances --instance-ids i-1 --dry-run")
        );
        assert_eq!(
            dry_run_form("terraform apply -auto-approve").as_deref(),
            Some("terraform plan -auto-approve")
        );
        assert_eq!(
            dry_run_form("terraform destroy").as_deref(),
            Some("terraform plan -destroy")
        );
        assert_eq!(dry_run_form("kubectl get pods"), None);
        assert_eq!(dry_run_form("kubectl delete pod x; rm -rf /"), None);
        // Forms that would run for real, or could: none of them.
        for unsafe_form in [
            "kubectl delete ns prod # note",
            "kubectl delete ns prod --",
            "kubectl delete ns prod --dry-run=none",
            "aws ec2 terminate-instances --instance-ids i-1 --no-dry-run",
            "kubectl delete ns 'prod'",
            "kubectl delete ns prod\\",
            "kubectl delete ns \"$NS\"",
            "kubectl\tdelete ns prod\n",
            // kubectl ignores --dry-run with --raw: a real DELETE.
            "kubectl delete --raw /api/v1/namespaces/prod",
            "kubectl --context prod delete --raw=/api/v1/namespaces/prod",
            "kubectl create --raw /api/v1/namespaces -f ns.json",
            "kubectl replace --raw /api/v1/namespaces/prod -f ns.json",
            "kubectl create --edit -f x.yaml",
            "kubectl apply edit-last-applied deploy/api",
            "aws ec2 terminate-instances --cli-input-json file://x.json",
            "aws ec2",
        ] {
            assert_eq!(dry_run_form(unsafe_form), None, "{unsafe_form}");
        }
        assert_eq!(dry_run_form("systemctl restart app"), None);
        // Global flags before the verb are kubectl's own.
        assert_eq!(
            dry_run_form("kubectl --context staging -n web delete deploy api").as_deref(),
            Some("kubectl --context staging -n web delete deploy api --dry-run=server")
        );
        assert_eq!(
            dry_run_form("kubectl --kubeconfig=k.yaml get pods"),
            None,
            "a read has no dry-run form"
        );
    }
}
