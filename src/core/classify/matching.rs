//! Rule matching: subcommand paths, resources, the rest of the line as rule
//! regexes see it, dry-run flags, and the precedence that picks the rules
//! that decide.

use super::args::{Arg, ParsedArgs};
use super::ruleset::{RuleSet, Segment, Tool};
use super::shell::Word;

/// Picks the rules that set the level, from all that matched:
/// 1. the first matching user rule marked `override` sets it alone;
/// 2. otherwise the built-in level is the first matching built-in exception
///    (`override`), or else the highest matching built-in rule, and the level
///    is the highest of that and every matching user rule.
pub(crate) fn decide(set: &RuleSet, matched: &[(usize, bool)]) -> Vec<(usize, bool)> {
    let rule = |m: &(usize, bool)| &set.rules[m.0];
    if let Some(m) = matched
        .iter()
        .find(|m| rule(m).user && rule(m).override_level)
    {
        return vec![*m];
    }
    let mut pool: Vec<(usize, bool)> = match matched
        .iter()
        .find(|m| !rule(m).user && rule(m).override_level)
    {
        Some(m) => vec![*m],
        None => matched.iter().copied().filter(|m| !rule(m).user).collect(),
    };
    pool.extend(matched.iter().copied().filter(|m| rule(m).user));
    let Some(max) = pool.iter().map(|m| rule(m).level).max() else {
        return Vec::new();
    };
    pool.retain(|m| rule(m).level == max);
    pool
}

/// Matches a rule's subcommand paths against the leading positionals.
/// Returns the path length, and whether a dynamic word had to be assumed to
/// match (the worst case).
pub(crate) fn match_path(
    paths: &[Vec<Segment>],
    args: &[Word],
    path_words: &[usize],
) -> Option<(usize, bool)> {
    if paths.is_empty() {
        return Some((0, false));
    }
    for p in paths {
        if p.len() > path_words.len() {
            continue;
        }
        let mut assumed = false;
        let ok = p.iter().zip(path_words).all(|(seg, &i)| {
            if args[i].dynamic {
                assumed = true;
                true
            } else {
                seg.matches(&args[i].text)
            }
        });
        if ok {
            return Some((p.len(), assumed));
        }
    }
    None
}

/// The resources a command names: the word after the subcommand
/// (`pods,secrets`, `deploy/api`), and any later `kind/name` words.
pub(crate) fn match_resource(
    tool: &Tool,
    wanted: &[String],
    args: &[Word],
    after_path: &[usize],
) -> Option<bool> {
    for (n, &i) in after_path.iter().enumerate() {
        let w = &args[i];
        if w.dynamic {
            if n == 0 {
                return Some(true);
            }
            continue;
        }
        if n > 0 && !w.text.contains('/') {
            continue;
        }
        for piece in w.text.split(',') {
            let kind = piece.split('/').next().unwrap_or(piece);
            if kind.is_empty() {
                continue;
            }
            let kind = tool.canonical_resource(kind);
            if wanted.iter().any(|r| *r == *kind) {
                return Some(false);
            }
        }
    }
    None
}

/// The rest of a command line as rule regexes see it: every argument after
/// the subcommand path, one per line, flags as `name` or `name=value`, with
/// runs of whitespace inside an argument collapsed to one space, absolute
/// paths normalized.
pub(crate) fn render_rest(parsed: &ParsedArgs, args: &[Word], path: &[usize]) -> String {
    let mut out = String::with_capacity(args.iter().map(|w| w.text.len() + 1).sum());
    // Appends `text` with its runs of whitespace collapsed to one space.
    fn collapsed(out: &mut String, text: &str) {
        let mut first = true;
        for piece in text.split_whitespace() {
            if !first {
                out.push(' ');
            }
            out.push_str(piece);
            first = false;
        }
    }
    for item in &parsed.items {
        if matches!(item, Arg::Positional(i) if path.contains(i)) {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        match item {
            Arg::Positional(i) => {
                let t = args[*i].text.as_str();
                // `/etc/`, `//etc` and `/tmp/../etc` all name `/etc`.
                if t.len() > 1
                    && t.starts_with('/')
                    && (t.ends_with('/') || t.contains("/.") || t.contains("//"))
                {
                    collapsed(&mut out, &normalize_path(t));
                } else {
                    collapsed(&mut out, t);
                }
            }
            // `name=value`, collapsed as one argument.
            Arg::Flag { name, value, .. } => {
                collapsed(&mut out, name);
                if let Some(v) = value {
                    if name.ends_with(char::is_whitespace) {
                        out.push(' ');
                    }
                    out.push('=');
                    if v.starts_with(char::is_whitespace) && !v.trim_start().is_empty() {
                        out.push(' ');
                    }
                    collapsed(&mut out, v);
                }
            }
        }
    }
    out
}

/// The dry-run flag that applies, if the command asks for one explicitly.
/// The last spelling of the flag counts (`--dry-run=server --dry-run=none`
/// is not a dry run).
pub(crate) fn dry_run(
    tool: &Tool,
    parsed: &ParsedArgs,
    args: &[Word],
    path: &[usize],
) -> Option<String> {
    let first = path.first().map(|&i| args[i].text.as_str());
    tool.dry_run.iter().find_map(|spec| {
        if !spec.subcommands.is_empty()
            && !spec.subcommands.iter().any(|s| Some(s.as_str()) == first)
        {
            return None;
        }
        let negation = format!("--no-{}", spec.flag.trim_start_matches('-'));
        let (pos, (name, value, dynamic)) = parsed
            .flags()
            .enumerate()
            .filter(|(_, (n, _, _))| *n == spec.flag)
            .last()?;
        // `--dry-run … --no-dry-run` is not a dry run.
        if parsed.flags().skip(pos + 1).any(|(n, _, _)| n == negation) {
            return None;
        }
        match value {
            Some(v) if !dynamic && spec.values.iter().any(|x| x == v) => {
                Some(format!("{name}={v}"))
            }
            None if spec.bare => Some(name.to_owned()),
            _ => None,
        }
    })
}

/// `/usr/bin/kubectl` is `kubectl`.
pub(crate) fn basename(program: &str) -> &str {
    match program.rsplit_once('/') {
        Some((_, base)) if !base.is_empty() => base,
        _ => program,
    }
}

/// Resolves `.`, `..` and repeated slashes in an absolute path, without
/// touching the file system, so `/tmp/../etc/x` is seen as `/etc/x`.
pub(crate) fn normalize_path(p: &str) -> String {
    if !p.starts_with('/') {
        return p.to_owned();
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_lexically() {
        assert_eq!(normalize_path("/tmp/../etc//passwd"), "/etc/passwd");
        assert_eq!(normalize_path("/../../dev/sda"), "/dev/sda");
        assert_eq!(normalize_path("out.txt"), "out.txt");
        assert_eq!(normalize_path("/"), "/");
    }

    #[test]
    fn programs_are_known_by_their_base_name() {
        assert_eq!(basename("/usr/local/bin/kubectl"), "kubectl");
        assert_eq!(basename("kubectl"), "kubectl");
        assert_eq!(basename("./"), "./");
    }
}
