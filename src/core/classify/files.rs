//! The local files a command line runs or reads: scripts, manifests,
//! values, SQL, kubeconfigs, input redirections. A plan hashes them at
//! submission and a run checks them before each step, so an edited script
//! never runs under the old approval.
//!
//! Found with the classifier's own walk (wrappers unwrapped: `sudo ./x.sh`,
//! `bash -c 'psql -f q.sql'`), from a small table of what each tool reads.
//! Files a remote command names (`ssh host …`, `kubectl exec … --`, `docker
//! exec`, `chroot`, `nsenter`) are not local and are left out.
//!
//! Pure: it names the files; the edge reads them.

use super::shell::{SimpleCommand, Word};

/// A local file a command runs or reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUse {
    /// The path as the command names it (relative to the working
    /// directory, or absolute).
    pub path: String,
    /// The path depends on an expansion (`$F`): only known at run time.
    pub dynamic: bool,
    /// What the command does with it, for messages: `runs`, `applies`, …
    pub role: &'static str,
}

/// Shells: `sh FILE` runs FILE, `sh -c '…'` runs the string (unwrapped as
/// a wrapper, not a file).
const SHELLS: &[&str] = &["sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "fish"];

/// Interpreters and the flags whose value is code (then there is no file).
const INTERPRETERS: &[(&str, &[&str])] = &[
    ("python", &["-c", "-m"]),
    ("python2", &["-c", "-m"]),
    ("python3", &["-c", "-m"]),
    ("perl", &["-e", "-E"]),
    ("ruby", &["-e"]),
    ("node", &["-e", "--eval", "-p", "--print"]),
    ("php", &["-r"]),
    ("pwsh", &["-c", "-Command", "-EncodedCommand"]),
    ("Rscript", &["-e"]),
];

/// Flags whose value is a local file a tool reads, per tool.
const FILE_FLAGS: &[(&str, &[&str], &str)] = &[
    (
        "kubectl",
        &["-f", "--filename", "-k", "--kustomize", "--kubeconfig"],
        "applies",
    ),
    ("helm", &["-f", "--values", "--kubeconfig"], "reads"),
    ("psql", &["-f", "--file"], "runs"),
    ("terraform", &["-var-file"], "reads"),
    ("docker", &["--env-file", "-f", "--file"], "reads"),
    ("podman", &["--env-file", "-f", "--file"], "reads"),
    ("docker-compose", &["-f", "--file", "--env-file"], "reads"),
    (
        "ansible-playbook",
        &["-i", "--inventory", "-e", "--extra-vars"],
        "reads",
    ),
    ("make", &["-f", "--file", "--makefile"], "runs"),
];

/// Where the system's own programs live: a program there is not a file of
/// the plan's.
const SYSTEM_DIRS: &[&str] = &[
    "/bin/",
    "/sbin/",
    "/usr/bin/",
    "/usr/sbin/",
    "/usr/local/bin/",
    "/usr/local/sbin/",
];

/// The local files one simple command (after unwrapping) runs or reads.
pub(crate) fn file_uses(program: &str, words: &[Word], cmd: &SimpleCommand) -> Vec<FileUse> {
    let mut out = Vec::new();
    let push = |out: &mut Vec<FileUse>, w: &Word, text: &str, role| {
        if is_local(text) {
            out.push(FileUse {
                path: text.to_owned(),
                dynamic: w.dynamic,
                role,
            });
        }
    };
    for input in &cmd.inputs {
        push(&mut out, input, &input.text, "reads");
    }
    let Some(first) = words.first() else {
        return out;
    };
    let args = &words[1..];
    if first.text.contains('/') && !SYSTEM_DIRS.iter().any(|d| first.text.starts_with(d)) {
        push(&mut out, first, &first.text, "runs");
    }
    if SHELLS.contains(&program) || matches!(program, "source" | ".") {
        let has_inline = args.iter().any(|a| {
            a.text == "-c"
                || (a.text.starts_with('-') && !a.text.starts_with("--") && a.text.contains('c'))
        });
        if !has_inline && let Some(script) = args.iter().find(|a| !a.text.starts_with('-')) {
            push(&mut out, script, &script.text, "runs");
        }
    }
    if let Some((_, inline)) = INTERPRETERS.iter().find(|(p, _)| *p == program) {
        let has_inline = args.iter().any(|a| {
            inline
                .iter()
                .any(|f| a.text == *f || a.text.starts_with(&format!("{f}=")))
        });
        if !has_inline && let Some(script) = args.iter().find(|a| !a.text.starts_with('-')) {
            push(&mut out, script, &script.text, "runs");
        }
    }
    if program == "ansible-playbook" {
        let mut skip = false;
        for a in args {
            if skip {
                skip = false;
            } else if a.text.starts_with('-') {
                skip = !a.text.contains('=');
            } else {
                push(&mut out, a, &a.text, "runs");
            }
        }
    }
    if let Some((_, flags, role)) = FILE_FLAGS.iter().find(|(p, _, _)| *p == program) {
        let mut i = 0;
        while let Some(a) = args.get(i) {
            i += 1;
            for f in *flags {
                let value = if a.text == *f {
                    i += 1;
                    args.get(i - 1).map(|v| (v, v.text.as_str()))
                } else {
                    a.text
                        .strip_prefix(*f)
                        .and_then(|r| r.strip_prefix('='))
                        .map(|v| (a, v))
                };
                if let Some((w, v)) = value {
                    // `-e @vars.yml` (ansible) names a file; `-e k=v` does not.
                    let v = v.strip_prefix('@').unwrap_or(v);
                    if !(program == "ansible-playbook" && (v.contains('=') || v.contains(','))) {
                        push(&mut out, w, v, role);
                    }
                    break;
                }
            }
        }
    }
    if program == "aws" {
        for a in args {
            for prefix in ["file://", "fileb://"] {
                if let Some(idx) = a.text.find(prefix) {
                    push(&mut out, a, &a.text[idx + prefix.len()..], "reads");
                }
            }
        }
    }
    out
}

/// Whether a word can name a local file: not standard input, not a URL.
fn is_local(text: &str) -> bool {
    !text.is_empty() && text != "-" && !text.contains("://")
}

/// Wrappers whose command runs somewhere else: files it names are not
/// local.
pub(crate) fn is_remote(label: &str) -> bool {
    let program = label.split_whitespace().next().unwrap_or_default();
    matches!(program, "ssh" | "chroot" | "nsenter")
        || label.starts_with("kubectl exec")
        || label.starts_with("kubectl debug")
        || label.ends_with(" exec")
}

#[cfg(test)]
mod tests {
    use crate::core::classify::ClassifyContext;
    use crate::core::policy::LoadedPolicy;

    fn files(line: &str) -> Vec<(String, &'static str)> {
        let policy = LoadedPolicy::embedded().unwrap();
        policy
            .rules
            .files(line, &ClassifyContext::default())
            .into_iter()
            .map(|f| (f.path, f.role))
            .collect()
    }

    #[test]
    fn the_files_a_command_runs_or_reads() {
        let cases: &[(&str, &[&str])] = &[
            ("sh deploy.sh", &["deploy.sh"]),
            ("bash -e ./fix.sh now", &["./fix.sh"]),
            ("sudo ./scripts/fix.sh --now", &["./scripts/fix.sh"]),
            ("bash -c 'psql -f q.sql db'", &["q.sql"]),
            ("kubectl apply -f app.yaml -n web", &["app.yaml"]),
            (
                "kubectl apply --filename=app.yaml -k overlays/prod",
                &["app.yaml", "overlays/prod"],
            ),
            ("kubectl --kubeconfig k.yaml get pods", &["k.yaml"]),
            ("helm upgrade web ./chart -f values.yaml", &["values.yaml"]),
            ("mysql db < dump.sql", &["dump.sql"]),
            ("python3 tool.py --dry", &["tool.py"]),
            ("source ./env.sh", &["./env.sh"]),
            (". ./env.sh", &["./env.sh"]),
            (
                "aws ec2 run-instances --user-data file://init.sh",
                &["init.sh"],
            ),
            ("/opt/tools/rotate --all", &["/opt/tools/rotate"]),
            ("terraform apply -var-file=prod.tfvars", &["prod.tfvars"]),
            (
                "ansible-playbook -i hosts.ini site.yml -e @vars.yml",
                &["site.yml", "hosts.ini", "vars.yml"],
            ),
            // Nothing local: inline code, standard input, a URL, the
            // system's programs, a remote command.
            ("python3 -c 'print(1)'", &[]),
            ("kubectl apply -f -", &[]),
            ("kubectl apply -f https://example.com/app.yaml", &[]),
            ("/usr/bin/id -u", &[]),
            ("ssh web1 ./remote.sh", &[]),
            ("kubectl exec -it api -- sh /tmp/x.sh", &[]),
            ("cat /etc/hosts", &[]),
        ];
        for (line, want) in cases {
            let got: Vec<String> = files(line).into_iter().map(|(p, _)| p).collect();
            assert_eq!(&got, want, "{line}");
        }
    }
}
