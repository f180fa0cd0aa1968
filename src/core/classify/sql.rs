//! SQL rated from its syntax tree, not from regexes.
//!
//! The SQL handed to `psql`, `mysql` or `sqlite3` is parsed with `sqlparser`
//! and every statement is rated by what it does: a `SELECT` that only builds
//! `'DROP TABLE ' || name` strings reads, a `DELETE` without a `WHERE` empties
//! a table. Nested statements (a data-modifying `WITH`, `EXPLAIN ANALYZE`) and
//! side-effecting functions called anywhere (`pg_terminate_backend` in a
//! `SELECT`) are found by walking the whole tree.
//!
//! Pure: no I/O. The work is bounded: text over [`MAX_SQL_BYTES`] is refused,
//! parentheses nest at most [`MAX_PAREN_DEPTH`] deep, and a statement holds at
//! most [`MAX_CHAIN_TOKENS`] operators and keywords, so that no syntax tree is
//! deep enough to overflow the stack when it is walked or dropped (the
//! parser's own recursion limit guards the rest). What cannot be parsed is
//! [`SqlRating::Unparseable`], and the caller falls back to its regex rules.
//!
//! `psql` scripts mix SQL with backslash meta-commands: [`split_psql`]
//! separates the two, rates the meta-commands and hands back the shell
//! commands they would run.
//!
//! Long on purpose: the statement rater is one match over `sqlparser`'s
//! statement kinds, and the psql splitter one scanner; about 800 lines are
//! their unit tests, at the end.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, ContextModifier, CopySource, CopyTarget, Expr, FromTable, KillType, ObjectName,
    ObjectNamePart, ObjectType, OnConflictAction, OnInsert, Select, Set, SetExpr, Statement,
    TableFactor, TableObject, TableWithJoins, Value, Visit, Visitor,
};
use sqlparser::dialect::{
    Dialect as ParserDialect, GenericDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect,
};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use crate::core::risk::RiskLevel;

/// SQL longer than this is not parsed (the caller falls back to its rules).
pub(crate) const MAX_SQL_BYTES: usize = 64 * 1024;

/// The most operators and keywords one statement may hold. A chain such as
/// `1+1+…` or `a OR a OR …` parses into a tree as deep as it is long, and
/// neither dropping nor walking that tree is guarded against the stack;
/// 4,096 keeps it a quarter of the depth measured safe on a 2 MiB thread in
/// a debug build.
const MAX_CHAIN_TOKENS: usize = 4096;

/// The deepest nesting of parentheses or brackets accepted (the parser's own
/// limit is 50 levels of recursion; this one also covers nested joins).
const MAX_PAREN_DEPTH: usize = 256;

/// How long an object name or statement head may be inside a reason.
const MAX_LABEL_CHARS: usize = 60;

/// The SQL dialect to parse with: the program the SQL is given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `psql`
    Postgres,
    /// `mysql`, `mariadb`
    MySql,
    /// `sqlite3`
    Sqlite,
    /// Anything else; also the fallback when a dialect's grammar fails.
    Generic,
}

/// One finding: a statement's rating, or something found inside it (a nested
/// statement, a side-effecting function call, a psql meta-command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SqlVerdict {
    pub level: RiskLevel,
    /// What decided the level, e.g. "DELETE without a WHERE clause on `users`".
    pub reason: String,
}

/// The rating of a piece of SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqlRating {
    /// Findings in statement order; empty for text that is only comments.
    Parsed(Vec<SqlVerdict>),
    /// The parser's error, or why the text was refused.
    Unparseable(String),
}

#[cfg(test)]
impl SqlRating {
    /// The level of the whole text: the highest finding, `Low` for none,
    /// `None` when the text could not be parsed.
    pub(crate) fn level(&self) -> Option<RiskLevel> {
        match self {
            SqlRating::Parsed(v) => Some(max_level(v)),
            SqlRating::Unparseable(_) => None,
        }
    }
}

/// The highest level among `verdicts` (`Low` for none).
#[cfg(test)]
pub(crate) fn max_level(verdicts: &[SqlVerdict]) -> RiskLevel {
    verdicts
        .iter()
        .map(|v| v.level)
        .max()
        .unwrap_or(RiskLevel::Low)
}

fn verdict(level: RiskLevel, reason: impl Into<String>) -> SqlVerdict {
    SqlVerdict {
        level,
        reason: reason.into(),
    }
}

// ------------------------------------------------------------------ rate_sql

/// Rates every statement of `text`, parsed as `dialect`.
///
/// The text is lexed with `dialect` (its lexing decides what is a string, a
/// comment or code); the statements are parsed with the dialect's grammar
/// and, when that fails, with the generic grammar over the same tokens.
/// Statements neither grammar knows but whose kind alone decides (`DO`,
/// `CLUSTER`, `REINDEX`, `VACUUM (…)`, MySQL's `LOAD DATA`, `PURGE`,
/// `SHUTDOWN`, any `DROP`/`TRUNCATE`, a `CREATE`/`ALTER` of an object the
/// grammar lacks) are rated from their tokens, and MySQL's `INTO OUTFILE`
/// clause is rated and cut out before the rest is parsed; anything else
/// that fails makes the whole text [`SqlRating::Unparseable`].
pub(crate) fn rate_sql(text: &str, dialect: Dialect) -> SqlRating {
    if text.len() > MAX_SQL_BYTES {
        return SqlRating::Unparseable(format!(
            "SQL of {} bytes is over the {} KiB the SQL rater reads",
            text.len(),
            MAX_SQL_BYTES / 1024
        ));
    }
    let tokens = match tokenize(text, dialect) {
        Ok(t) => t,
        Err(e) => return SqlRating::Unparseable(e),
    };
    if let Err(e) = check_bounds(&tokens) {
        return SqlRating::Unparseable(e);
    }
    let first_error = match parse_tokens(&tokens, dialect) {
        Ok(statements) => return SqlRating::Parsed(rate_statements(&statements)),
        Err(e) => e,
    };
    // Statement by statement, so that one the grammar lacks (`DO`, `REINDEX`)
    // does not sink the rest.
    let mut verdicts = Vec::new();
    for chunk in split_statements(&tokens) {
        match rate_chunk(chunk, dialect) {
            Ok(v) => verdicts.extend(v),
            Err(_) => return SqlRating::Unparseable(first_error),
        }
    }
    SqlRating::Parsed(verdicts)
}

fn parser_dialect(dialect: Dialect) -> &'static dyn ParserDialect {
    match dialect {
        Dialect::Postgres => &PostgreSqlDialect {},
        Dialect::MySql => &MySqlDialect {},
        Dialect::Sqlite => &SQLiteDialect {},
        Dialect::Generic => &GenericDialect {},
    }
}

/// Lexes `text`; MySQL's executable comments (`/*! … */`, `/*M! … */`) are
/// code to MySQL and MariaDB, so their content is lexed and spliced in.
fn tokenize(text: &str, dialect: Dialect) -> Result<Vec<TokenWithSpan>, String> {
    let d = parser_dialect(dialect);
    let tokens = Tokenizer::new(d, text)
        .tokenize_with_location()
        .map_err(|e| format!("sql parser error: {e}"))?;
    if dialect != Dialect::MySql {
        return Ok(tokens);
    }
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        match &t.token {
            Token::Whitespace(Whitespace::MultiLineComment(c))
                if c.starts_with('!') || c.starts_with("M!") =>
            {
                let body = c.trim_start_matches('M').trim_start_matches('!');
                let body = body.trim_start_matches(|ch: char| ch.is_ascii_digit());
                let inner = Tokenizer::new(d, body)
                    .tokenize_with_location()
                    .map_err(|e| format!("sql parser error in an executable comment: {e}"))?;
                out.extend(inner);
            }
            _ => out.push(t),
        }
    }
    Ok(out)
}

/// Refuses token streams whose syntax tree could be deep enough to overflow
/// the stack (see [`MAX_CHAIN_TOKENS`]).
fn check_bounds(tokens: &[TokenWithSpan]) -> Result<(), String> {
    let mut chain = 0usize;
    let mut depth = 0usize;
    for t in tokens {
        match &t.token {
            Token::SemiColon => chain = 0,
            Token::LParen | Token::LBracket | Token::LBrace => {
                depth += 1;
                if depth > MAX_PAREN_DEPTH {
                    return Err(format!(
                        "SQL nested more than {MAX_PAREN_DEPTH} parentheses deep"
                    ));
                }
                if !matches!(t.token, Token::LParen) {
                    chain += 1;
                }
            }
            Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
            Token::Word(w) => {
                if w.quote_style.is_none()
                    && w.keyword != Keyword::NoKeyword
                    && !matches!(
                        w.keyword,
                        Keyword::NULL | Keyword::TRUE | Keyword::FALSE | Keyword::DEFAULT
                    )
                {
                    chain += 1;
                }
            }
            t if is_leaf_token(t) => {}
            _ => chain += 1,
        }
        if chain > MAX_CHAIN_TOKENS {
            return Err(format!(
                "a SQL statement with more than {MAX_CHAIN_TOKENS} operators and keywords \
                 (the SQL rater refuses it)"
            ));
        }
    }
    Ok(())
}

/// Tokens that cannot make a syntax tree deeper: literals, names,
/// separators, white space.
fn is_leaf_token(t: &Token) -> bool {
    matches!(
        t,
        Token::EOF
            | Token::Whitespace(_)
            | Token::Comma
            | Token::Number(..)
            | Token::Placeholder(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::CopyData { .. }
    )
}

/// Parses with the dialect's grammar, then with the generic one over the
/// same tokens. The error returned is the dialect's.
fn parse_tokens(tokens: &[TokenWithSpan], dialect: Dialect) -> Result<Vec<Statement>, String> {
    let first = Parser::new(parser_dialect(dialect))
        .with_tokens_with_locations(tokens.to_vec())
        .parse_statements();
    match first {
        Ok(s) => Ok(s),
        Err(e) if dialect == Dialect::Generic => Err(e.to_string()),
        Err(e) => Parser::new(&GenericDialect {})
            .with_tokens_with_locations(tokens.to_vec())
            .parse_statements()
            .map_err(|_| e.to_string()),
    }
}

/// Splits a token stream at the semicolons outside parentheses; chunks that
/// hold only white space are left out.
fn split_statements(tokens: &[TokenWithSpan]) -> Vec<&[TokenWithSpan]> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::SemiColon if depth == 0 => {
                out.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&tokens[start..]);
    out.retain(|c| c.iter().any(|t| !is_space(&t.token)));
    out
}

fn is_space(t: &Token) -> bool {
    matches!(t, Token::Whitespace(_) | Token::EOF)
}

/// The upper-cased text of an unquoted word.
fn upper_word(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// Rates one statement that the whole-text parse could not: from its tokens
/// when its kind alone decides, else by parsing it on its own.
fn rate_chunk(chunk: &[TokenWithSpan], dialect: Dialect) -> Result<Vec<SqlVerdict>, String> {
    let words: Vec<String> = chunk
        .iter()
        .filter(|t| !is_space(&t.token))
        .take(4)
        .map(|t| upper_word(&t.token).unwrap_or_default())
        .collect();
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let has_word = |word: &str| {
        chunk
            .iter()
            .any(|t| upper_word(&t.token).as_deref() == Some(word))
    };
    use RiskLevel::{Critical, High, Low, Medium};
    let unread = "(the parser did not read the rest)";
    let by_kind = match w(0) {
        "DROP" => Some(verdict(Critical, format!("DROP {} {unread}", w(1)))),
        "TRUNCATE" => Some(verdict(Critical, "TRUNCATE empties tables")),
        // MySQL's DO evaluates expressions, like a SELECT that returns nothing.
        "DO" if dialect == Dialect::MySql => {
            let mut select = chunk.to_vec();
            if let Some(t) = select.iter_mut().find(|t| !is_space(&t.token)) {
                t.token = Token::make_keyword("SELECT");
            }
            return rate_tokens(&select, dialect);
        }
        "DO" => Some(verdict(
            High,
            "DO block: runs procedural code (its body is not rated)",
        )),
        "TABLE" => Some(verdict(Low, "TABLE (reads a table)")),
        "VACUUM" if w(1) == "INTO" => Some(verdict(Medium, "VACUUM INTO writes a database file")),
        "VACUUM" | "ANALYZE" | "ANALYSE" => Some(verdict(Medium, format!("{} {unread}", w(0)))),
        "CLUSTER" => Some(verdict(Medium, "CLUSTER rewrites a table")),
        "REINDEX" => Some(verdict(Medium, "REINDEX rebuilds indexes")),
        "CHECKPOINT" => Some(verdict(Medium, "CHECKPOINT forces a checkpoint")),
        "CHECK" | "REPAIR" | "CHECKSUM" => Some(verdict(Medium, format!("{} {}", w(0), w(1)))),
        "ALTER" if w(1) == "SYSTEM" => Some(verdict(
            High,
            "ALTER SYSTEM changes the server's configuration",
        )),
        "CREATE" | "ALTER" if matches!(w(1), "USER" | "ROLE" | "GROUP") => Some(verdict(
            Critical,
            format!(
                "{} {} (changes a role or user: who may do what)",
                w(0),
                w(1)
            ),
        )),
        "CREATE" if w(1) == "OR" && matches!(w(3), "TABLE" | "DATABASE" | "SCHEMA") => {
            Some(verdict(
                Critical,
                format!(
                    "CREATE OR REPLACE {}: replaces (drops) any of that name",
                    w(3)
                ),
            ))
        }
        // A DROP inside an ALTER the parser did not read may drop a column.
        "ALTER" if has_word("DROP") || has_word("TRUNCATE") => Some(verdict(
            Critical,
            format!("ALTER {} that drops something {unread}", w(1)),
        )),
        "CREATE" | "ALTER" => Some(verdict(
            High,
            format!("{} {} changes the schema {unread}", w(0), w(1)),
        )),
        "GRANT" | "REVOKE" => Some(verdict(Critical, format!("{} (changes privileges)", w(0)))),
        "REASSIGN" | "IMPORT" | "SECURITY" => Some(verdict(
            High,
            format!("{} {} changes the schema or its owners", w(0), w(1)),
        )),
        "LOAD" if matches!(w(1), "DATA" | "XML") => Some(verdict(
            Medium,
            format!("LOAD {} INFILE loads a file into a table", w(1)),
        )),
        "LOAD" if w(1) == "INDEX" => Some(verdict(Medium, "LOAD INDEX INTO CACHE")),
        "SHUTDOWN" | "RESTART" => Some(verdict(High, format!("{} stops the server", w(0)))),
        "PURGE" => Some(verdict(High, "PURGE deletes binary logs")),
        "INSTALL" | "UNINSTALL" => Some(verdict(High, format!("{} {} (server code)", w(0), w(1)))),
        "BINLOG" => Some(verdict(High, "BINLOG replays logged changes")),
        "CHANGE" => Some(verdict(
            High,
            format!("CHANGE {} changes replication", w(1)),
        )),
        "START" | "STOP" if matches!(w(1), "SLAVE" | "REPLICA" | "GROUP_REPLICATION") => Some(
            verdict(High, format!("{} {} changes replication", w(0), w(1))),
        ),
        "HANDLER" | "XA" | "HELP" => Some(verdict(Low, format!("{} {}", w(0), w(1)))),
        "PRAGMA" => {
            let args = chunk
                .iter()
                .any(|t| matches!(t.token, Token::Eq | Token::LParen));
            let reads = [
                "TABLE_INFO",
                "TABLE_XINFO",
                "TABLE_LIST",
                "INDEX_INFO",
                "INDEX_XINFO",
                "INDEX_LIST",
                "FOREIGN_KEY_LIST",
                "FOREIGN_KEY_CHECK",
                "INTEGRITY_CHECK",
                "QUICK_CHECK",
            ];
            if args && !reads.contains(&w(1)) {
                Some(verdict(
                    Medium,
                    format!("PRAGMA {} (changes a setting)", w(1)),
                ))
            } else {
                Some(verdict(Low, format!("PRAGMA {}", w(1))))
            }
        }
        _ => None,
    };
    if let Some(v) = by_kind {
        return Ok(vec![v]);
    }
    if let Some((stripped, target)) = strip_into_outfile(chunk) {
        let mut verdicts = rate_tokens(&stripped, dialect)?;
        verdicts.push(verdict(
            RiskLevel::High,
            format!("SELECT … INTO OUTFILE {target}: writes a file on the database server"),
        ));
        return Ok(verdicts);
    }
    rate_tokens(chunk, dialect)
}

fn rate_tokens(tokens: &[TokenWithSpan], dialect: Dialect) -> Result<Vec<SqlVerdict>, String> {
    parse_tokens(tokens, dialect).map(|s| rate_statements(&s))
}

/// MySQL's `INTO OUTFILE 'f' …` / `INTO DUMPFILE 'f'`, which the parser does
/// not know: the tokens without that clause, and the file named.
fn strip_into_outfile(chunk: &[TokenWithSpan]) -> Option<(Vec<TokenWithSpan>, String)> {
    let significant: Vec<usize> = (0..chunk.len())
        .filter(|&i| !is_space(&chunk[i].token))
        .collect();
    let pos = significant.windows(2).position(|w| {
        upper_word(&chunk[w[0]].token).as_deref() == Some("INTO")
            && matches!(
                upper_word(&chunk[w[1]].token).as_deref(),
                Some("OUTFILE" | "DUMPFILE")
            )
    })?;
    let start = significant[pos];
    let target = match significant.get(pos + 2).map(|&i| &chunk[i].token) {
        Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => {
            format!("'{}'", label(s))
        }
        _ => "(a file)".to_owned(),
    };
    // The clause runs to the next clause keyword at this level, or the end.
    let mut depth = 0usize;
    let mut end = chunk.len();
    for (i, t) in chunk.iter().enumerate().skip(start + 1) {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => {
                end = i;
                break;
            }
            Token::RParen => depth -= 1,
            tok if depth == 0 => {
                if let Some(
                    "FROM" | "WHERE" | "GROUP" | "HAVING" | "ORDER" | "LIMIT" | "FOR" | "LOCK"
                    | "UNION" | "WINDOW" | "EXCEPT" | "INTERSECT",
                ) = upper_word(tok).as_deref()
                {
                    end = i;
                    break;
                }
            }
            _ => {}
        }
    }
    let mut out = chunk[..start].to_vec();
    out.extend_from_slice(&chunk[end..]);
    Some((out, target))
}

// -------------------------------------------------------- rating the tree

fn rate_statements(statements: &[Statement]) -> Vec<SqlVerdict> {
    let mut walker = Walker {
        out: Vec::new(),
        quiet: 0,
    };
    for s in statements {
        let _ = s.visit(&mut walker);
    }
    walker.out
}

/// Statements whose inner statements and expressions do not run now: a
/// function, procedure, trigger or rule body runs later (the definition is
/// rated HIGH), a plain `EXPLAIN` only plans.
fn defines_only(s: &Statement) -> bool {
    match s {
        Statement::CreateFunction(_)
        | Statement::CreateProcedure { .. }
        | Statement::CreateTrigger(_)
        | Statement::CreateMacro { .. }
        | Statement::CreateRule(_) => true,
        Statement::Explain { .. } => !explain_runs(s),
        _ => false,
    }
}

/// Whether an `EXPLAIN` runs its statement: `ANALYZE` as a keyword or as
/// an option that is not switched off.
fn explain_runs(s: &Statement) -> bool {
    let Statement::Explain {
        analyze, options, ..
    } = s
    else {
        return false;
    };
    *analyze
        || options.iter().flatten().any(|o| {
            let name = o.name.value.to_ascii_lowercase();
            (name == "analyze" || name == "analyse")
                && !o.arg.as_ref().is_some_and(|a| {
                    matches!(
                        a.to_string().to_ascii_lowercase().trim_matches('\''),
                        "false" | "off" | "0" | "no"
                    )
                })
        })
}

/// Walks a statement: every statement in it (itself included), every
/// expression (function calls), every `SELECT` (`INTO`) and table factor
/// (functions in `FROM`).
struct Walker {
    out: Vec<SqlVerdict>,
    /// How many [`defines_only`] statements the walk is inside: findings
    /// there do not count.
    quiet: usize,
}

impl Visitor for Walker {
    type Break = ();

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        if self.quiet == 0
            && let Some(v) = rate_statement(s)
        {
            self.out.push(v);
        }
        if defines_only(s) {
            self.quiet += 1;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        if defines_only(s) {
            self.quiet -= 1;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if self.quiet == 0
            && let Expr::Function(f) = e
            && let Some(v) = rate_function(&f.name)
        {
            self.out.push(v);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<()> {
        if self.quiet == 0
            && let Some(into) = &s.into
        {
            let tables: Vec<String> = into
                .targets
                .iter()
                .map(|t| t.to_string())
                .filter(|t| !t.starts_with('@'))
                .collect();
            if !tables.is_empty() {
                self.out.push(verdict(
                    RiskLevel::High,
                    format!(
                        "SELECT INTO creates the table `{}`",
                        label(&tables.join(", "))
                    ),
                ));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        if self.quiet > 0 {
            return ControlFlow::Continue(());
        }
        let name = match t {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => Some(name),
            TableFactor::Function { name, .. } => Some(name),
            _ => None,
        };
        if let Some(v) = name.and_then(rate_function) {
            self.out.push(v);
        }
        ControlFlow::Continue(())
    }
}

/// Side-effecting functions, by lower-cased unqualified name.
fn function_level(name: &str) -> Option<(RiskLevel, &'static str)> {
    use RiskLevel::{High, Medium};
    Some(match name {
        "pg_terminate_backend" => (High, "ends another session"),
        "pg_drop_replication_slot" => (High, "drops a replication slot"),
        "pg_replication_origin_drop" => (High, "drops a replication origin"),
        "lo_unlink" => (High, "deletes a large object"),
        "pg_promote" => (High, "promotes a standby to primary"),
        "pg_wal_replay_pause" | "pg_wal_replay_resume" => (High, "pauses or resumes WAL replay"),
        "pg_rotate_logfile" | "pg_rotate_logfile_old" => (High, "rotates the server log"),
        "pg_file_write" | "pg_file_unlink" | "pg_file_rename" | "pg_file_sync" => {
            (High, "writes or deletes a server file")
        }
        "pg_read_file"
        | "pg_read_binary_file"
        | "pg_stat_file"
        | "pg_logdir_ls"
        | "lo_import"
        | "lo_export" => (High, "reads or writes a server file"),
        n if n.starts_with("pg_ls_") => (High, "lists a server directory"),
        "dblink_exec" | "dblink" | "dblink_send_query" | "dblink_open" => {
            (High, "runs SQL on another server, which is not rated")
        }
        "query_to_xml" | "query_to_xml_and_xmlschema" | "query_to_xmlschema" => {
            (High, "runs SQL from a string, which is not rated")
        }
        "load_file" => (High, "reads a server file"),
        "sys_exec" | "sys_eval" => (High, "runs a shell command on the server"),
        "load_extension" => (High, "loads native code"),
        "writefile" | "readfile" => (High, "reads or writes a file"),
        "edit" => (High, "opens an editor"),
        "pg_cancel_backend" => (High, "cancels another session's query"),
        "pg_reload_conf" => (High, "reloads the server configuration"),
        "set_config" => (Medium, "changes a setting"),
        "nextval" => (Medium, "advances a sequence"),
        "setval" => (High, "sets a sequence: later inserts may collide"),
        n if n.starts_with("pg_advisory_") || n.starts_with("pg_try_advisory_") => {
            (Medium, "takes an advisory lock")
        }
        "pg_switch_wal" | "pg_switch_xlog" | "pg_create_restore_point" => {
            (Medium, "switches or marks the WAL")
        }
        "pg_backup_start" | "pg_backup_stop" | "pg_start_backup" | "pg_stop_backup" => {
            (Medium, "starts or stops a backup")
        }
        n if n.starts_with("pg_create_") && n.ends_with("_replication_slot") => {
            (Medium, "creates a replication slot")
        }
        n if n.starts_with("pg_copy_") && n.ends_with("_replication_slot") => {
            (Medium, "creates a replication slot")
        }
        "pg_replication_slot_advance" => (Medium, "advances a replication slot"),
        n if n.starts_with("pg_stat_reset") || n.starts_with("pg_stat_statements_reset") => {
            (Medium, "resets statistics")
        }
        "pg_logical_emit_message" => (Medium, "writes a message to the WAL"),
        "lo_create" | "lo_creat" | "lo_from_bytea" | "lo_put" | "lo_truncate" | "lowrite" => {
            (Medium, "creates or changes a large object")
        }
        _ => return None,
    })
}

fn rate_function(name: &ObjectName) -> Option<SqlVerdict> {
    let last = match name.0.last()? {
        ObjectNamePart::Identifier(i) => i.value.to_ascii_lowercase(),
        ObjectNamePart::Function(f) => f.name.value.to_ascii_lowercase(),
    };
    let (level, what) = function_level(&last)?;
    Some(verdict(
        level,
        format!("calls {}(): {what}", label(&name.to_string())),
    ))
}

/// A name or fragment shortened for a reason.
fn label(s: &str) -> String {
    if s.chars().count() <= MAX_LABEL_CHARS {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(MAX_LABEL_CHARS).collect();
    out.push('…');
    out
}

fn names(list: &[ObjectName]) -> String {
    let mut out = String::new();
    for (i, n) in list.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{n}");
    }
    label(&out)
}

/// The start of a statement as written back by the parser, for reasons.
fn statement_head(s: &Statement) -> String {
    let text = s.to_string();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    label(&text)
}

fn table_of(t: &TableWithJoins) -> String {
    match &t.relation {
        TableFactor::Table { name, .. } => label(&name.to_string()),
        _ => "a subquery".to_owned(),
    }
}

/// A `WHERE` that keeps every row: `true`, a non-zero number, `1 = 1`,
/// `… OR true`.
fn always_true(e: &Expr, depth: usize) -> bool {
    if depth > 32 {
        return false;
    }
    match e {
        Expr::Value(v) => match &v.value {
            Value::Boolean(b) => *b,
            Value::Number(n, _) => n.parse::<f64>().is_ok_and(|x| x != 0.0),
            _ => false,
        },
        Expr::Nested(inner) => always_true(inner, depth + 1),
        Expr::BinaryOp { left, op, right } => match op {
            BinaryOperator::Or => always_true(left, depth + 1) || always_true(right, depth + 1),
            BinaryOperator::And => always_true(left, depth + 1) && always_true(right, depth + 1),
            BinaryOperator::Eq => {
                matches!(**left, Expr::Value(_)) && left == right
                    || matches!((&**left, &**right), (Expr::Identifier(a), Expr::Identifier(b)) if a.value == b.value && a.quote_style.is_none() == b.quote_style.is_none())
            }
            _ => false,
        },
        Expr::IsNotNull(inner) => {
            matches!(**inner, Expr::Value(ref v) if !matches!(v.value, Value::Null))
        }
        _ => false,
    }
}

/// What the rows a `WHERE` keeps are: `None` for every row.
fn where_clause(selection: &Option<Expr>) -> Option<&'static str> {
    match selection {
        None => None,
        Some(e) if always_true(e, 0) => None,
        Some(_) => Some("with a WHERE clause"),
    }
}

fn no_where_reason(selection: &Option<Expr>) -> &'static str {
    if selection.is_some() {
        "with a WHERE clause that is always true"
    } else {
        "without a WHERE clause"
    }
}

/// The rating of one statement by its kind (not its parts: the walker finds
/// nested statements and function calls itself). `None` when the statement
/// only wraps others that decide (a `WITH … DELETE`, `EXPLAIN ANALYZE`).
fn rate_statement(s: &Statement) -> Option<SqlVerdict> {
    use RiskLevel::{Critical, High, Low, Medium};
    let v = match s {
        Statement::Query(q) => match &*q.body {
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                return None;
            }
            SetExpr::Values(_) => verdict(Low, "VALUES"),
            SetExpr::Table(_) => verdict(Low, "TABLE (reads a table)"),
            _ => verdict(Low, "SELECT"),
        },
        Statement::Insert(i) => {
            let table = match &i.table {
                TableObject::TableName(n) => label(&n.to_string()),
                _ => "a table function".to_owned(),
            };
            if i.overwrite {
                verdict(
                    Critical,
                    format!("INSERT OVERWRITE replaces the contents of `{table}`"),
                )
            } else {
                let verb = if i.replace_into { "REPLACE" } else { "INSERT" };
                let from_query = i
                    .source
                    .as_ref()
                    .is_some_and(|q| !matches!(*q.body, SetExpr::Values(_)));
                let upsert = match &i.on {
                    Some(OnInsert::DuplicateKeyUpdate(_)) => " (upsert: ON DUPLICATE KEY UPDATE)",
                    Some(OnInsert::OnConflict(c))
                        if matches!(c.action, OnConflictAction::DoUpdate(_)) =>
                    {
                        " (upsert: ON CONFLICT DO UPDATE)"
                    }
                    _ => "",
                };
                let select = if from_query { " … SELECT" } else { "" };
                verdict(Medium, format!("{verb} INTO `{table}`{select}{upsert}"))
            }
        }
        Statement::Update(u) => {
            let table = table_of(&u.table);
            match where_clause(&u.selection) {
                None => verdict(
                    Critical,
                    format!(
                        "UPDATE `{table}` {}: changes every row",
                        no_where_reason(&u.selection)
                    ),
                ),
                Some(w) => verdict(Medium, format!("UPDATE `{table}` {w}")),
            }
        }
        Statement::Delete(d) => {
            let table = if d.tables.is_empty() {
                let from = match &d.from {
                    FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
                };
                from.iter().map(table_of).collect::<Vec<_>>().join(", ")
            } else {
                names(&d.tables)
            };
            match where_clause(&d.selection) {
                None => verdict(
                    Critical,
                    format!(
                        "DELETE {} on `{table}`: deletes every row",
                        no_where_reason(&d.selection)
                    ),
                ),
                Some(w) => verdict(Medium, format!("DELETE FROM `{table}` {w}")),
            }
        }
        Statement::Merge(m) => {
            let table = match &m.table {
                TableFactor::Table { name, .. } => label(&name.to_string()),
                _ => "a subquery".to_owned(),
            };
            verdict(Medium, format!("MERGE INTO `{table}`"))
        }
        Statement::Truncate(t) => {
            let list: Vec<ObjectName> = t.table_names.iter().map(|t| t.name.clone()).collect();
            verdict(
                Critical,
                format!("TRUNCATE `{}`: deletes every row", names(&list)),
            )
        }
        Statement::Drop {
            object_type,
            names: list,
            ..
        } => {
            if *object_type == ObjectType::Database || *object_type == ObjectType::Schema {
                verdict(
                    Critical,
                    format!(
                        "DROP {object_type} `{}`: destroys the whole {} and everything in it",
                        names(list),
                        object_type.to_string().to_ascii_lowercase()
                    ),
                )
            } else {
                verdict(Critical, format!("DROP {object_type} `{}`", names(list)))
            }
        }
        Statement::DropFunction(_)
        | Statement::DropDomain(_)
        | Statement::DropProcedure { .. }
        | Statement::DropSecret { .. }
        | Statement::DropPolicy(_)
        | Statement::DropRule(_)
        | Statement::DropConnector { .. }
        | Statement::DropExtension(_)
        | Statement::DropOperator(_)
        | Statement::DropOperatorFamily(_)
        | Statement::DropOperatorClass(_)
        | Statement::DropTrigger(_) => verdict(Critical, statement_head(s)),
        Statement::AlterTable(a) => {
            use sqlparser::ast::AlterTableOperation as Op;
            let destroys = a
                .operations
                .iter()
                .any(|op| matches!(op, Op::DropColumn { .. } | Op::DropPartitions { .. }));
            if destroys {
                verdict(
                    Critical,
                    format!(
                        "ALTER TABLE `{}` drops a column or partition: destroys its data",
                        label(&a.name.to_string())
                    ),
                )
            } else {
                verdict(High, statement_head(s))
            }
        }
        Statement::CreateTable(c) if c.or_replace => verdict(
            Critical,
            format!(
                "CREATE OR REPLACE TABLE `{}`: replaces (drops) any table of that name",
                label(&c.name.to_string())
            ),
        ),
        Statement::CreateFunction(_)
        | Statement::CreateProcedure { .. }
        | Statement::CreateTrigger(_)
        | Statement::CreateMacro { .. }
        | Statement::CreateRule(_) => verdict(
            High,
            format!("{} (defines code that runs later)", statement_head(s)),
        ),
        Statement::Call(f) => verdict(
            High,
            format!("CALL {}: runs a procedure", label(&f.name.to_string())),
        ),
        Statement::Execute { name, .. } => verdict(
            High,
            format!(
                "EXECUTE {}: runs a prepared statement or code not rated here",
                name.as_ref()
                    .map(|n| label(&n.to_string()))
                    .unwrap_or_default()
            ),
        ),
        Statement::Copy {
            source, to, target, ..
        } => rate_copy(source, *to, target),
        Statement::Explain { statement, .. } => {
            if explain_runs(s) {
                // The statement it runs is rated on its own.
                verdict(Low, "EXPLAIN ANALYZE runs the statement it explains")
            } else {
                verdict(
                    Low,
                    format!(
                        "EXPLAIN {} (plans it, does not run it)",
                        statement_head(statement)
                    ),
                )
            }
        }
        Statement::ExplainTable { .. } => verdict(Low, statement_head(s)),
        Statement::Set(set) => {
            let global = match set {
                Set::SingleAssignment { scope, .. } => *scope == Some(ContextModifier::Global),
                Set::MultipleAssignments { assignments } => assignments
                    .iter()
                    .any(|a| a.scope == Some(ContextModifier::Global)),
                _ => false,
            };
            if global {
                verdict(Medium, "SET GLOBAL changes a server-wide setting")
            } else {
                verdict(Low, "SET (a session setting)")
            }
        }
        Statement::Reset(_) => {
            let head = statement_head(s);
            let upper = head.to_ascii_uppercase();
            if ["MASTER", "SLAVE", "REPLICA", "BINARY", "PERSIST"]
                .iter()
                .any(|w| upper.split_whitespace().nth(1) == Some(w))
            {
                verdict(High, format!("{head} (deletes logs or server state)"))
            } else {
                verdict(Low, "RESET (a session setting)")
            }
        }
        Statement::StartTransaction { .. } => verdict(Low, "BEGIN (a transaction)"),
        Statement::Commit { .. } => verdict(Low, "COMMIT"),
        Statement::Rollback { .. } => verdict(Low, "ROLLBACK"),
        Statement::Savepoint { .. } | Statement::ReleaseSavepoint { .. } => {
            verdict(Low, "SAVEPOINT")
        }
        Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowProcessList { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowCharset(_)
        | Statement::ShowObjects(_)
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowCollation { .. } => verdict(Low, statement_head(s)),
        Statement::Use(_)
        | Statement::Declare { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Open(_)
        | Statement::Deallocate { .. }
        | Statement::Prepare { .. }
        | Statement::LISTEN { .. }
        | Statement::UNLISTEN { .. }
        | Statement::NOTIFY { .. }
        | Statement::Discard { .. }
        | Statement::UnlockTables
        | Statement::List(_)
        | Statement::Case(_)
        | Statement::If(_)
        | Statement::While(_)
        | Statement::Raise(_)
        | Statement::Return(_)
        | Statement::Throw(_)
        | Statement::Print(_)
        | Statement::WaitFor(_)
        | Statement::Assert { .. }
        | Statement::RaisError { .. } => verdict(Low, statement_head(s)),
        Statement::Pragma { name, value, .. } if value.is_none() || pragma_reads(name) => {
            verdict(Low, statement_head(s))
        }
        Statement::Pragma { .. } => {
            verdict(Medium, format!("{} (changes a setting)", statement_head(s)))
        }
        Statement::Analyze(_)
        | Statement::Vacuum(_)
        | Statement::RefreshMaterializedView(_)
        | Statement::Lock(_)
        | Statement::LockTables { .. }
        | Statement::Comment { .. }
        | Statement::AttachDatabase { .. }
        | Statement::DetachDuckDBDatabase { .. }
        | Statement::Flush { .. }
        | Statement::Cache { .. }
        | Statement::UNCache { .. }
        | Statement::OptimizeTable { .. }
        | Statement::Msck(_)
        | Statement::LoadData { .. } => verdict(Medium, statement_head(s)),
        Statement::Kill { modifier, id } => match modifier {
            Some(KillType::Query) => verdict(Medium, format!("KILL QUERY {id}: cancels a query")),
            _ => verdict(High, format!("KILL {id}: ends a connection")),
        },
        Statement::Grant(_)
        | Statement::GrantRole(_)
        | Statement::Deny(_)
        | Statement::Revoke(_)
        | Statement::RevokeRole(_)
        | Statement::AlterDefaultPrivileges(_) => verdict(
            Critical,
            format!("{} (changes privileges)", statement_head(s)),
        ),
        // Who may do what: CRITICAL, like an IAM or RBAC change.
        Statement::CreateRole(_)
        | Statement::AlterRole { .. }
        | Statement::CreateUser(_)
        | Statement::AlterUser(_) => verdict(
            Critical,
            format!(
                "{} (changes a role or user: who may do what)",
                statement_head(s)
            ),
        ),
        // Every other statement creates or changes schema, runs code, or
        // moves files: HIGH, except that any kind of DROP is CRITICAL.
        _ => {
            let head = statement_head(s);
            if head.to_ascii_uppercase().starts_with("DROP ") {
                verdict(Critical, head)
            } else {
                verdict(High, head)
            }
        }
    };
    Some(v)
}

/// SQLite pragmas that take an argument and only read.
fn pragma_reads(name: &ObjectName) -> bool {
    let last = name
        .to_string()
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    matches!(
        last.as_str(),
        "table_info"
            | "table_xinfo"
            | "table_list"
            | "index_info"
            | "index_xinfo"
            | "index_list"
            | "foreign_key_list"
            | "foreign_key_check"
            | "integrity_check"
            | "quick_check"
    )
}

fn rate_copy(source: &CopySource, to: bool, target: &CopyTarget) -> SqlVerdict {
    let what = match source {
        CopySource::Table { table_name, .. } => format!("`{}`", label(&table_name.to_string())),
        CopySource::Query(_) => "(a query)".to_owned(),
    };
    let dir = if to { "TO" } else { "FROM" };
    match target {
        CopyTarget::Program { command } => verdict(
            RiskLevel::High,
            format!(
                "COPY {what} {dir} PROGRAM runs a shell command on the database server: `{}`",
                label(command)
            ),
        ),
        CopyTarget::File { filename } => verdict(
            RiskLevel::High,
            format!("COPY {what} {dir} the server file '{}'", label(filename)),
        ),
        CopyTarget::Stdin => verdict(
            RiskLevel::Medium,
            format!("COPY {what} FROM STDIN loads rows"),
        ),
        CopyTarget::Stdout => verdict(RiskLevel::Low, format!("COPY {what} TO STDOUT reads rows")),
    }
}

// ------------------------------------------------------------------- psql

/// A psql script split into the SQL it sends and what its meta-commands do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct PsqlScript {
    /// The SQL, meta-commands taken out (a query-sending one such as `\g`
    /// leaves a `;`), psql variables set in the script substituted, and the
    /// queries of `\copy (…)` added as statements of their own. Rate it with
    /// [`rate_sql`] and [`Dialect::Postgres`].
    pub sql: String,
    /// Shell commands the script runs (`\!`, `\o |…`, `\copy … program`,
    /// backquotes), for the caller to rate as shell lines.
    pub shell: Vec<String>,
    /// One verdict per meta-command, and for psql variables whose value the
    /// script does not show.
    pub verdicts: Vec<SqlVerdict>,
}

/// Splits a psql script (what psql reads from a file or standard input)
/// into its SQL and its meta-commands.
///
/// psql's own lexing is followed: a backslash starts a meta-command only
/// outside quotes, dollar quotes and comments; a meta-command ends at the
/// end of its line, at `\\`, or at the next unquoted backslash, except
/// `\!`, `\copy` and a `|command` argument, which take the rest of the line.
/// A `psql -c` string that does not start with a backslash is sent to the
/// server as it is (no meta-commands, no variables): rate it with
/// [`rate_sql`] directly.
/// Splits an sqlite3 script into its SQL and its dot-commands (`.tables`,
/// `.shell …`), one per line.
pub(crate) fn split_sqlite(text: &str) -> PsqlScript {
    let mut out = PsqlScript::default();
    for line in text.lines() {
        let t = line.trim_start();
        let Some(dot) = t.strip_prefix('.') else {
            out.sql.push_str(line);
            out.sql.push('\n');
            continue;
        };
        let (name, rest) = dot.split_once(char::is_whitespace).unwrap_or((dot, ""));
        let (level, what) = match name {
            "shell" | "system" => {
                out.shell.push(rest.trim().to_owned());
                (RiskLevel::High, "runs a shell command")
            }
            "read" | "load" => (
                RiskLevel::High,
                "runs SQL or code from a file it cannot see",
            ),
            "restore" => (RiskLevel::High, "replaces the database with a file"),
            "output" | "once" if rest.trim_start().starts_with('|') => {
                out.shell.push(rest.trim_start()[1..].trim().to_owned());
                (RiskLevel::High, "pipes output to a shell command")
            }
            "output" | "once" | "save" | "backup" | "import" | "excel" | "clone" | "archive"
            | "ar" => (RiskLevel::Medium, "writes or imports a file"),
            "tables" | "schema" | "indexes" | "indices" | "dump" | "show" | "databases"
            | "mode" | "headers" | "header" | "help" | "quit" | "exit" | "timer" | "width"
            | "separator" | "nullvalue" | "print" | "echo" | "eqp" | "explain" | "stats"
            | "dbinfo" | "fullschema" | "lint" | "expert" | "timeout" | "changes" | "bail"
            | "prompt" | "show-only" | "limit" | "sha3sum" | "selftest" | "version" => {
                (RiskLevel::Low, "only reads or formats")
            }
            _ => (
                RiskLevel::Medium,
                "an sqlite3 dot-command this rater does not know",
            ),
        };
        out.verdicts
            .push(verdict(level, format!("sqlite3 `.{name}` {what}")));
    }
    out
}

pub(crate) fn split_psql(text: &str) -> PsqlScript {
    let mut s = PsqlSplitter {
        src: text,
        pos: 0,
        out: PsqlScript::default(),
        vars: HashMap::new(),
        unknown_vars: BTreeSet::new(),
    };
    s.run();
    let mut out = s.out;
    for name in s.unknown_vars {
        out.verdicts.push(verdict(
            RiskLevel::Medium,
            format!(
                "psql variable `:{name}` is pasted into the SQL and its value is not in the script"
            ),
        ));
    }
    out
}

struct PsqlSplitter<'a> {
    src: &'a str,
    pos: usize,
    out: PsqlScript,
    /// Variables set by `\set` in the script; `None` once their value is
    /// unknown (set from backquotes).
    vars: HashMap<String, Option<String>>,
    unknown_vars: BTreeSet<String>,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || !c.is_ascii() && !c.is_whitespace()
}

fn is_ident_char(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == '$'
}

impl<'a> PsqlSplitter<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Copies `n` bytes of the source to the SQL.
    fn copy(&mut self, n: usize) {
        let end = (self.pos + n).min(self.src.len());
        self.out.sql.push_str(&self.src[self.pos..end]);
        self.pos = end;
    }

    fn prev_char(&self) -> Option<char> {
        self.src[..self.pos].chars().next_back()
    }

    fn run(&mut self) {
        while let Some(c) = self.peek() {
            let rest = self.rest();
            match c {
                '\'' => {
                    let escapes = matches!(self.prev_char(), Some('e' | 'E'))
                        && !self.src[..self.pos - 1]
                            .chars()
                            .next_back()
                            .is_some_and(is_ident_char);
                    let n = quoted_len(rest, '\'', escapes);
                    self.copy(n);
                }
                '"' => {
                    let n = quoted_len(rest, '"', false);
                    self.copy(n);
                }
                '$' if !self.prev_char().is_some_and(is_ident_char) => match dollar_tag(rest) {
                    Some(tag) => {
                        let body = &rest[tag.len()..];
                        let n = match body.find(tag) {
                            Some(i) => tag.len() + i + tag.len(),
                            None => rest.len(),
                        };
                        self.copy(n);
                    }
                    None => self.copy(1),
                },
                '-' if rest.starts_with("--") => {
                    let n = rest.find('\n').unwrap_or(rest.len());
                    self.copy(n);
                }
                '/' if rest.starts_with("/*") => {
                    let n = block_comment_len(rest);
                    self.copy(n);
                }
                ':' if rest.starts_with("::") => self.copy(2),
                ':' => self.variable(),
                '\\' => self.meta_command(),
                _ => self.copy(c.len_utf8()),
            }
        }
    }

    /// `:name`, `:'name'`, `:"name"` in SQL: psql pastes the variable in.
    fn variable(&mut self) {
        let rest = self.rest();
        let after = &rest[1..];
        let (quote, name_start) = match after.chars().next() {
            Some(q @ ('\'' | '"')) => (Some(q), 2),
            _ => (None, 1),
        };
        let name: String = rest[name_start..]
            .chars()
            .take_while(|&c| c.is_alphanumeric() || c == '_')
            .collect();
        let closed = match quote {
            Some(q) => rest[name_start + name.len()..].starts_with(q),
            None => true,
        };
        if name.is_empty() || !closed || self.prev_char().is_some_and(|c| c == ':') {
            self.copy(1);
            return;
        }
        let len = name_start + name.len() + usize::from(quote.is_some());
        match (self.vars.get(&name), quote) {
            (Some(Some(value)), None) => self.out.sql.push_str(value),
            (Some(Some(value)), Some('\'')) => {
                self.out.sql.push('\'');
                self.out.sql.push_str(&value.replace('\'', "''"));
                self.out.sql.push('\'');
            }
            (Some(Some(value)), Some(_)) => {
                self.out.sql.push('"');
                self.out.sql.push_str(&value.replace('"', "\"\""));
                self.out.sql.push('"');
            }
            // A quoted variable is pasted in as one literal or name: its
            // value cannot change the statement, so any stands in for it.
            (_, Some(q)) => {
                self.out.sql.push(q);
                self.out.sql.push_str(&name);
                self.out.sql.push(q);
            }
            (_, None) => {
                // `a[1:2]` reads `:2` as a variable too; only names that
                // start with a letter are worth a verdict.
                if !name.starts_with(|c: char| c.is_ascii_digit()) {
                    self.unknown_vars.insert(name.clone());
                }
                self.out.sql.push_str(&rest[..len]);
            }
        }
        self.pos += len;
    }

    /// The text from the current position to the end of the line; the
    /// position moves to the newline (which is kept for the SQL).
    fn take_line(&mut self) -> &str {
        let rest = &self.src[self.pos..];
        let n = rest.find('\n').unwrap_or(rest.len());
        self.pos += n;
        &rest[..n]
    }

    fn meta_command(&mut self) {
        self.pos += 1; // the backslash
        if self.rest().starts_with(';') {
            // `\;`: a semicolon sent along with the next statement.
            self.pos += 1;
            self.out.sql.push(';');
            return;
        }
        let rest = self.rest();
        let name_len = rest
            .find(|c: char| c.is_whitespace() || c == '\\')
            .unwrap_or(rest.len());
        let name = rest[..name_len].to_owned();
        self.pos += name_len;
        if name.is_empty() && self.rest().starts_with('\\') {
            self.pos += 1; // `\\`: back to SQL
            return;
        }
        self.out.sql.push(' ');
        let base = name.trim_end_matches('+');
        // `\!cmd` and `\o|cmd` are not commands psql knows, but they read
        // as a shell command glued on: rated as if spaced.
        if let Some(glued) = name.strip_prefix('!').filter(|g| !g.is_empty()) {
            let cmd = format!("{glued}{}", self.take_line()).trim().to_owned();
            self.shell_command("psql `\\!` runs a shell command", cmd, true);
            return;
        }
        if let Some((verb, glued)) = name.split_once('|')
            && matches!(verb, "o" | "out" | "g" | "gx" | "w" | "write")
        {
            let cmd = format!("{glued}{}", self.take_line()).trim().to_owned();
            self.shell_command(
                &format!("psql `\\{verb} |` pipes output to a shell command"),
                cmd,
                false,
            );
            return;
        }
        match base {
            "!" => {
                let cmd = self.take_line().trim().to_owned();
                self.shell_command("psql `\\!` runs a shell command", cmd, true);
            }
            "copy" => {
                let line = self.take_line().to_owned();
                self.copy_command(&line);
            }
            "ef" | "ev" => {
                self.take_line();
                self.push(
                    RiskLevel::High,
                    format!("psql `\\{name}` opens an editor and runs what is written there"),
                );
            }
            "sf" | "sv" | "h" | "help" => {
                self.take_line();
                self.push(
                    RiskLevel::Low,
                    format!("psql `\\{name}` shows help or a definition"),
                );
            }
            _ => {
                let args = self.args(matches!(base, "o" | "out" | "g" | "gx" | "w" | "write"));
                self.rate_meta(&name, base, args);
            }
        }
    }

    /// Reads a meta-command's arguments up to the end of the line, `\\` or
    /// the next unquoted backslash. With `pipe`, an argument starting with
    /// `|` takes the rest of the line.
    fn args(&mut self, pipe: bool) -> Args {
        let mut args = Args::default();
        loop {
            let rest = self.rest();
            let ws = rest
                .find(|c: char| !(c.is_whitespace() && c != '\n'))
                .unwrap_or(rest.len());
            self.pos += ws;
            let rest = self.rest();
            match rest.chars().next() {
                None | Some('\n') => return args,
                Some('\\') => {
                    if rest.starts_with("\\\\") {
                        self.pos += 2;
                    }
                    return args;
                }
                Some('|') if pipe && args.words.is_empty() => {
                    self.pos += 1;
                    args.pipe = Some(self.take_line().trim().to_owned());
                    return args;
                }
                Some(_) => {
                    let word = self.arg_word(&mut args);
                    args.words.push(word);
                }
            }
        }
    }

    /// One argument: quoted and unquoted pieces up to white space or a
    /// backslash. `None` when part of it is a backquoted command's output.
    fn arg_word(&mut self, args: &mut Args) -> Option<String> {
        let mut word = Some(String::new());
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == '\\' {
                break;
            }
            let rest = self.rest();
            match c {
                '\'' => {
                    let n = quoted_len(rest, '\'', true);
                    let inner = rest[1..n].strip_suffix('\'').unwrap_or(&rest[1..n]);
                    let value = unescape_psql_arg(inner);
                    if let Some(w) = word.as_mut() {
                        w.push_str(&value);
                    }
                    self.pos += n;
                }
                '`' => {
                    let body = &rest[1..];
                    let n = body.find('`').map_or(rest.len(), |i| i + 2);
                    let cmd = body[..(n - 1).min(body.len())]
                        .trim_end_matches('`')
                        .trim()
                        .to_owned();
                    args.backquotes.push(cmd);
                    word = None;
                    self.pos += n;
                }
                ':' => {
                    let name: String = rest[1..]
                        .chars()
                        .take_while(|&c| c.is_alphanumeric() || c == '_')
                        .collect();
                    match self.vars.get(&name) {
                        Some(Some(v)) if !name.is_empty() => {
                            if let Some(w) = word.as_mut() {
                                w.push_str(v);
                            }
                        }
                        _ if name.is_empty() => {
                            if let Some(w) = word.as_mut() {
                                w.push(':');
                            }
                        }
                        _ => word = None,
                    }
                    self.pos += 1 + name.len();
                }
                _ => {
                    if let Some(w) = word.as_mut() {
                        w.push(c);
                    }
                    self.pos += c.len_utf8();
                }
            }
        }
        word
    }

    fn push(&mut self, level: RiskLevel, reason: String) {
        self.out.verdicts.push(verdict(level, reason));
    }

    fn shell_command(&mut self, what: &str, cmd: String, interactive_if_empty: bool) {
        if cmd.is_empty() {
            if interactive_if_empty {
                self.push(
                    RiskLevel::High,
                    "psql `\\!` starts an interactive shell".to_owned(),
                );
            } else {
                self.push(RiskLevel::High, what.to_owned());
            }
            return;
        }
        self.push(RiskLevel::High, format!("{what}: `{}`", label(&cmd)));
        self.out.shell.push(cmd);
    }

    /// Rates a meta-command other than `\!`, `\copy` and the ones that only
    /// show something.
    fn rate_meta(&mut self, name: &str, base: &str, args: Args) {
        use RiskLevel::{High, Low, Medium};
        for cmd in args.backquotes.clone() {
            self.shell_command(
                &format!("psql backquotes in `\\{name}` run a shell command"),
                cmd,
                false,
            );
        }
        let first = args.words.first().cloned().flatten();
        let file = || match &first {
            Some(f) => format!("`{}`", label(f)),
            None => "a file named by a shell command".to_owned(),
        };
        let has_args = !args.words.is_empty();
        // A quoted `'|cmd'` is a pipe too.
        let quoted_pipe = match args.words.first() {
            Some(Some(w)) if matches!(base, "o" | "out" | "g" | "gx" | "w" | "write") => {
                w.strip_prefix('|').map(|c| c.trim().to_owned())
            }
            _ => None,
        };
        if let Some(cmd) = args.pipe.or(quoted_pipe) {
            self.shell_command(
                &format!("psql `\\{name} |` pipes output to a shell command"),
                cmd,
                false,
            );
            if matches!(base, "g" | "gx") {
                self.out.sql.push(';');
            }
            return;
        }
        match base {
            "g" | "gx" | "gset" | "gdesc" | "crosstabview" | "watch" | "r" | "reset" => {
                // These send (or drop) the query buffer: the statement ends.
                self.out.sql.push(';');
                if matches!(base, "g" | "gx") {
                    // `\g [(option=value …)] [file]`
                    let mut idx = 0;
                    let opens =
                        |w: &Option<String>| w.as_deref().is_some_and(|w| w.starts_with('('));
                    if args.words.first().is_some_and(opens) {
                        while idx < args.words.len() {
                            let closes =
                                args.words[idx].as_deref().is_some_and(|w| w.ends_with(')'));
                            idx += 1;
                            if closes {
                                break;
                            }
                        }
                    }
                    if let Some(f) = args.words.get(idx) {
                        let f = f
                            .as_ref()
                            .map_or("a file named by a shell command".to_owned(), |f| {
                                format!("`{}`", label(f))
                            });
                        self.push(
                            Medium,
                            format!("psql `\\{name}` writes query output to {f}"),
                        );
                        return;
                    }
                }
                if base == "gset" {
                    // The variables it sets hold query results: unknown.
                    for v in self.vars.values_mut() {
                        *v = None;
                    }
                }
                self.push(Low, format!("psql `\\{name}` runs the query"));
            }
            "gexec" => {
                self.out.sql.push(';');
                self.push(
                    High,
                    "psql `\\gexec` runs each value the query returns as SQL, which is not rated"
                        .to_owned(),
                );
            }
            "o" | "out" if has_args => {
                self.push(
                    Medium,
                    format!("psql `\\{name}` writes query output to {}", file()),
                );
            }
            "w" | "write" if has_args => {
                self.push(
                    Medium,
                    format!("psql `\\{name}` writes the query buffer to {}", file()),
                );
            }
            "s" if has_args => {
                self.push(
                    Medium,
                    format!("psql `\\s` writes the history to {}", file()),
                );
            }
            "i" | "include" | "ir" | "include_relative" => self.push(
                High,
                format!(
                    "psql `\\{name}` runs SQL from {}, which is not rated",
                    file()
                ),
            ),
            "e" | "edit" => self.push(
                High,
                format!("psql `\\{name}` opens an editor and runs what is written there"),
            ),
            "lo_import" => self.push(
                Medium,
                format!("psql `\\lo_import` reads the local file {}", file()),
            ),
            "lo_export" => {
                let f = args.words.get(1).cloned().flatten();
                let f = f.map_or("a file".to_owned(), |f| format!("`{}`", label(&f)));
                self.push(
                    Medium,
                    format!("psql `\\lo_export` writes the local file {f}"),
                );
            }
            "lo_unlink" => self.push(High, "psql `\\lo_unlink` deletes a large object".to_owned()),
            "password" => self.push(
                High,
                "psql `\\password` changes a role's password".to_owned(),
            ),
            "setenv" => self.push(
                Medium,
                "psql `\\setenv` sets an environment variable for the commands psql starts"
                    .to_owned(),
            ),
            "set" => {
                let mut words = args.words.into_iter();
                if let Some(Some(var)) = words.next() {
                    let value = if args.backquotes.is_empty() {
                        words.collect::<Option<Vec<String>>>().map(|v| v.concat())
                    } else {
                        None
                    };
                    self.vars.insert(var, value);
                }
                self.push(Low, format!("psql `\\{name}` sets a variable"));
            }
            "unset" => {
                if let Some(Some(var)) = args.words.first() {
                    self.vars.remove(var);
                }
                self.push(Low, "psql `\\unset` unsets a variable".to_owned());
            }
            "o" | "out" | "w" | "write" | "s" | "x" | "timing" | "conninfo" | "q" | "quit"
            | "pset" | "echo" | "qecho" | "warn" | "prompt" | "getenv" | "a" | "C" | "f" | "H"
            | "html" | "t" | "T" | "encoding" | "errverbose" | "?" | "copyright" | "p"
            | "print" | "l" | "list" | "lx" | "z" | "zx" | "c" | "connect" | "cd" | "if"
            | "elif" | "else" | "endif" | "lo_list" | "bind" | "bind_named" | "parse"
            | "close_prepared" | "startpipeline" | "endpipeline" | "syncpipeline" | "flush"
            | "flushrequest" | "getresults" | "sendpipeline" | "restrict" | "unrestrict" => {
                self.push(Low, format!("psql `\\{name}`"));
            }
            b if b.starts_with('d') => self.push(Low, format!("psql `\\{name}` describes objects")),
            _ => self.push(
                Medium,
                format!("unknown psql meta-command `\\{}`", label(name)),
            ),
        }
    }

    /// `\copy table|(query) [(columns)] from|to file|program 'cmd'|stdin|stdout …`
    fn copy_command(&mut self, line: &str) {
        use RiskLevel::{Low, Medium};
        let mut rest = line.trim_start();
        // The table, or the query in parentheses.
        let what = if rest.starts_with('(') {
            let n = balanced_len(rest);
            let query = rest[1..n].strip_suffix(')').unwrap_or(&rest[1..n]).trim();
            self.out.sql.push('\n');
            self.out.sql.push_str(query);
            self.out.sql.push_str(";\n");
            rest = &rest[n..];
            "(a query)".to_owned()
        } else {
            let n = rest
                .find(|c: char| c.is_whitespace() || c == '(')
                .unwrap_or(rest.len());
            let table = format!("`{}`", label(&rest[..n]));
            rest = &rest[n..];
            table
        };
        rest = rest.trim_start();
        if rest.starts_with('(') {
            rest = rest[balanced_len(rest)..].trim_start();
        }
        let (dir, after) = split_word(rest);
        let dir = dir.to_ascii_lowercase();
        if dir != "from" && dir != "to" {
            self.push(
                Medium,
                format!(
                    "psql `\\copy` that could not be read: `{}`",
                    label(line.trim())
                ),
            );
            return;
        }
        let (target, after) = split_word(after.trim_start());
        match target.to_ascii_lowercase().as_str() {
            "program" => {
                let arg = after.trim_start();
                let cmd = if arg.starts_with('\'') {
                    let n = quoted_len(arg, '\'', false);
                    let inner = arg[1..n].strip_suffix('\'').unwrap_or(&arg[1..n]);
                    inner.replace("''", "'")
                } else {
                    split_word(arg).0.to_owned()
                };
                self.shell_command(
                    &format!("psql `\\copy … {dir} program` runs a shell command"),
                    cmd,
                    false,
                );
            }
            "stdin" | "pstdin" => self.push(
                Medium,
                format!("psql `\\copy {what} from {target}` loads rows"),
            ),
            "stdout" | "pstdout" => {
                self.push(Low, format!("psql `\\copy {what} to {target}` prints rows"))
            }
            _ => {
                let file = if target.starts_with('\'') {
                    let n = quoted_len(target, '\'', false);
                    target[1..n]
                        .strip_suffix('\'')
                        .unwrap_or(&target[1..n])
                        .replace("''", "'")
                } else {
                    target.to_owned()
                };
                let reason = if dir == "to" {
                    format!(
                        "psql `\\copy {what} to` writes the local file `{}`",
                        label(&file)
                    )
                } else {
                    format!(
                        "psql `\\copy {what} from` reads the local file `{}` into the table",
                        label(&file)
                    )
                };
                self.push(Medium, reason);
            }
        }
    }
}

/// A meta-command's arguments.
#[derive(Debug, Default)]
struct Args {
    /// Each argument, `None` where a backquoted command supplies it.
    words: Vec<Option<String>>,
    /// Backquoted shell commands.
    backquotes: Vec<String>,
    /// The command of a `|command` argument.
    pipe: Option<String>,
}

/// The first white-space-separated word of `s` (a quoted one whole) and the
/// rest.
fn split_word(s: &str) -> (&str, &str) {
    let n = if s.starts_with('\'') {
        quoted_len(s, '\'', false)
    } else {
        s.find(char::is_whitespace).unwrap_or(s.len())
    };
    (&s[..n], &s[n..])
}

/// The length of the quoted text at the start of `s` (opening quote
/// included), doubled quotes inside; with `escapes`, a backslash escapes the
/// next character. Runs to the end when unclosed.
fn quoted_len(s: &str, quote: char, escapes: bool) -> usize {
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if escapes && c == '\\' {
            chars.next();
        } else if c == quote {
            if chars.peek().is_some_and(|&(_, n)| n == quote) {
                chars.next();
            } else {
                return i + c.len_utf8();
            }
        }
    }
    s.len()
}

/// `$tag$` at the start of `s`, if it opens a dollar quote.
fn dollar_tag(s: &str) -> Option<&str> {
    let body = &s[1..];
    let end = body.find('$')?;
    let tag = &body[..end];
    let ok = tag.is_empty()
        || tag.chars().next().is_some_and(is_ident_start)
            && tag.chars().all(|c| is_ident_char(c) && c != '$');
    ok.then(|| &s[..end + 2])
}

/// The length of the (nesting) block comment at the start of `s`.
fn block_comment_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    s.len()
}

/// The length of the parenthesized text at the start of `s`, quotes
/// respected. Runs to the end when unbalanced.
fn balanced_len(s: &str) -> usize {
    let mut depth = 0usize;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let Some(c) = rest.chars().next() else { break };
        match c {
            '\'' | '"' => {
                i += quoted_len(rest, c, false);
                continue;
            }
            '(' => depth += 1,
            ')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += c.len_utf8();
    }
    s.len()
}

/// psql's escapes in a single-quoted meta-command argument.
fn unescape_psql_arg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => {}
            },
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                out.push('\'');
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use RiskLevel::{Critical, High, Low, Medium};

    fn verdicts(sql: &str, d: Dialect) -> Vec<SqlVerdict> {
        match rate_sql(sql, d) {
            SqlRating::Parsed(v) => v,
            SqlRating::Unparseable(e) => panic!("{sql:?} did not parse: {e}"),
        }
    }

    fn pg(sql: &str) -> Vec<SqlVerdict> {
        verdicts(sql, Dialect::Postgres)
    }

    /// The level and the reason that set it (the first at that level).
    fn top(sql: &str, d: Dialect) -> (RiskLevel, String) {
        let v = verdicts(sql, d);
        let l = max_level(&v);
        let reason = v
            .iter()
            .find(|x| x.level == l)
            .map(|x| x.reason.clone())
            .unwrap_or_default();
        (l, reason)
    }

    fn assert_level(sql: &str, want: RiskLevel) {
        let v = pg(sql);
        assert_eq!(max_level(&v), want, "{sql:?}: {v:#?}");
    }

    #[test]
    fn reads_are_low() {
        for sql in [
            "SELECT * FROM users WHERE id = 1",
            "select count(*) from orders",
            "SHOW search_path",
            "EXPLAIN SELECT * FROM t",
            "VALUES (1, 2), (3, 4)",
            "SET search_path = app, public",
            "SET statement_timeout = '5s'",
            "BEGIN",
            "START TRANSACTION",
            "COMMIT",
            "ROLLBACK",
            "SAVEPOINT a",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "SELECT pg_sleep(1)",
            "SELECT now(), lower('A'), coalesce(NULL, 1)",
            "RESET ALL",
        ] {
            assert_level(sql, Low);
        }
    }

    #[test]
    fn explain_without_analyze_does_not_count_its_statement() {
        let v = pg("EXPLAIN DELETE FROM users");
        assert_eq!(max_level(&v), Low);
        assert!(
            v[0].reason.starts_with("EXPLAIN DELETE FROM users"),
            "{v:?}"
        );
        assert_level("EXPLAIN (ANALYZE false) DELETE FROM users", Low);
        assert_level("EXPLAIN (ANALYZE off, VERBOSE) DELETE FROM users", Low);
    }

    #[test]
    fn describe_and_mysql_show_are_low() {
        assert_eq!(top("DESCRIBE users", Dialect::MySql).0, Low);
        assert_eq!(top("SHOW TABLES", Dialect::MySql).0, Low);
        assert_eq!(top("SHOW PROCESSLIST", Dialect::MySql).0, Low);
        assert_eq!(
            top("SELECT SLEEP(1), BENCHMARK(10, 1)", Dialect::MySql).0,
            Low
        );
    }

    #[test]
    fn string_literals_and_comments_never_count() {
        assert_level("SELECT 'DROP TABLE ' || tablename FROM pg_tables", Low);
        assert_level(
            "SELECT format('DROP TABLE %I;', tablename) FROM pg_tables WHERE schemaname = 'x'",
            Low,
        );
        assert_level("SELECT 1 -- DROP TABLE users\n", Low);
        assert_level("/* TRUNCATE users; DELETE FROM users */ SELECT 1", Low);
        assert_level("SELECT $$DROP DATABASE prod$$", Low);
        assert_level("SELECT $tag$ ; DELETE FROM t; $tag$ AS x", Low);
        assert_level("SELECT E'it\\'s; DROP TABLE t' AS s", Low);
        assert_level(r#"SELECT "drop table" FROM "delete from""#, Low);
        assert_eq!(
            top("SELECT 'it\\'s; DROP TABLE t; -- '", Dialect::MySql).0,
            Low
        );
    }

    #[test]
    fn each_dialect_lexes_strings_its_own_way() {
        // To MySQL `\'` escapes the quote: one string, no DROP. To
        // PostgreSQL the string ends at `\'` and the DROP is code.
        let sql = "SELECT 'a\\'; DROP TABLE users; -- '";
        assert_eq!(top(sql, Dialect::MySql).0, Low);
        let (l, r) = top(sql, Dialect::Postgres);
        assert_eq!((l, r.as_str()), (Critical, "DROP TABLE `users`"));
    }

    #[test]
    fn mysql_executable_comments_are_code() {
        let (l, r) = top("SELECT 1; /*!50000 DROP TABLE users */", Dialect::MySql);
        assert_eq!((l, r.as_str()), (Critical, "DROP TABLE `users`"));
        // To PostgreSQL the same text is a comment.
        assert_level("SELECT 1; /*!50000 DROP TABLE users */", Low);
    }

    #[test]
    fn writes_with_where_are_medium() {
        assert_level("INSERT INTO users (name) VALUES ('a')", Medium);
        assert_level("UPDATE users SET name = 'b' WHERE id = 1", Medium);
        assert_level("DELETE FROM sessions WHERE expires < now()", Medium);
        assert_level("INSERT INTO archive SELECT * FROM orders WHERE old", Medium);
        let v = pg("INSERT INTO archive SELECT * FROM orders");
        assert_eq!(v[0].reason, "INSERT INTO `archive` … SELECT");
        let v = pg("INSERT INTO t (k, v) VALUES (1, 2) ON CONFLICT (k) DO UPDATE SET v = 2");
        assert_eq!(
            (v[0].level, v[0].reason.as_str()),
            (Medium, "INSERT INTO `t` (upsert: ON CONFLICT DO UPDATE)")
        );
        assert_level(
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v",
            Medium,
        );
        assert_eq!(
            top("REPLACE INTO t VALUES (1)", Dialect::MySql),
            (Medium, "REPLACE INTO `t`".to_owned())
        );
        assert_eq!(
            top(
                "INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE v = 1",
                Dialect::MySql
            )
            .0,
            Medium
        );
    }

    #[test]
    fn whole_table_writes_are_critical() {
        let (l, r) = top("DELETE FROM users", Dialect::Postgres);
        assert_eq!(l, Critical);
        assert_eq!(
            r,
            "DELETE without a WHERE clause on `users`: deletes every row"
        );
        let (l, r) = top("UPDATE orders SET paid = true", Dialect::Postgres);
        assert_eq!(l, Critical);
        assert_eq!(
            r,
            "UPDATE `orders` without a WHERE clause: changes every row"
        );
        assert_level("delete from public.users;", Critical);
        assert_level("UPDATE t SET a = 1 FROM u", Critical);
        assert_eq!(top("DELETE FROM t LIMIT 10", Dialect::MySql).0, Critical);
        assert_eq!(top("DELETE FROM t", Dialect::Sqlite).0, Critical);
    }

    #[test]
    fn always_true_where_counts_as_none() {
        for sql in [
            "DELETE FROM users WHERE true",
            "DELETE FROM users WHERE 1 = 1",
            "DELETE FROM users WHERE (1=1)",
            "UPDATE users SET a = 1 WHERE id = 5 OR 1 = 1",
            "DELETE FROM users WHERE 'a' = 'a'",
        ] {
            let (l, r) = top(sql, Dialect::Postgres);
            assert_eq!(l, Critical, "{sql}");
            assert!(r.contains("always true"), "{sql}: {r}");
        }
        assert_eq!(top("DELETE FROM users WHERE 1", Dialect::MySql).0, Critical);
        assert_level("DELETE FROM users WHERE 1 = 1 AND id = 3", Medium);
        assert_level("DELETE FROM users WHERE id = id2", Medium);
    }

    #[test]
    fn drop_and_truncate_are_critical() {
        let (l, r) = top("DROP TABLE users", Dialect::Postgres);
        assert_eq!((l, r.as_str()), (Critical, "DROP TABLE `users`"));
        let (l, r) = top("DROP DATABASE prod", Dialect::Postgres);
        assert_eq!(l, Critical);
        assert!(
            r.starts_with("DROP DATABASE `prod`: destroys the whole database"),
            "{r}"
        );
        for sql in [
            "DROP SCHEMA app CASCADE",
            "DROP INDEX idx_users_name",
            "DROP ROLE alice",
            "DROP VIEW v",
            "DROP SEQUENCE s",
            "DROP FUNCTION f(int)",
            "DROP EXTENSION pgcrypto",
            "DROP TRIGGER t ON users",
            "DROP TABLE IF EXISTS a, b",
            "TRUNCATE users",
            "TRUNCATE TABLE a, b RESTART IDENTITY CASCADE",
        ] {
            assert_level(sql, Critical);
        }
        assert_eq!(
            top("TRUNCATE users", Dialect::Postgres).1,
            "TRUNCATE `users`: deletes every row"
        );
        assert_eq!(top("DROP TABLE t", Dialect::Sqlite).0, Critical);
        assert_eq!(top("DROP DATABASE shop", Dialect::MySql).0, Critical);
    }

    #[test]
    fn schema_changes_and_privileges_are_high() {
        for sql in [
            "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL)",
            "CREATE INDEX i ON t (name)",
            "CREATE VIEW v AS SELECT 1",
            "CREATE SCHEMA app",
            "CREATE DATABASE shop",
            "ALTER TABLE t ADD COLUMN c int",
            "ALTER TABLE t RENAME TO u",
            "ALTER TABLE t DROP CONSTRAINT c",
            "CREATE EXTENSION pgcrypto",
            "CREATE SEQUENCE s",
            "CREATE TABLE t2 AS SELECT * FROM t",
            "SELECT * INTO new_t FROM t",
        ] {
            assert_level(sql, High);
        }
        for sql in [
            "GRANT SELECT ON t TO bob",
            "REVOKE ALL ON t FROM bob",
            "CREATE ROLE bob LOGIN",
            "ALTER ROLE bob SUPERUSER",
            "CREATE USER bob WITH PASSWORD 'x'",
        ] {
            assert_level(sql, Critical);
        }
        assert_eq!(
            top("GRANT SELECT ON t TO bob", Dialect::Postgres).1,
            "GRANT SELECT ON t TO bob (changes privileges)"
        );
        assert_eq!(
            top("SELECT * INTO new_t FROM t", Dialect::Postgres).1,
            "SELECT INTO creates the table `new_t`"
        );
    }

    #[test]
    fn alter_drop_column_is_critical() {
        let (l, r) = top("ALTER TABLE users DROP COLUMN email", Dialect::Postgres);
        assert_eq!(l, Critical);
        assert!(
            r.contains("`users`") && r.contains("destroys its data"),
            "{r}"
        );
        assert_level(
            "ALTER TABLE users ADD COLUMN a int, DROP COLUMN b",
            Critical,
        );
        assert_eq!(
            top("ALTER TABLE users DROP COLUMN email", Dialect::MySql).0,
            Critical
        );
    }

    #[test]
    fn copy_program_file_and_stdin() {
        let (l, r) = top("COPY t TO PROGRAM 'gzip > /tmp/t.gz'", Dialect::Postgres);
        assert_eq!(l, High);
        assert!(
            r.contains("PROGRAM") && r.contains("gzip > /tmp/t.gz"),
            "{r}"
        );
        let (l, r) = top("COPY t FROM '/etc/passwd'", Dialect::Postgres);
        assert_eq!(l, High);
        assert!(r.contains("server file '/etc/passwd'"), "{r}");
        assert_level("COPY t TO '/tmp/t.csv' WITH (FORMAT csv)", High);
        assert_level("COPY t FROM STDIN", Medium);
        assert_level("COPY (SELECT * FROM t) TO STDOUT", Low);
        // The query copied out runs: its functions count.
        assert_level("COPY (SELECT pg_terminate_backend(1)) TO STDOUT", High);
    }

    #[test]
    fn code_is_high() {
        assert_level("CALL refresh_all()", High);
        assert_level("EXECUTE my_plan(1)", High);
        let v = pg("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ DELETE FROM t; SELECT 1 $$");
        assert_eq!(max_level(&v), High, "{v:?}");
        assert!(v[0].reason.contains("defines code"), "{v:?}");
        let v = pg(
            "CREATE OR REPLACE FUNCTION f() RETURNS trigger AS $body$ BEGIN DROP TABLE x; \
             RETURN NEW; END $body$ LANGUAGE plpgsql",
        );
        assert_eq!(max_level(&v), High, "dollar-quoted body is not run: {v:?}");
        assert_level("DO $$ BEGIN PERFORM 1; END $$", High);
        assert_level("DO LANGUAGE plpgsql $$ BEGIN DELETE FROM t; END $$", High);
        assert_eq!(
            top("DO $$ BEGIN NULL; END $$", Dialect::Postgres).1,
            "DO block: runs procedural code (its body is not rated)"
        );
    }

    #[test]
    fn maintenance_is_medium() {
        for sql in [
            "VACUUM",
            "VACUUM FULL users",
            "ANALYZE users",
            "REFRESH MATERIALIZED VIEW mv",
            "LOCK TABLE users IN ACCESS EXCLUSIVE MODE",
            "REINDEX TABLE users",
            "CLUSTER users USING users_pkey",
            "COMMENT ON TABLE t IS 'x'",
        ] {
            assert_level(sql, Medium);
        }
    }

    #[test]
    fn explain_analyze_rates_the_inner_statement() {
        let (l, r) = top("EXPLAIN ANALYZE DELETE FROM users", Dialect::Postgres);
        assert_eq!(l, Critical);
        assert!(
            r.starts_with("DELETE without a WHERE clause on `users`"),
            "{r}"
        );
        assert_level("EXPLAIN (ANALYZE, BUFFERS) DELETE FROM users", Critical);
        assert_level(
            "EXPLAIN (ANALYZE true) UPDATE t SET a = 1 WHERE id = 2",
            Medium,
        );
        assert_level("EXPLAIN ANALYZE SELECT 1", Low);
        assert_eq!(
            top("EXPLAIN ANALYZE DELETE FROM users", Dialect::MySql).0,
            Critical
        );
    }

    #[test]
    fn data_modifying_cte_is_rated_by_its_statement() {
        let v = pg("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d");
        assert_eq!(max_level(&v), Critical, "{v:?}");
        assert!(
            v.iter()
                .any(|x| x.reason.starts_with("DELETE without a WHERE clause on `t`"))
        );
        assert_level(
            "WITH d AS (DELETE FROM t WHERE id < 5 RETURNING *) INSERT INTO archive SELECT * FROM d",
            Medium,
        );
        assert_level(
            "WITH u AS (UPDATE t SET a = 1 RETURNING id) SELECT count(*) FROM u",
            Critical,
        );
    }

    #[test]
    fn subqueries_inside_writes_count() {
        assert_level(
            "UPDATE t SET a = (SELECT pg_terminate_backend(pid) FROM pg_stat_activity LIMIT 1) WHERE id = 1",
            High,
        );
        assert_level(
            "INSERT INTO log SELECT lo_unlink(oid) FROM pg_largeobject_metadata",
            High,
        );
        assert_level(
            "DELETE FROM t WHERE id IN (SELECT id FROM u WHERE pg_cancel_backend(1))",
            High,
        );
    }

    #[test]
    fn side_effecting_functions_anywhere() {
        let sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'prod'";
        let (l, r) = top(sql, Dialect::Postgres);
        assert_eq!(l, High);
        assert_eq!(r, "calls pg_terminate_backend(): ends another session");
        assert_level("SELECT pg_catalog.pg_terminate_backend(123)", High);
        assert_level("SELECT PG_TERMINATE_BACKEND(123)", High);
        assert_level("SELECT 1 WHERE pg_drop_replication_slot('s') IS NULL", High);
        assert_level("SELECT pg_promote()", High);
        assert_level("SELECT pg_rotate_logfile()", High);
        assert_level("SELECT pg_file_write('/tmp/x', 'y', false)", High);
        assert_level("SELECT pg_file_unlink('/tmp/x')", High);
        assert_level("SELECT dblink_exec('conn', 'DROP TABLE t')", High);
        assert_level("SELECT pg_read_file('/etc/passwd')", High);
        assert_level("SELECT * FROM pg_read_file('/etc/passwd')", High);
        assert_level("SELECT * FROM pg_ls_dir('.')", High);
        assert_level("SELECT pg_read_binary_file('x')", High);
        assert_level("SELECT lo_import('/etc/passwd')", High);
        assert_level("SELECT lo_export(1234, '/tmp/x')", High);
        assert_level("SELECT CASE WHEN x THEN lo_unlink(1) END FROM t", High);
        assert_level("SELECT pg_cancel_backend(1)", High);
        assert_level("SELECT pg_reload_conf()", High);
        assert_level("SELECT set_config('search_path', 'x', false)", Medium);
        assert_level("SELECT pg_advisory_lock(1)", Medium);
        assert_level("SELECT pg_try_advisory_xact_lock(1)", Medium);
        assert_level("SELECT nextval('s')", Medium);
        assert_level("SELECT setval('s', 10)", High);
        assert_eq!(
            top("SELECT LOAD_FILE('/etc/passwd')", Dialect::MySql).0,
            High
        );
        assert_eq!(
            top("SELECT load_extension('x.so')", Dialect::Sqlite).0,
            High
        );
        assert_eq!(
            top("SELECT writefile('/tmp/x', 'y')", Dialect::Sqlite).0,
            High
        );
    }

    #[test]
    fn mysql_into_outfile_and_load_data() {
        let (l, r) = top(
            "SELECT * FROM users INTO OUTFILE '/tmp/u.csv' FIELDS TERMINATED BY ','",
            Dialect::MySql,
        );
        assert_eq!(l, High);
        assert_eq!(
            r,
            "SELECT … INTO OUTFILE '/tmp/u.csv': writes a file on the database server"
        );
        assert_eq!(
            top(
                "SELECT a INTO DUMPFILE '/tmp/x' FROM t WHERE id = 1",
                Dialect::MySql
            )
            .0,
            High
        );
        // The rest of the statement is still rated.
        assert_eq!(
            top(
                "SELECT pg_terminate_backend(1) INTO OUTFILE '/tmp/x'",
                Dialect::MySql
            )
            .0,
            High
        );
        let (l, r) = top(
            "LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t FIELDS TERMINATED BY ','",
            Dialect::MySql,
        );
        assert_eq!(l, Medium);
        assert!(r.starts_with("LOAD DATA INFILE"), "{r}");
        assert_eq!(top("SELECT 1 INTO @x", Dialect::MySql).0, Low);
        assert_eq!(
            top("SET GLOBAL max_connections = 10", Dialect::MySql).0,
            Medium
        );
        assert_eq!(top("SET SESSION sql_mode = ''", Dialect::MySql).0, Low);
        assert_eq!(top("KILL 42", Dialect::MySql).0, High);
        assert_eq!(top("KILL QUERY 42", Dialect::MySql).0, Medium);
    }

    #[test]
    fn multiple_statements_each_get_a_verdict() {
        let v = pg("SELECT 1; INSERT INTO t VALUES (1); DROP TABLE t;");
        let levels: Vec<RiskLevel> = v.iter().map(|x| x.level).collect();
        assert_eq!(levels, vec![Low, Medium, Critical]);
        assert_eq!(v[2].reason, "DROP TABLE `t`");
        assert_eq!(
            rate_sql(
                "BEGIN; UPDATE a SET x = 1 WHERE id = 2; COMMIT;",
                Dialect::Postgres
            )
            .level(),
            Some(Medium)
        );
    }

    #[test]
    fn statements_the_grammar_lacks_do_not_sink_the_rest() {
        let v = pg("REINDEX TABLE users; DELETE FROM users");
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!((v[0].level, v[1].level), (Medium, Critical));
        let v = pg("DO $$ BEGIN NULL; END $$; SELECT 1");
        assert_eq!((v[0].level, v[1].level), (High, Low));
        assert_level("ALTER SYSTEM SET work_mem = '1GB'", High);
        assert_level("DROP OWNED BY bob", Critical);
    }

    #[test]
    fn empty_and_comment_only_text_has_no_verdicts() {
        assert_eq!(rate_sql("", Dialect::Postgres), SqlRating::Parsed(vec![]));
        assert_eq!(
            rate_sql("  \n\t ", Dialect::MySql),
            SqlRating::Parsed(vec![])
        );
        assert_eq!(
            rate_sql("-- nothing\n/* at all */", Dialect::Postgres),
            SqlRating::Parsed(vec![])
        );
        assert_eq!(rate_sql(";;", Dialect::Postgres).level(), Some(Low));
        assert_eq!(rate_sql("", Dialect::Generic).level(), Some(Low));
    }

    #[test]
    fn unparseable_text_carries_the_error() {
        let r = rate_sql("SELEC * FROM t", Dialect::Postgres);
        let SqlRating::Unparseable(e) = &r else {
            panic!("{r:?}")
        };
        assert!(e.contains("sql parser error"), "{e}");
        assert_eq!(r.level(), None);
        assert!(matches!(
            rate_sql("SELECT 'unterminated", Dialect::Postgres),
            SqlRating::Unparseable(e) if e.contains("Unterminated")
        ));
        assert!(matches!(
            rate_sql("SELECT 1; FROBNICATE users", Dialect::Postgres),
            SqlRating::Unparseable(_)
        ));
    }

    #[test]
    fn generic_grammar_is_the_fallback() {
        // The MySQL grammar does not take `::` casts; the generic one does,
        // over MySQL's own tokens.
        let r = rate_sql("SELECT 1::int; DELETE FROM t", Dialect::MySql);
        assert_eq!(r.level(), Some(Critical), "{r:?}");
    }

    #[test]
    fn too_long_is_refused() {
        let sql = format!("SELECT 1{}", " ".repeat(MAX_SQL_BYTES));
        let r = rate_sql(&sql, Dialect::Postgres);
        assert!(
            matches!(&r, SqlRating::Unparseable(e) if e.contains("64 KiB")),
            "{r:?}"
        );
    }

    /// Runs `f` on a thread with a small (2 MiB, the test and tokio default)
    /// stack: an overflow aborts the whole test binary, so a pass is proof.
    fn on_small_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        on_small_stack(|| {
            let cases = [
                format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000)),
                format!("SELECT {}1{}", "(SELECT ".repeat(2000), ")".repeat(2000)),
                format!("SELECT {}1{}", "f(".repeat(3000), ")".repeat(3000)),
                format!("SELECT * FROM {}a{}", "(".repeat(20000), ")".repeat(20000)),
                format!("SELECT 1{}", "+1".repeat(30000)),
                format!("SELECT a{}", "[1]".repeat(20000)),
                format!("SELECT 1 WHERE a{}", " OR a".repeat(12000)),
                format!("SELECT 1{}", "::int".repeat(12000)),
                format!("SELECT 1{}", " UNION SELECT 1".repeat(4000)),
            ];
            for sql in cases {
                assert!(sql.len() <= MAX_SQL_BYTES, "{}", sql.len());
                let r = rate_sql(&sql, Dialect::Postgres);
                assert!(
                    matches!(&r, SqlRating::Unparseable(e)
                        if e.contains("recursion limit") || e.contains("deep") || e.contains("operators")),
                    "{}: {r:?}",
                    &sql[..40]
                );
            }
        });
    }

    #[test]
    fn long_but_shallow_sql_parses_on_a_small_stack() {
        on_small_stack(|| {
            let sql = format!("SELECT 1{}", "+1".repeat(4000));
            assert_eq!(rate_sql(&sql, Dialect::Postgres).level(), Some(Low));
            let rows = vec!["(1, NULL, 'x')"; 3000].join(", ");
            let sql = format!("INSERT INTO t VALUES {rows}");
            assert_eq!(rate_sql(&sql, Dialect::Postgres).level(), Some(Medium));
            let many = "DELETE FROM t WHERE id = 1;\n".repeat(2000);
            let r = rate_sql(&many, Dialect::Postgres);
            assert_eq!(r.level(), Some(Medium));
            assert!(matches!(r, SqlRating::Parsed(v) if v.len() == 2000));
        });
    }

    // ------------------------------------------------------------- psql

    #[test]
    fn psql_shell_escape_goes_to_shell() {
        let s = split_psql("SELECT 1;\n\\! rm -rf /\nSELECT 2;\n");
        assert_eq!(s.shell, vec!["rm -rf /".to_owned()]);
        assert_eq!(s.verdicts.len(), 1);
        assert_eq!(s.verdicts[0].level, High);
        assert!(
            s.verdicts[0]
                .reason
                .starts_with("psql `\\!` runs a shell command")
        );
        assert!(!s.sql.contains("rm"), "{:?}", s.sql);
        assert_eq!(rate_sql(&s.sql, Dialect::Postgres).level(), Some(Low));
        let s = split_psql("\\!");
        assert_eq!(s.shell, Vec::<String>::new());
        assert_eq!(s.verdicts[0].level, High);
    }

    #[test]
    fn psql_pipes_go_to_shell() {
        for (text, cmd) in [
            ("\\o | mail -s x root\nSELECT 1;", "mail -s x root"),
            ("SELECT 1 \\g |cat > /tmp/x", "cat > /tmp/x"),
            ("SELECT 1 \\gx | sh", "sh"),
            ("\\w |tee /tmp/q", "tee /tmp/q"),
        ] {
            let s = split_psql(text);
            assert_eq!(s.shell, vec![cmd.to_owned()], "{text}");
            assert_eq!(max_level(&s.verdicts), High, "{text}");
        }
        for (text, cmd) in [
            ("\\!id -u", "id -u"),
            ("\\o|sh -c x", "sh -c x"),
            ("\\o '|sh'", "sh"),
        ] {
            let s = split_psql(text);
            assert_eq!(s.shell, vec![cmd.to_owned()], "{text}");
            assert_eq!(max_level(&s.verdicts), High, "{text}");
        }
        let s = split_psql("SELECT 1 \\g |cat\nSELECT 2");
        assert_eq!(rate_sql(&s.sql, Dialect::Postgres).level(), Some(Low));
        assert!(
            s.sql.starts_with("SELECT 1 ") && s.sql.contains(';'),
            "{:?}",
            s.sql
        );
    }

    #[test]
    fn psql_copy() {
        let s = split_psql("\\copy t from program 'curl http://x | gunzip' with csv");
        assert_eq!(s.shell, vec!["curl http://x | gunzip".to_owned()]);
        assert_eq!(s.verdicts[0].level, High);
        let s = split_psql("\\copy users to '/tmp/users.csv' csv header");
        assert!(s.shell.is_empty());
        assert_eq!(s.verdicts[0].level, Medium);
        assert_eq!(
            s.verdicts[0].reason,
            "psql `\\copy `users` to` writes the local file `/tmp/users.csv`"
        );
        let s = split_psql("\\copy users from /tmp/u.csv");
        assert_eq!(s.verdicts[0].level, Medium);
        assert!(
            s.verdicts[0]
                .reason
                .contains("reads the local file `/tmp/u.csv`")
        );
        let s = split_psql("\\copy users (a, b) from stdin\n");
        assert_eq!(s.verdicts[0].level, Medium);
        let s = split_psql("\\COPY users TO STDOUT");
        assert_eq!(
            s.verdicts[0].level, Medium,
            "meta-command names are case-sensitive"
        );
        let s = split_psql("\\copy users to stdout");
        assert_eq!(s.verdicts[0].level, Low);
        // The query of `\copy (…)` is SQL that runs.
        let s = split_psql("\\copy (DELETE FROM t RETURNING *) to stdout\n");
        assert_eq!(s.verdicts[0].level, Low);
        assert_eq!(rate_sql(&s.sql, Dialect::Postgres).level(), Some(Critical));
    }

    #[test]
    fn psql_files_and_includes() {
        let s = split_psql("\\o /tmp/out.txt\nSELECT 1;\n\\o\n");
        assert_eq!(
            s.verdicts.iter().map(|v| v.level).collect::<Vec<_>>(),
            vec![Medium, Low]
        );
        assert!(s.verdicts[0].reason.contains("`/tmp/out.txt`"));
        assert_eq!(max_level(&split_psql("\\w /tmp/q.sql").verdicts), Medium);
        assert_eq!(
            max_level(&split_psql("SELECT 1 \\g /tmp/x").verdicts),
            Medium
        );
        assert_eq!(
            max_level(&split_psql("SELECT 1 \\g (format=csv) /tmp/x").verdicts),
            Medium
        );
        assert_eq!(
            max_level(&split_psql("SELECT 1 \\g (format=csv)").verdicts),
            Low
        );
        for inc in [
            "\\i /tmp/evil.sql",
            "\\ir x.sql",
            "\\include y.sql",
            "\\include_relative z",
        ] {
            let s = split_psql(inc);
            assert_eq!(max_level(&s.verdicts), High, "{inc}");
            assert!(s.verdicts[0].reason.contains("not rated"), "{inc}");
        }
    }

    #[test]
    fn psql_harmless_meta_commands_are_low() {
        let s = split_psql(
            "\\set ON_ERROR_STOP on\n\\x\n\\timing on\n\\dt+ public.*\n\\d users\n\\l\n\\conninfo\n\
             \\pset format csv\n\\echo hello\n\\q\n",
        );
        assert_eq!(s.verdicts.len(), 10, "{:?}", s.verdicts);
        assert!(
            s.verdicts.iter().all(|v| v.level == Low),
            "{:?}",
            s.verdicts
        );
        assert!(s.shell.is_empty());
        assert_eq!(s.sql.trim(), "");
        assert_eq!(max_level(&split_psql("\\frobnicate").verdicts), Medium);
    }

    #[test]
    fn psql_gexec_and_editor_are_high() {
        let s = split_psql("SELECT format('DROP TABLE %I', tablename) FROM pg_tables \\gexec");
        assert_eq!(max_level(&s.verdicts), High);
        assert!(s.verdicts[0].reason.contains("gexec"));
        assert_eq!(rate_sql(&s.sql, Dialect::Postgres).level(), Some(Low));
        assert_eq!(max_level(&split_psql("\\e").verdicts), High);
        assert_eq!(max_level(&split_psql("\\password bob").verdicts), High);
    }

    #[test]
    fn psql_backquotes_run_shell_commands() {
        let s = split_psql("\\set x `cat /etc/passwd`\nSELECT :'x';");
        assert_eq!(s.shell, vec!["cat /etc/passwd".to_owned()]);
        assert_eq!(max_level(&s.verdicts), High);
    }

    #[test]
    fn psql_meta_command_ends_at_end_of_line_or_double_backslash() {
        let s = split_psql("\\x \\\\ DELETE FROM t;\nSELECT 1;");
        assert_eq!(rate_sql(&s.sql, Dialect::Postgres).level(), Some(Critical));
        let s = split_psql("\\x \\! id\nSELECT 1;");
        assert_eq!(s.shell, vec!["id".to_owned()]);
        // `\!` takes the whole rest of the line, `\\` included.
        let s = split_psql("\\! echo a \\\\ DELETE FROM t\nSELECT 1;");
        assert_eq!(s.shell, vec!["echo a \\\\ DELETE FROM t".to_owned()]);
        assert_eq!(rate_sql(&s.sql, Dialect::Postgres).level(), Some(Low));
    }

    #[test]
    fn psql_escaped_semicolon_separates_statements() {
        let s = split_psql("SELECT 1 \\; DELETE FROM t;");
        assert!(s.verdicts.is_empty(), "{:?}", s.verdicts);
        assert_eq!(rate_sql(&s.sql, Dialect::Postgres).level(), Some(Critical));
    }

    #[test]
    fn psql_backslashes_inside_sql_quotes_are_not_meta_commands() {
        for text in [
            "SELECT '\\! rm -rf /';",
            "SELECT $$ \\! rm -rf / $$;",
            "SELECT $f$ \\o |sh $f$;",
            "SELECT 1; -- \\! rm -rf /\n",
            "SELECT 1; /* \\! rm\n -rf / */",
            "SELECT \"a\\!b\" FROM t;",
            "SELECT E'\\'\\! rm';",
        ] {
            let s = split_psql(text);
            assert!(s.shell.is_empty(), "{text}: {:?}", s.shell);
            assert!(s.verdicts.is_empty(), "{text}: {:?}", s.verdicts);
            assert_eq!(s.sql, text);
        }
        // A plain string ends at its quote: the backslash after it is psql's.
        let s = split_psql("SELECT 'a\\' \\! id\n");
        assert_eq!(s.shell, vec!["id".to_owned()]);
    }

    #[test]
    fn psql_dollar_quoted_function_body() {
        let text = "CREATE FUNCTION f() RETURNS void AS $body$\nBEGIN\n  DELETE FROM t; -- \\! not psql\nEND\n$body$ LANGUAGE plpgsql;\n\\df f\n";
        let s = split_psql(text);
        assert!(s.shell.is_empty());
        assert_eq!(s.verdicts.len(), 1);
        assert_eq!(s.verdicts[0].level, Low);
        let v = pg(&s.sql);
        assert_eq!(max_level(&v), High, "{v:?}");
        assert!(v[0].reason.contains("defines code"));
    }

    #[test]
    fn psql_variables_are_substituted() {
        let s = split_psql("\\set tbl users\nDELETE FROM :tbl;\n");
        assert!(s.sql.contains("DELETE FROM users;"), "{:?}", s.sql);
        assert_eq!(rate_sql(&s.sql, Dialect::Postgres).level(), Some(Critical));
        let s = split_psql("\\set v 'it''s'\nSELECT :'v', :\"v\", 1::int;\n");
        assert!(
            s.sql.contains("SELECT 'it''s', \"it's\", 1::int;"),
            "{:?}",
            s.sql
        );
        // A variable the script does not set is pasted in unseen.
        let s = split_psql("SELECT * FROM t WHERE id = :id;");
        assert_eq!(s.verdicts.len(), 1);
        assert_eq!(s.verdicts[0].level, Medium);
        assert!(s.verdicts[0].reason.contains(":id"));
        let s = split_psql("SELECT * FROM t WHERE name = :'name' AND x = :\"col\";");
        assert!(s.verdicts.is_empty(), "quoted: {:?}", s.verdicts);
        assert_eq!(
            s.sql,
            "SELECT * FROM t WHERE name = 'name' AND x = \"col\";"
        );
        assert_eq!(rate_sql(&s.sql, Dialect::Postgres).level(), Some(Low));
        // A bare one still parses (as a placeholder).
        let s = split_psql("DELETE FROM t WHERE id = :id;");
        assert_eq!(rate_sql(&s.sql, Dialect::Postgres).level(), Some(Medium));
        let s = split_psql("SELECT a[1:2], x::text FROM t;");
        assert!(s.verdicts.is_empty(), "{:?}", s.verdicts);
    }
}
