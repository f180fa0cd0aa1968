//! The classifier measured on a labelled corpus written from each tool's
//! documentation (issue 13).
//!
//! Every `tests/corpus/*.txt` holds one entry a line, `LEVEL<TAB>command
//! line`, where LEVEL is LOW, MEDIUM, HIGH or CRITICAL; lines starting with
//! `#` are comments (each block names its source) and blank lines are
//! ignored. The files are per family: cloud CLIs, datastores, host
//! administration, fleet orchestration, commands inside commands, SQL,
//! tools no rule names, and plain reads. The lines are realistic command
//! lines as the tools' documentation shows them, labelled by these
//! definitions, not by what the classifier does today:
//!
//! - LOW: changes nothing, runs no code and leaks no secret (reads,
//!   listings, dry runs, previews, `--check`, `-n`, `--help`).
//! - MEDIUM: an ordinary, reversible change (restart, scale, tag, create or
//!   update one ordinary thing, INSERT/UPDATE/DELETE with a WHERE, start an
//!   instance), and reads of secret values.
//! - HIGH: deletes or stops one thing, firewall and routing changes,
//!   SIGKILL, user deletes, permission changes, schema changes, running code
//!   the line does not show or a fleet-wide remote command.
//! - CRITICAL: irreversible destruction of something wide or holding data
//!   (cluster, project, resource group, database, bucket, keyspace, disk,
//!   partition table, pool, volume, table), DELETE/UPDATE without WHERE,
//!   IAM, RBAC and secret changes, instance deletes on any cloud.
//!
//! A command inside a command is rated by what it runs, `--force`/`--yes`
//! never lower a level, and a change to anything named production is at
//! least HIGH.
//!
//! `corpus_report` prints the confusion matrix (expected × got), the
//! per-family exact-match rate and every mismatch (`cargo test --test
//! classify_corpus -- --nocapture`); with `OPSGATE_CORPUS_MATRIX=path` it
//! also writes the matrix as Markdown to that path. The goals are one test
//! each, so one run shows which hold:
//!
//! - (a) no line expected HIGH or CRITICAL is rated below HIGH;
//! - (b) no line expected CRITICAL is rated below CRITICAL;
//! - (c) at most 1 in 40 of the LOW lines is rated above LOW;
//! - (d) at least 90% of the lines get exactly their level;
//! - (e) the corpus has at least 400 lines, 100 of them LOW, in every
//!   family file.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use opsgate::core::classify::ClassifyContext;
use opsgate::core::policy::LoadedPolicy;
use opsgate::core::risk::RiskLevel;

use RiskLevel::{Critical, High, Low, Medium};

/// The four levels, in order, for the rows and columns of the matrix.
const LEVELS: [RiskLevel; 4] = [Low, Medium, High, Critical];

/// The family files the corpus must have (goal e).
const FAMILIES: [&str; 8] = [
    "cloud.txt",
    "datastores.txt",
    "hosts.txt",
    "orchestration.txt",
    "inline.txt",
    "sql.txt",
    "unknown.txt",
    "reads.txt",
];

/// The environment variable naming a file to write the Markdown matrix to.
const MATRIX_ENV: &str = "OPSGATE_CORPUS_MATRIX";

/// One labelled corpus line.
#[derive(Debug, Clone)]
struct Entry {
    /// The file name, `cloud.txt`.
    file: String,
    /// The 1-based line number in that file.
    line: usize,
    want: RiskLevel,
    command: String,
}

/// What the classifier made of one entry.
#[derive(Debug)]
struct Outcome {
    entry: Entry,
    /// `None` when the classifier returned an error.
    got: Option<RiskLevel>,
    /// The deciding reason, or the error.
    reason: String,
}

impl Outcome {
    fn exact(&self) -> bool {
        self.got == Some(self.entry.want)
    }

    /// `file:line: want X got Y (reason)` and the command on the next line.
    fn describe(&self) -> String {
        let got = self.got.map_or("ERROR", RiskLevel::as_str);
        format!(
            "tests/corpus/{}:{}: want {} got {} ({})\n    {}",
            self.entry.file, self.entry.line, self.entry.want, got, self.reason, self.entry.command
        )
    }
}

/// The parsed corpus: the well-formed entries, the problems found in the
/// others, and which files were read.
#[derive(Debug)]
struct Corpus {
    entries: Vec<Entry>,
    problems: Vec<String>,
    files: Vec<String>,
}

/// The main corpus, and the second author's (`tests/corpus/second-opinion`).
const MAIN: &str = "tests/corpus";
const SECOND: &str = "tests/corpus/second-opinion";
const THIRD: &str = "tests/corpus/third-opinion";
const FOURTH: &str = "tests/corpus/fourth-opinion";

fn corpus_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Parses one file's text into `corpus`.
fn parse_file(file: &str, text: &str, corpus: &mut Corpus) {
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let at = format!("tests/corpus/{file}:{line}");
        let Some((level, command)) = raw.split_once('\t') else {
            corpus.problems.push(format!(
                "{at}: no TAB between the level and the command: {raw:?}"
            ));
            continue;
        };
        let Some(want) = LEVELS.into_iter().find(|l| l.as_str() == level) else {
            corpus.problems.push(format!(
                "{at}: level {level:?} is not LOW, MEDIUM, HIGH or CRITICAL"
            ));
            continue;
        };
        if command.trim().is_empty() {
            corpus
                .problems
                .push(format!("{at}: no command after the level"));
            continue;
        }
        if command.starts_with(char::is_whitespace) || command.ends_with(char::is_whitespace) {
            corpus.problems.push(format!(
                "{at}: the command has leading or trailing white space (a second TAB?): {command:?}"
            ));
            continue;
        }
        corpus.entries.push(Entry {
            file: file.to_owned(),
            line,
            want,
            command: command.to_owned(),
        });
    }
}

/// Reads every `*.txt` of a corpus directory, in name order.
fn load_corpus(rel: &str) -> Corpus {
    let mut corpus = Corpus {
        entries: Vec::new(),
        problems: Vec::new(),
        files: Vec::new(),
    };
    let dir = corpus_dir(rel);
    let listing = match fs::read_dir(&dir) {
        Ok(l) => l,
        Err(e) => panic!("cannot read {}: {e}", dir.display()),
    };
    let mut paths: Vec<PathBuf> = listing
        .filter_map(Result::ok)
        .map(|d| d.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    paths.sort();
    // Entries are named relative to `tests/corpus`
    // (`second-opinion/devops-tools.txt`).
    let sub = rel
        .strip_prefix(MAIN)
        .unwrap_or(rel)
        .trim_start_matches('/');
    for path in paths {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let file = if sub.is_empty() {
            name
        } else {
            format!("{sub}/{name}")
        };
        match fs::read_to_string(&path) {
            Ok(text) => parse_file(&file, &text, &mut corpus),
            Err(e) => corpus
                .problems
                .push(format!("tests/corpus/{file}: cannot be read: {e}")),
        }
        corpus.files.push(file);
    }

    // The same command twice is a copy-paste slip, or two labels for one line.
    let mut first: HashMap<&str, &Entry> = HashMap::new();
    let mut duplicates = Vec::new();
    for e in &corpus.entries {
        if let Some(earlier) = first.insert(e.command.as_str(), e) {
            duplicates.push(format!(
                "tests/corpus/{}:{}: the same command as tests/corpus/{}:{}: {:?}",
                e.file, e.line, earlier.file, earlier.line, e.command
            ));
        }
    }
    corpus.problems.extend(duplicates);
    corpus
}

/// The corpus and every entry's rating under the embedded default policy,
/// computed once for the whole binary.
struct Measured {
    corpus: Corpus,
    outcomes: Vec<Outcome>,
}

static MEASURED: LazyLock<Measured> = LazyLock::new(|| measure(MAIN));
static SECOND_OPINION: LazyLock<Measured> = LazyLock::new(|| measure(SECOND));
static THIRD_OPINION: LazyLock<Measured> = LazyLock::new(|| measure(THIRD));
static FOURTH_OPINION: LazyLock<Measured> = LazyLock::new(|| measure(FOURTH));

fn measure(rel: &str) -> Measured {
    let policy = match LoadedPolicy::embedded() {
        Ok(p) => p,
        Err(e) => panic!("the embedded policy does not load: {e}"),
    };
    let ctx = ClassifyContext::default();
    let corpus = load_corpus(rel);
    let outcomes = corpus
        .entries
        .iter()
        .map(|entry| {
            let (got, reason) = match policy.rules.classify(&entry.command, &ctx) {
                Ok(c) => (
                    Some(c.risk),
                    c.reasons
                        .first()
                        .map_or_else(|| "no reasons".to_owned(), ToString::to_string),
                ),
                Err(e) => (None, format!("error: {e}")),
            };
            Outcome {
                entry: entry.clone(),
                got,
                reason,
            }
        })
        .collect();
    Measured { corpus, outcomes }
}

/// The column of a rating in the matrix: the four levels, then errors.
fn column(got: Option<RiskLevel>) -> usize {
    got.map_or(LEVELS.len(), |l| l as usize)
}

/// Counts: `cells[want][got]`, with the error column last.
fn matrix(outcomes: &[Outcome]) -> [[usize; 5]; 4] {
    let mut cells = [[0usize; 5]; 4];
    for o in outcomes {
        cells[o.entry.want as usize][column(o.got)] += 1;
    }
    cells
}

/// Per family file: (lines, exact).
fn per_family(outcomes: &[Outcome]) -> BTreeMap<&str, (usize, usize)> {
    let mut families: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for o in outcomes {
        let slot = families.entry(o.entry.file.as_str()).or_default();
        slot.0 += 1;
        slot.1 += usize::from(o.exact());
    }
    families
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The lines of goal (a): expected HIGH or CRITICAL, rated below HIGH.
fn under_high(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes
        .iter()
        .filter(|o| o.entry.want >= High && o.got.is_none_or(|g| g < High))
        .collect()
}

/// The lines of goal (b): expected CRITICAL, rated below CRITICAL.
fn under_critical(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes
        .iter()
        .filter(|o| o.entry.want == Critical && o.got != Some(Critical))
        .collect()
}

/// The lines of goal (c): expected LOW, rated above LOW (or not rated).
fn over_low(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes
        .iter()
        .filter(|o| o.entry.want == Low && o.got != Some(Low))
        .collect()
}

fn listing(rows: &[&Outcome]) -> String {
    rows.iter()
        .map(|o| o.describe())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The matrix, the per-family rates and the goals as plain text.
fn text_report(outcomes: &[Outcome]) -> String {
    let cells = matrix(outcomes);
    let total = outcomes.len();
    let exact = outcomes.iter().filter(|o| o.exact()).count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "confusion matrix over {total} corpus lines (rows: expected, columns: got)\n"
    );
    let _ = writeln!(
        out,
        "{:<16}{:>8}{:>8}{:>8}{:>10}{:>8}{:>8}{:>9}",
        "expected \\ got", "LOW", "MEDIUM", "HIGH", "CRITICAL", "ERROR", "total", "exact"
    );
    let mut column_totals = [0usize; 5];
    for (want, row) in LEVELS.iter().zip(cells.iter()) {
        let row_total: usize = row.iter().sum();
        for (t, c) in column_totals.iter_mut().zip(row.iter()) {
            *t += c;
        }
        let hit = row[*want as usize];
        let _ = writeln!(
            out,
            "{:<16}{:>8}{:>8}{:>8}{:>10}{:>8}{:>8}{:>8.1}%",
            want.as_str(),
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row_total,
            percent(hit, row_total)
        );
    }
    let _ = writeln!(
        out,
        "{:<16}{:>8}{:>8}{:>8}{:>10}{:>8}{:>8}{:>8.1}%",
        "total",
        column_totals[0],
        column_totals[1],
        column_totals[2],
        column_totals[3],
        column_totals[4],
        total,
        percent(exact, total)
    );
    let _ = writeln!(out, "\nexact match per family:");
    for (family, (lines, hits)) in per_family(outcomes) {
        let _ = writeln!(
            out,
            "  {family:<20}{hits:>5} / {lines:<5}{:>7.1}%",
            percent(hits, lines)
        );
    }
    let _ = writeln!(out, "\n{}", goals_summary(outcomes));
    out
}

/// One line per goal: whether it holds and by how much.
fn goals_summary(outcomes: &[Outcome]) -> String {
    let total = outcomes.len();
    let lows = outcomes.iter().filter(|o| o.entry.want == Low).count();
    let exact = outcomes.iter().filter(|o| o.exact()).count();
    let a = under_high(outcomes).len();
    let b = under_critical(outcomes).len();
    let c = over_low(outcomes).len();
    let mark = |ok: bool| if ok { "holds" } else { "FAILS" };
    format!(
        "goals:\n  \
         (a) {}: {a} lines expected HIGH or CRITICAL rated below HIGH (want 0)\n  \
         (b) {}: {b} lines expected CRITICAL rated below CRITICAL (want 0)\n  \
         (c) {}: {c} of {lows} LOW lines rated above LOW (want at most {})\n  \
         (d) {}: {exact} of {total} lines exact, {:.1}% (want at least 90%)\n  \
         (e) {}: {total} lines, {lows} LOW (want at least 400 and 100)",
        mark(a == 0),
        mark(b == 0),
        mark(c * 40 <= lows),
        lows / 40,
        mark(exact * 10 >= total * 9),
        percent(exact, total),
        mark(total >= 400 && lows >= 100),
    )
}

/// The matrix, per-family rates and goals as Markdown, for docs/performance.md.
fn markdown_report(outcomes: &[Outcome]) -> String {
    let cells = matrix(outcomes);
    let total = outcomes.len();
    let exact = outcomes.iter().filter(|o| o.exact()).count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Classifier on the labelled corpus (`tests/corpus/*.txt`, {total} lines); \
         rows are the expected level, columns the level given.\n"
    );
    let _ = writeln!(
        out,
        "| expected \\ got | LOW | MEDIUM | HIGH | CRITICAL | error | total | exact |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut column_totals = [0usize; 5];
    for (want, row) in LEVELS.iter().zip(cells.iter()) {
        let row_total: usize = row.iter().sum();
        for (t, c) in column_totals.iter_mut().zip(row.iter()) {
            *t += c;
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1}% |",
            want.as_str(),
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row_total,
            percent(row[*want as usize], row_total)
        );
    }
    let _ = writeln!(
        out,
        "| total | {} | {} | {} | {} | {} | {} | {:.1}% |\n",
        column_totals[0],
        column_totals[1],
        column_totals[2],
        column_totals[3],
        column_totals[4],
        total,
        percent(exact, total)
    );
    let _ = writeln!(out, "| family | lines | exact | exact % |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (family, (lines, hits)) in per_family(outcomes) {
        let _ = writeln!(
            out,
            "| {family} | {lines} | {hits} | {:.1}% |",
            percent(hits, lines)
        );
    }
    let _ = writeln!(out, "\n```text\n{}\n```", goals_summary(outcomes));
    out
}

// ------------------------------------------------------------------ tests

#[test]
fn corpus_parses() {
    let corpus = &MEASURED.corpus;
    assert!(
        corpus.problems.is_empty(),
        "{} malformed corpus lines:\n{}",
        corpus.problems.len(),
        corpus.problems.join("\n")
    );
}

#[test]
fn the_parse_check_names_the_file_and_line_of_a_malformed_line() {
    let mut corpus = Corpus {
        entries: Vec::new(),
        problems: Vec::new(),
        files: Vec::new(),
    };
    let text = "# a comment\n\nLOW\tls -la\nLOW ls -la\nSEVERE\trm -rf /\nHIGH\t\nMEDIUM\t\tkill 1\nlow\tls\n";
    parse_file("bad.txt", text, &mut corpus);
    assert_eq!(corpus.entries.len(), 1, "{:#?}", corpus.entries);
    assert_eq!(corpus.entries[0].line, 3);
    assert_eq!(corpus.entries[0].want, Low);
    let lines: Vec<&str> = corpus
        .problems
        .iter()
        .filter_map(|p| p.split(": ").next())
        .collect();
    assert_eq!(
        lines,
        [
            "tests/corpus/bad.txt:4",
            "tests/corpus/bad.txt:5",
            "tests/corpus/bad.txt:6",
            "tests/corpus/bad.txt:7",
            "tests/corpus/bad.txt:8",
        ],
        "{:#?}",
        corpus.problems
    );
}

#[test]
fn corpus_report() {
    let outcomes = &MEASURED.outcomes;
    println!("{}", text_report(outcomes));
    let mismatches: Vec<&Outcome> = outcomes.iter().filter(|o| !o.exact()).collect();
    println!("{} mismatches:", mismatches.len());
    for o in &mismatches {
        println!("{}", o.describe());
    }
    if let Some(path) = std::env::var_os(MATRIX_ENV) {
        let path = PathBuf::from(path);
        if let Err(e) = fs::write(&path, markdown_report(outcomes)) {
            panic!("cannot write {}: {e}", path.display());
        }
        println!("wrote the Markdown matrix to {}", path.display());
    }
}

#[test]
fn goal_a_nothing_high_or_critical_is_rated_below_high() {
    let rows = under_high(&MEASURED.outcomes);
    assert!(
        rows.is_empty(),
        "{} lines expected HIGH or CRITICAL are rated below HIGH:\n{}",
        rows.len(),
        listing(&rows)
    );
}

#[test]
fn goal_b_nothing_critical_is_rated_below_critical() {
    let rows = under_critical(&MEASURED.outcomes);
    assert!(
        rows.is_empty(),
        "{} lines expected CRITICAL are rated below CRITICAL:\n{}",
        rows.len(),
        listing(&rows)
    );
}

#[test]
fn goal_c_at_most_one_low_line_in_40_is_rated_above_low() {
    let outcomes = &MEASURED.outcomes;
    let lows = outcomes.iter().filter(|o| o.entry.want == Low).count();
    let rows = over_low(outcomes);
    assert!(
        rows.len() * 40 <= lows,
        "{} of {lows} LOW lines are rated above LOW (at most {} may be):\n{}",
        rows.len(),
        lows / 40,
        listing(&rows)
    );
}

#[test]
fn goal_d_at_least_90_percent_of_lines_get_their_exact_level() {
    let outcomes = &MEASURED.outcomes;
    let total = outcomes.len();
    let rows: Vec<&Outcome> = outcomes.iter().filter(|o| !o.exact()).collect();
    let exact = total - rows.len();
    assert!(
        exact * 10 >= total * 9,
        "{exact} of {total} lines ({:.1}%) get their exact level, 90% must; the {} others:\n{}",
        percent(exact, total),
        rows.len(),
        listing(&rows)
    );
}

#[test]
fn goal_e_the_corpus_is_large_enough_and_has_every_family() {
    let corpus = &MEASURED.corpus;
    let total = corpus.entries.len();
    let lows = corpus.entries.iter().filter(|e| e.want == Low).count();
    let mut problems = Vec::new();
    if total < 400 {
        problems.push(format!("{total} lines, at least 400 wanted"));
    }
    if lows < 100 {
        problems.push(format!("{lows} LOW lines, at least 100 wanted"));
    }
    for family in FAMILIES {
        let lines = corpus.entries.iter().filter(|e| e.file == family).count();
        if !corpus.files.iter().any(|f| f == family) {
            problems.push(format!("tests/corpus/{family} is missing"));
        } else if lines == 0 {
            problems.push(format!("tests/corpus/{family} has no entries"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// The second author's set (`tests/corpus/second-opinion`): written without
// seeing the classifier or the main corpus, and measured once before any
// change made after reading it (87.0% and 73.4% exact; docs/performance.md).
// Rules were added from it since, so it is no longer held out: these bounds
// only keep it from getting worse, and the report shows where it stands.

/// Bounds a set measured once as held out must keep.
struct Ratchet {
    min_lines: usize,
    min_exact_percent: usize,
    max_under_high: usize,
    max_below_critical: usize,
    max_reads_over: usize,
}

/// Prints a held-out set's report and every miss.
fn report_set(m: &Measured, min_lines: usize) {
    assert!(
        m.corpus.problems.is_empty(),
        "{}",
        m.corpus.problems.join("\n")
    );
    assert!(
        m.corpus.entries.len() >= min_lines,
        "{} lines",
        m.corpus.entries.len()
    );
    println!("{}", text_report(&m.outcomes));
    for o in m.outcomes.iter().filter(|o| !o.exact()) {
        println!("{}", o.describe());
    }
}

/// Checks a held-out set against its bounds.
fn keeps(m: &Measured, bounds: &Ratchet) {
    let outcomes = &m.outcomes;
    let total = outcomes.len();
    assert!(total >= bounds.min_lines, "{total} lines");
    let exact = outcomes.iter().filter(|o| o.exact()).count();
    let under = under_high(outcomes);
    let below_critical = under_critical(outcomes);
    let over = over_low(outcomes);
    let mut problems = Vec::new();
    if exact * 100 < total * bounds.min_exact_percent {
        problems.push(format!(
            "{exact} of {total} exact ({:.1}%), at least {}% kept",
            percent(exact, total),
            bounds.min_exact_percent
        ));
    }
    if under.len() > bounds.max_under_high {
        problems.push(format!(
            "{} HIGH/CRITICAL lines below HIGH (at most {}):\n{}",
            under.len(),
            bounds.max_under_high,
            listing(&under)
        ));
    }
    if below_critical.len() > bounds.max_below_critical {
        problems.push(format!(
            "{} CRITICAL lines below CRITICAL (at most {}):\n{}",
            below_critical.len(),
            bounds.max_below_critical,
            listing(&below_critical)
        ));
    }
    if over.len() > bounds.max_reads_over {
        problems.push(format!(
            "{} LOW lines above LOW (at most {}):\n{}",
            over.len(),
            bounds.max_reads_over,
            listing(&over)
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn second_opinion_parses_and_reports() {
    report_set(&SECOND_OPINION, 600);
}

#[test]
fn second_opinion_does_not_get_worse() {
    keeps(
        &SECOND_OPINION,
        &Ratchet {
            min_lines: 600,
            min_exact_percent: 92,
            max_under_high: 3,
            max_below_critical: 4,
            max_reads_over: 6,
        },
    );
}

// ---------------------------------------------------------------------------
// The third author's set (`tests/corpus/third-opinion`): written without
// seeing the classifier, the rules or the other corpora, and measured once
// on 16cff63 before any change made after reading it (86.3% and 75.5%
// exact, 26 HIGH/CRITICAL lines below HIGH; docs/performance.md). Changes
// made after reading it are general (a family of tools, a way of running a
// command), never one line's rule; these bounds keep where it stands now.

#[test]
fn third_opinion_parses_and_reports() {
    report_set(&THIRD_OPINION, 350);
}

#[test]
fn third_opinion_does_not_get_worse() {
    keeps(
        &THIRD_OPINION,
        &Ratchet {
            min_lines: 350,
            min_exact_percent: 88,
            max_under_high: 8,
            max_below_critical: 10,
            max_reads_over: 11,
        },
    );
}

// ---------------------------------------------------------------------------
// The fourth author's set (`tests/corpus/fourth-opinion`), written the same
// way after the changes the third set led to, and measured once on 49c7868
// before any change made after reading it (88.1% exact, 4 of 119
// HIGH/CRITICAL lines below HIGH; docs/performance.md).

#[test]
fn fourth_opinion_parses_and_reports() {
    report_set(&FOURTH_OPINION, 230);
}

#[test]
fn fourth_opinion_does_not_get_worse() {
    keeps(
        &FOURTH_OPINION,
        &Ratchet {
            min_lines: 230,
            min_exact_percent: 90,
            max_under_high: 1,
            max_below_critical: 5,
            max_reads_over: 6,
        },
    );
}
