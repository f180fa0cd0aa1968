//! Shell parsing: one command line in, the simple commands it runs out.
//!
//! The line is parsed with a real bash grammar (`brush-parser`), never split on
//! whitespace. Every simple command is reported, wherever it stands: in
//! pipelines and lists, in `( … )` and `{ …; }`, in loops and conditionals, and
//! inside `$( … )`, backticks, process substitutions and expanding here-docs.
//! Words are unquoted to the text the program would see (`k''ubectl` is
//! `kubectl`); a word whose value is only known at run time is marked dynamic.
//!
//! This module decides nothing about risk, except to flag what it cannot see
//! through (a parse error, nesting beyond a limit), which the classifier
//! rates fail-closed.
//!
//! About 770 lines of code, then its unit tests: one grammar (words,
//! quotes, expansions, compound commands) kept in one place.

use brush_parser::ast;
use brush_parser::word::{WordPiece, WordPieceWithSource};
use brush_parser::{Parser, ParserOptions};
use compact_str::CompactString;

use super::plain::{lenient_commands, plain_list};
use super::unescape::{ansi_c_unescape, backquote_unescape};

/// Nesting deeper than this (`$( $( $( … ) ) )`, `sh -c "sh -c …"`) is not
/// followed; the classifier rates it at least HIGH.
pub(crate) const MAX_DEPTH: usize = 12;

/// One word of a command after quote removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// The text the program would receive. For a dynamic word this is the
    /// static text around the expansions, with each expansion left as written.
    pub text: CompactString,
    /// The word as written in the line.
    pub raw: CompactString,
    /// The value depends on an expansion (`$X`, `$(…)`, `` `…` ``, `$((…))`).
    pub dynamic: bool,
}

impl Word {
    pub(crate) fn literal(s: &str) -> Self {
        Word {
            text: s.into(),
            raw: s.into(),
            dynamic: false,
        }
    }
}

/// A simple command: its words (assignments removed), where it writes, and
/// whether something feeds its standard input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SimpleCommand {
    pub words: Vec<Word>,
    /// Output redirection targets (`> f`, `>> f`, `&> f`, `<> f`).
    pub outputs: Vec<Word>,
    /// Files read on standard input (`< f`).
    pub inputs: Vec<Word>,
    /// Standard input comes from a pipe, `<`, a here-doc or a here-string.
    pub stdin_fed: bool,
    /// Bodies of here-docs and here-strings fed to the command, when static.
    pub stdin_texts: Vec<String>,
    /// When standard input comes from a command whose output is not known:
    /// that command's literal arguments of several words and absolute
    /// paths, what its output may be made from (`psql -c "SELECT
    /// format('DROP TABLE %I;', …)" | psql`, `find /etc | xargs rm -rf`).
    pub stdin_from: Vec<String>,
    /// `NAME=value` assignments before the program (`AWS_PROFILE=prod aws
    /// …`), with literal values.
    pub env: Vec<(String, String)>,
}

impl SimpleCommand {
    /// The command as written, for reasons, with where it writes.
    pub fn display(&self) -> String {
        let len = self.words.iter().map(|w| w.raw.len() + 1).sum::<usize>()
            + self.outputs.iter().map(|o| o.raw.len() + 3).sum::<usize>();
        let mut s = String::with_capacity(len);
        for w in &self.words {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(&w.raw);
        }
        for o in &self.outputs {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str("> ");
            s.push_str(&o.raw);
        }
        s
    }
}

/// Something found while parsing that the classifier must rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unit {
    Command {
        cmd: SimpleCommand,
        /// Wrappers and substitutions this command was found inside.
        via: Vec<String>,
    },
    /// The parser could not see through part of the line.
    Opaque {
        part: String,
        via: Vec<String>,
        rule: &'static str,
        message: String,
    },
}

/// Parses a line into the units it runs. Never fails: what cannot be parsed
/// becomes an `Opaque` unit plus a best-effort split of the text, so that a
/// parse error can raise a rating but never hide a command.
pub(crate) fn parse_units(line: &str, via: &[String], depth: usize) -> Vec<Unit> {
    let mut walker = Walker {
        units: Vec::new(),
        via: via.to_vec(),
        depth,
    };
    if depth > MAX_DEPTH {
        walker.opaque(line, "too-deep", "nesting is too deep to follow".into());
        return walker.units;
    }
    if let Some(mut commands) = plain_list(line) {
        // A pipe carries a literal output on (see `Walker::pipeline`).
        let mut carried: Option<String> = None;
        let mut decoded = false;
        let mut templates: Vec<String> = Vec::new();
        let mut hidden: Vec<Option<String>> = Vec::with_capacity(commands.len());
        let piped_next: Vec<bool> = commands
            .iter()
            .skip(1)
            .map(|c| c.stdin_fed)
            .chain(std::iter::once(false))
            .collect();
        for (cmd, next_piped) in commands.iter_mut().zip(piped_next) {
            let input = if cmd.stdin_fed { carried.take() } else { None };
            if cmd.stdin_fed && input.is_none() {
                cmd.stdin_from = std::mem::take(&mut templates);
            }
            if let Some(text) = &input
                && cmd.stdin_texts.is_empty()
            {
                cmd.stdin_texts.push(text.clone());
            }
            hidden.push((decoded && input.is_some()).then(|| cmd.display()));
            decoded = is_decoder(cmd);
            if next_piped {
                templates = templates_of(cmd);
                carried = literal_output(cmd, input.as_deref());
            }
        }
        for (cmd, hidden) in commands.into_iter().zip(hidden) {
            walker.push_command(cmd);
            if let Some(part) = hidden {
                walker.hidden_input(&part);
            }
        }
        return walker.units;
    }
    if nesting_openers(line) > MAX_OPENERS {
        // The grammar recurses once per level; an adversarial line could
        // overflow the stack. Nothing real nests this deep: rate it
        // fail-closed and split what it plainly says.
        walker.opaque(
            line,
            "too-deep",
            format!("more than {MAX_OPENERS} nested constructs: too complex to follow"),
        );
        walker.fallback_split(line);
        return walker.units;
    }
    walker.grammar(line);
    walker.units
}

/// How many constructs a line may open (`(`, `{`, `` ` ``, `if`, `while`,
/// …) before the grammar is not asked to parse it. The grammar's recursion
/// depth is bounded by this count; 64 levels parse within a 2 MiB thread
/// stack even in a debug build (a test checks it).
const MAX_OPENERS: usize = 64;

/// Counts what can open a nesting level: brackets, backquotes and compound
/// command keywords. An over-count only makes a line fail closed.
fn nesting_openers(line: &str) -> usize {
    let brackets = line
        .bytes()
        .filter(|b| matches!(b, b'(' | b'{' | b'`'))
        .count();
    let keywords = line
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '|'))
        .filter(|w| matches!(*w, "if" | "while" | "until" | "for" | "case" | "select"))
        .count();
    brackets + keywords
}

/// `NAME=value`, `NAME+=value`, `NAME[i]=value`: an assignment when it
/// stands before the program.
pub(crate) fn is_assignment(w: &str) -> bool {
    let Some((lhs, _)) = w.split_once('=') else {
        return false;
    };
    let lhs = lhs.strip_suffix('+').unwrap_or(lhs);
    let name = match lhs.split_once('[') {
        Some((name, subscript)) if subscript.ends_with(']') => name,
        Some(_) => return false,
        None => lhs,
    };
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Walker {
    /// Parses a line with the bash grammar and walks it.
    fn grammar(&mut self, line: &str) {
        let options = ParserOptions::default();
        let mut parser = Parser::new(std::io::Cursor::new(line.as_bytes()), &options);
        match parser.parse_program() {
            Ok(program) => {
                for list in &program.complete_commands {
                    self.compound_list(list);
                }
            }
            Err(e) => {
                self.opaque(line, "unparseable", format!("unparseable: {e}"));
                self.fallback_split(line);
            }
        }
    }
}

/// The literal arguments of several words a command is given: what its
/// output may be made from.
fn templates_of(cmd: &SimpleCommand) -> Vec<String> {
    cmd.words
        .iter()
        .skip(1)
        .filter(|w| !w.dynamic && (w.text.contains(char::is_whitespace) || w.text.starts_with('/')))
        .map(|w| w.text.to_string())
        .collect()
}

/// `base64 -d`: a command that decodes its input.
fn is_decoder(cmd: &SimpleCommand) -> bool {
    cmd.words
        .first()
        .is_some_and(|w| w.text.rsplit('/').next() == Some("base64"))
        && cmd.words[1..]
            .iter()
            .any(|w| matches!(w.text.as_str(), "-d" | "--decode" | "-D"))
}

/// What a simple command writes to standard output, when that is known
/// here: `echo`/`printf` of literal words, `base64 -d` of a literal, `cat`
/// of its input or here-doc. `None` otherwise.
fn literal_output(cmd: &SimpleCommand, input: Option<&str>) -> Option<String> {
    let program = cmd.words.first()?.text.rsplit('/').next()?;
    if !matches!(program, "echo" | "printf" | "base64" | "cat")
        || cmd.words.iter().any(|w| w.dynamic)
        || !cmd.outputs.is_empty()
    {
        return None;
    }
    let args: Vec<&str> = cmd.words[1..].iter().map(|w| w.text.as_str()).collect();
    match program {
        "echo" => {
            let start = args
                .iter()
                .take_while(|a| matches!(**a, "-n" | "-e" | "-E"))
                .count();
            Some(format!("{}\n", args[start..].join(" ")))
        }
        "printf" => match args.as_slice() {
            [format] if !format.contains('%') => Some(format.replace("\\n", "\n")),
            ["%s", rest @ ..] | ["%s\\n", rest @ ..] => Some(format!("{}\n", rest.join(""))),
            _ => None,
        },
        "base64" if args.iter().any(|a| matches!(*a, "-d" | "--decode" | "-D")) => {
            use base64::Engine as _;
            let text = input.or_else(|| cmd.stdin_texts.first().map(String::as_str))?;
            let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(clean.as_bytes())
                .ok()?;
            String::from_utf8(bytes).ok()
        }
        "cat" if args.is_empty() => input
            .map(str::to_owned)
            .or_else(|| cmd.stdin_texts.first().cloned()),
        _ => None,
    }
}

struct Walker {
    units: Vec<Unit>,
    via: Vec<String>,
    depth: usize,
}

impl Walker {
    /// A command fed a decoded literal (`echo … | base64 -d | sh`): what it
    /// runs is rated from the decoded text, and the disguise itself is at
    /// least HIGH: a reviewer reads gibberish.
    fn hidden_input(&mut self, part: &str) {
        self.opaque(
            part,
            "decoded-input",
            "reads base64-decoded text: what it gets is hidden from a reader (decoded and rated too)".into(),
        );
    }

    fn opaque(&mut self, part: &str, rule: &'static str, message: String) {
        self.units.push(Unit::Opaque {
            part: part.trim().to_owned(),
            via: self.via.clone(),
            rule,
            message,
        });
    }

    /// When the grammar rejects a line, still rate what it plainly says
    /// (see `plain::lenient_commands`), so `kubectl delete ns prod 'x` is
    /// still seen as deleting a namespace.
    fn fallback_split(&mut self, line: &str) {
        for cmd in lenient_commands(line) {
            self.push_command(cmd);
        }
    }

    fn push_command(&mut self, cmd: SimpleCommand) {
        self.units.push(Unit::Command {
            cmd,
            via: self.via.clone(),
        });
    }

    fn compound_list(&mut self, list: &ast::CompoundList) {
        for item in &list.0 {
            self.and_or(&item.0);
        }
    }

    fn and_or(&mut self, list: &ast::AndOrList) {
        self.pipeline(&list.first);
        for next in &list.additional {
            match next {
                ast::AndOr::And(p) | ast::AndOr::Or(p) => self.pipeline(p),
            }
        }
    }

    fn pipeline(&mut self, p: &ast::Pipeline) {
        // What a command writes, when it is a literal (`echo 'rm -rf /x'`,
        // `echo …== | base64 -d`, `cat <<EOF`): the next command reads it,
        // so `echo … | base64 -d | sh` is rated as the decoded line.
        let mut carried: Option<String> = None;
        let mut decoded = false;
        let mut templates: Vec<String> = Vec::new();
        for (i, cmd) in p.seq.iter().enumerate() {
            let before = self.units.len();
            self.command(cmd, i > 0);
            let one = self.units.len() == before + 1;
            let input = carried.take();
            let mut hidden = None;
            let from = std::mem::take(&mut templates);
            if let (true, Some(Unit::Command { cmd: c, .. })) = (one, self.units.get_mut(before)) {
                if let Some(text) = &input
                    && c.stdin_texts.is_empty()
                {
                    c.stdin_texts.push(text.clone());
                }
                if i > 0 && input.is_none() {
                    c.stdin_from = from;
                }
                if decoded && input.is_some() {
                    hidden = Some(c.display());
                }
                decoded = is_decoder(c);
                if i + 1 < p.seq.len() {
                    templates = templates_of(c);
                    carried = literal_output(c, input.as_deref());
                }
            } else {
                decoded = false;
            }
            if let Some(part) = hidden {
                self.hidden_input(&part);
            }
        }
    }

    fn command(&mut self, cmd: &ast::Command, piped: bool) {
        match cmd {
            ast::Command::Simple(sc) => self.simple(sc, piped),
            ast::Command::Compound(cc, redirects) => {
                // Redirections on a compound command apply to every command in
                // it; rate them once, as a command of their own.
                if let Some(r) = redirects {
                    let mut holder = SimpleCommand::default();
                    for io in &r.0 {
                        self.redirect(io, &mut holder);
                    }
                    if !holder.outputs.is_empty() {
                        self.push_command(holder);
                    }
                }
                self.compound(cc);
            }
            ast::Command::Function(f) => {
                // A definition runs nothing by itself, but its body is what a
                // later call runs: rate it now rather than trust the name.
                self.compound(&f.body.0);
            }
            ast::Command::ExtendedTest(test, _) => {
                // `[[ … ]]` is a command of its own: its operands are what a
                // rule reads (an arithmetic operand `a[$(cmd)]` runs `cmd`).
                let mut words = vec![Word::literal("[[")];
                self.extended_test(&test.expr, &mut words);
                words.push(Word::literal("]]"));
                self.push_command(SimpleCommand {
                    words,
                    ..SimpleCommand::default()
                });
            }
        }
    }

    fn compound(&mut self, cc: &ast::CompoundCommand) {
        match cc {
            // `((…))` is arithmetic to bash but two nested subshells to a
            // POSIX sh (dash, which `/bin/sh -c` often is), and the grammar
            // also reads `( ( cmd ) )` this way. Rate the text as commands.
            ast::CompoundCommand::Arithmetic(a) => {
                self.arithmetic(&a.expr.value);
                self.nested(&a.expr.value, "((…))");
            }
            ast::CompoundCommand::ArithmeticForClause(f) => {
                for e in [&f.initializer, &f.condition, &f.updater]
                    .into_iter()
                    .flatten()
                {
                    self.arithmetic(&e.value);
                }
                self.compound_list(&f.body.list);
            }
            ast::CompoundCommand::BraceGroup(b) => self.compound_list(&b.list),
            ast::CompoundCommand::Subshell(s) => self.compound_list(&s.list),
            ast::CompoundCommand::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    self.word(w);
                }
                self.compound_list(&f.body.list);
            }
            ast::CompoundCommand::CaseClause(c) => {
                self.word(&c.value);
                for item in &c.cases {
                    for p in &item.patterns {
                        self.word(p);
                    }
                    if let Some(body) = &item.cmd {
                        self.compound_list(body);
                    }
                }
            }
            ast::CompoundCommand::IfClause(i) => {
                self.compound_list(&i.condition);
                self.compound_list(&i.then);
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.compound_list(c);
                    }
                    self.compound_list(&e.body);
                }
            }
            ast::CompoundCommand::WhileClause(w) | ast::CompoundCommand::UntilClause(w) => {
                self.compound_list(&w.0);
                self.compound_list(&w.1.list);
            }
            ast::CompoundCommand::Coprocess(c) => self.command(&c.body, false),
        }
    }

    fn extended_test(&mut self, e: &ast::ExtendedTestExpr, words: &mut Vec<Word>) {
        match e {
            ast::ExtendedTestExpr::And(a, b) | ast::ExtendedTestExpr::Or(a, b) => {
                self.extended_test(a, words);
                self.extended_test(b, words);
            }
            ast::ExtendedTestExpr::Not(a) | ast::ExtendedTestExpr::Parenthesized(a) => {
                self.extended_test(a, words)
            }
            ast::ExtendedTestExpr::UnaryTest(_, w) => {
                let w = self.word(w);
                words.push(w);
            }
            ast::ExtendedTestExpr::BinaryTest(_, a, b) => {
                let a = self.word(a);
                let b = self.word(b);
                words.push(a);
                words.push(b);
            }
        }
    }

    /// Arithmetic text is not parsed further; a substitution inside it is
    /// opaque.
    fn arithmetic(&mut self, text: &str) {
        if text.contains("$(") || text.contains('`') {
            self.opaque(
                text,
                "substitution-in-arithmetic",
                "command substitution inside arithmetic is not followed".into(),
            );
        }
    }

    fn simple(&mut self, sc: &ast::SimpleCommand, piped: bool) {
        let mut cmd = SimpleCommand {
            stdin_fed: piped,
            ..SimpleCommand::default()
        };
        for item in sc.prefix.iter().flat_map(|p| p.0.iter()) {
            self.prefix_or_suffix(item, &mut cmd, true);
        }
        if let Some(w) = &sc.word_or_name {
            let word = self.word(w);
            cmd.words.push(word);
        }
        for item in sc.suffix.iter().flat_map(|s| s.0.iter()) {
            self.prefix_or_suffix(item, &mut cmd, false);
        }
        if cmd.words.is_empty() && cmd.outputs.is_empty() {
            // Assignments only (`X=1`): nothing runs but their substitutions,
            // which `word` has already reported.
            return;
        }
        self.push_command(cmd);
    }

    fn prefix_or_suffix(
        &mut self,
        item: &ast::CommandPrefixOrSuffixItem,
        cmd: &mut SimpleCommand,
        in_prefix: bool,
    ) {
        match item {
            ast::CommandPrefixOrSuffixItem::IoRedirect(io) => self.redirect(io, cmd),
            ast::CommandPrefixOrSuffixItem::Word(w) => {
                let word = self.word(w);
                cmd.words.push(word);
            }
            ast::CommandPrefixOrSuffixItem::AssignmentWord(a, w) => {
                match &a.value {
                    ast::AssignmentValue::Scalar(v) => {
                        let value = self.word(v);
                        // A value only known at run time is kept as empty.
                        if in_prefix && let ast::AssignmentName::VariableName(name) = &a.name {
                            let text = if value.dynamic {
                                String::new()
                            } else {
                                value.text.into_string()
                            };
                            cmd.env.push((name.clone(), text));
                        }
                    }
                    ast::AssignmentValue::Array(items) => {
                        for (k, v) in items {
                            if let Some(k) = k {
                                self.word(k);
                            }
                            self.word(v);
                        }
                    }
                }
                // After the program name, `X=1` is an ordinary argument.
                if !in_prefix {
                    let word = self.word(w);
                    cmd.words.push(word);
                }
            }
            ast::CommandPrefixOrSuffixItem::ProcessSubstitution(kind, sub) => {
                self.nested_list(&sub.list, &format!("{kind}(…)"));
                cmd.words.push(Word {
                    text: compact_str::format_compact!("{kind}(…)"),
                    raw: compact_str::format_compact!("{kind}({})", sub.list),
                    dynamic: true,
                });
            }
        }
    }

    fn redirect(&mut self, io: &ast::IoRedirect, cmd: &mut SimpleCommand) {
        match io {
            ast::IoRedirect::File(_, kind, target) => {
                let is_output = matches!(
                    kind,
                    ast::IoFileRedirectKind::Write
                        | ast::IoFileRedirectKind::Append
                        | ast::IoFileRedirectKind::Clobber
                        | ast::IoFileRedirectKind::ReadAndWrite
                );
                match target {
                    ast::IoFileRedirectTarget::Filename(w) => {
                        let word = self.word(w);
                        if is_output {
                            cmd.outputs.push(word);
                        } else if matches!(kind, ast::IoFileRedirectKind::Read) {
                            cmd.stdin_fed = true;
                            cmd.inputs.push(word);
                        }
                    }
                    ast::IoFileRedirectTarget::Fd(_) => {}
                    ast::IoFileRedirectTarget::Duplicate(w) => {
                        // `>&2` duplicates a descriptor; `>& file` writes a file.
                        let word = self.word(w);
                        let is_fd = word.text.chars().all(|c| c.is_ascii_digit() || c == '-');
                        if !is_fd && matches!(kind, ast::IoFileRedirectKind::DuplicateOutput) {
                            cmd.outputs.push(word);
                        }
                    }
                    ast::IoFileRedirectTarget::ProcessSubstitution(kind, sub) => {
                        self.nested_list(&sub.list, &format!("{kind}(…)"));
                        if matches!(kind, ast::ProcessSubstitutionKind::Read) {
                            cmd.stdin_fed = true;
                        }
                    }
                }
            }
            ast::IoRedirect::HereDocument(_, doc) => {
                cmd.stdin_fed = true;
                if doc.requires_expansion {
                    // An unquoted delimiter: `$( … )` in the body runs.
                    match brush_parser::word::parse_heredoc(
                        &doc.doc.value,
                        &ParserOptions::default(),
                    ) {
                        Ok(pieces) => {
                            let mut dynamic = false;
                            let text = self.pieces(&doc.doc.value, &pieces, &mut dynamic);
                            if !dynamic {
                                cmd.stdin_texts.push(text);
                            }
                        }
                        Err(e) => self.opaque(
                            &doc.doc.value,
                            "unparseable",
                            format!("unparseable here-doc: {e}"),
                        ),
                    }
                } else {
                    cmd.stdin_texts.push(doc.doc.value.clone());
                }
            }
            ast::IoRedirect::HereString(_, w) => {
                cmd.stdin_fed = true;
                let word = self.word(w);
                if !word.dynamic {
                    cmd.stdin_texts.push(word.text.into_string());
                }
            }
            ast::IoRedirect::OutputAndError(w, _) => {
                let word = self.word(w);
                cmd.outputs.push(word);
            }
        }
    }

    fn nested_list(&mut self, list: &ast::CompoundList, label: &str) {
        self.nested(&list.to_string(), label);
    }

    /// Parses a nested command line (a substitution) and adds its units.
    fn nested(&mut self, text: &str, label: &str) {
        let mut via = self.via.clone();
        via.push(label.to_owned());
        let units = parse_units(text, &via, self.depth + 1);
        self.units.extend(units);
    }

    /// Resolves a word: unquotes it, reports the command substitutions inside
    /// it, and says whether its value is dynamic.
    fn word(&mut self, w: &ast::Word) -> Word {
        let raw = &w.value;
        // Most words are plain text; skip the word parser for them.
        if !raw.contains(['$', '`', '\'', '"', '\\', '~']) {
            return Word {
                text: raw.as_str().into(),
                raw: raw.as_str().into(),
                dynamic: false,
            };
        }
        match brush_parser::word::parse(raw, &ParserOptions::default()) {
            Ok(pieces) => {
                let mut dynamic = false;
                let text = self.pieces(raw, &pieces, &mut dynamic);
                Word {
                    text: text.into(),
                    raw: raw.as_str().into(),
                    dynamic,
                }
            }
            Err(e) => {
                self.opaque(raw, "unparseable", format!("unparseable word: {e}"));
                Word {
                    text: raw.as_str().into(),
                    raw: raw.as_str().into(),
                    dynamic: true,
                }
            }
        }
    }

    fn pieces(&mut self, src: &str, pieces: &[WordPieceWithSource], dynamic: &mut bool) -> String {
        let mut out = String::new();
        for p in pieces {
            match &p.piece {
                WordPiece::Text(t) => out.push_str(t),
                WordPiece::SingleQuotedText(t) => out.push_str(t),
                WordPiece::AnsiCQuotedText(t) => out.push_str(&ansi_c_unescape(t)),
                WordPiece::DoubleQuotedSequence(inner)
                | WordPiece::GettextDoubleQuotedSequence(inner) => {
                    let s = self.pieces(src, inner, dynamic);
                    out.push_str(&s);
                }
                WordPiece::TildeExpansion(_) => out.push('~'),
                WordPiece::ParameterExpansion(_) => {
                    *dynamic = true;
                    let written = src.get(p.start_index..p.end_index).unwrap_or("${…}");
                    if written.contains("$(") || written.contains('`') {
                        self.opaque(
                            written,
                            "substitution-in-parameter",
                            "command substitution inside a parameter expansion is not followed"
                                .into(),
                        );
                    }
                    out.push_str(written);
                }
                WordPiece::CommandSubstitution(inner) => {
                    *dynamic = true;
                    self.nested(inner, "$(…)");
                    out.push_str("$(");
                    out.push_str(inner);
                    out.push(')');
                }
                WordPiece::BackquotedCommandSubstitution(inner) => {
                    *dynamic = true;
                    let unescaped = backquote_unescape(inner);
                    self.nested(&unescaped, "`…`");
                    out.push('`');
                    out.push_str(inner);
                    out.push('`');
                }
                WordPiece::EscapeSequence(s) => {
                    // `\x` is `x`; a backslash before a newline joins lines.
                    let rest = s.strip_prefix('\\').unwrap_or(s);
                    if rest != "\n" {
                        out.push_str(rest);
                    }
                }
                WordPiece::ArithmeticExpression(e) => {
                    *dynamic = true;
                    self.arithmetic(&e.value);
                    out.push_str("$((");
                    out.push_str(&e.value);
                    out.push_str("))");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Parses with the grammar only, skipping the fast path.
    fn by_grammar(line: &str) -> Vec<Unit> {
        let mut w = Walker {
            units: Vec::new(),
            via: Vec::new(),
            depth: 0,
        };
        w.grammar(line);
        w.units
    }

    /// Classifies on a thread with a 2 MiB stack, the size of a tokio worker.
    fn units_on_small_stack(line: String) -> Vec<Unit> {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || parse_units(&line, &[], 0))
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn deep_nesting_fails_closed_without_overflowing_the_stack() {
        for line in [
            format!("echo {}ls{}", "$(".repeat(5000), ")".repeat(5000)),
            format!("{}ls{}", "(".repeat(5000), ")".repeat(5000)),
            format!("{}ls{}", "if true; then ".repeat(5000), "; fi".repeat(5000)),
        ] {
            let units = units_on_small_stack(line);
            assert!(
                units.iter().any(|u| matches!(
                    u,
                    Unit::Opaque {
                        rule: "too-deep",
                        ..
                    }
                )),
                "a deep line must be opaque"
            );
        }
    }

    #[test]
    fn nesting_up_to_the_limit_still_parses() {
        let n = MAX_OPENERS - 1;
        let units = units_on_small_stack(format!("{}ls{}", "{ ".repeat(n), "; }".repeat(n)));
        assert!(
            units.iter().all(|u| matches!(u, Unit::Command { .. })),
            "{units:?}"
        );
        let subs = units_on_small_stack(format!("echo {}ls{}", "$(".repeat(n), ")".repeat(n)));
        // Substitutions nest beyond MAX_DEPTH first: opaque, not a crash.
        assert!(
            subs.iter().any(|u| matches!(
                u,
                Unit::Opaque {
                    rule: "too-deep",
                    ..
                }
            )),
            "{subs:?}"
        );
    }

    #[test]
    fn assignments_are_recognized() {
        assert!(is_assignment("FOO=bar"));
        assert!(is_assignment("_X1="));
        assert!(is_assignment("PATH+=:/opt/bin"));
        assert!(is_assignment("a[0]=x"));
        assert!(!is_assignment("1X=2"));
        assert!(!is_assignment("--opt=x"));
    }

    /// A fixed seed keeps CI repeatable; `PROPTEST_RNG_SEED=<n>` explores.
    fn config() -> ProptestConfig {
        let mut c = ProptestConfig::default();
        if std::env::var_os("PROPTEST_CASES").is_none() {
            c.cases = 2048;
        }
        if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
            c.rng_seed = proptest::test_runner::RngSeed::Fixed(0x7368_656c_6c00);
        }
        c
    }

    proptest! {
        #![proptest_config(config())]

        /// On every line the fast path takes, it finds exactly the commands
        /// the grammar finds. Words and operators are drawn so that the
        /// generated lines are often plain and sometimes not.
        #[test]
        fn the_fast_path_agrees_with_the_grammar(
            tokens in prop::collection::vec(
                prop_oneof![
                    6 => "[a-zA-Z0-9._/=:,+@%*?^\\[\\]-]{1,8}",
                    // Quoted words and words with quoted parts, holding
                    // operators, blanks and what bash expands elsewhere.
                    2 => "[a-z=-]{0,3}'[a-z |&;<>(){}#$`*~!=\"\\\\-]{0,6}'[a-z]{0,2}",
                    2 => "[a-z=-]{0,3}\"[a-z |&;<>(){}#$`*~!='\\\\-]{0,6}\"[a-z]{0,2}",
                    1 => "[A-Z]{1,2}='[a-z ]{0,3}'",
                    1 => prop::sample::select(vec!["'", "\"", "''", "\"\"", "'if'", "\"a'b\""])
                        .prop_map(str::to_owned),
                    1 => prop::sample::select(vec![
                        "|", "||", "&&", ";", "&", ";;", "|&", "if", "then", "fi", "X=1", "a+=b",
                    ]).prop_map(str::to_owned),
                ],
                1..12,
            ),
            seps in prop::collection::vec(prop::sample::select(vec![" ", "  ", "\t", ""]), 12),
        ) {
            let mut line = String::new();
            for (i, t) in tokens.iter().enumerate() {
                if i > 0 {
                    line.push_str(seps[i % seps.len()]);
                }
                line.push_str(t);
            }
            // The fast path, with what a pipe carries, against the grammar.
            if plain_list(&line).is_some() {
                prop_assert_eq!(parse_units(&line, &[], 0), by_grammar(&line), "{:?}", line);
            }
        }
    }
}
