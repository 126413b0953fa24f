//! Automated disclosure checks, run when a job finishes, before the owner reviews its outputs.
//!
//! Each finding is a [`Check`]: a [`CheckKind`] (serialised as a stable snake_case name), the output it
//! concerns (`outputs/<name>`, escaped, or `stdout` / `stderr`) and a detail line safe to print. The
//! kinds:
//!
//! - `private_echo`: an output repeats a private input: a whole field or row of it, or a span of it
//!   inside a line ([`echo`] says exactly what is recognised, and the odds of a false finding). Needs an
//!   [`EchoIndex`] per asset version, built once.
//! - `canary`: an output holds a string the owner registered for an asset ([`Canary`]): exact bytes,
//!   and ASCII case-insensitive. Nothing else: an encoded (base64, hex, reversed) canary is not found,
//!   so canaries catch careless copying, not a determined researcher.
//! - `large_output`: an output is larger than `large_output_bytes`.
//! - `binary_output`: an output is not text ([`crate::preview::classify`]); review cannot read it.
//! - `many_rows`: an output is a table ([`crate::preview::csv_shape`]) with more rows than
//!   `many_rows`: row-level data rather than an aggregate.
//! - `small_count`: a table has a count column with a cell from 1 to `small_count_k − 1`, the classic
//!   threshold rule of statistical disclosure control. A column is a count when its header, split into
//!   words (at `_`, `-`, spaces, dots and lower-to-upper case changes), holds a word such as `count`,
//!   `n`, `num`, `number`, `freq`, `frequency`, `total`, `cnt`, `users`, `people`, `patients`,
//!   `respondents`, `records`, `rows`, `occurrences` (see [`COUNT_WORDS`]); or when the table has
//!   exactly two columns, the first mostly not numbers (a category) and the second all whole numbers
//!   (the shape of `group,count`). Only cells that are whole numbers count; zero is not flagged.
//!
//! Which kinds block a release is the owner's choice (`[review] block_on`): [`parse_block_on`] reads
//! the names, [`default_block_on`] is `["private_echo", "canary"]`, and [`Check::blocks`] applies them.
//! Thresholds and `block_on` are the fields of [`ReviewPolicy`], whose names are the `[review]` keys.

pub mod echo;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use echo::{
    BuildLimits, EchoHit, EchoIndex, EchoKind, EchoScan, IndexError, IndexParams, IndexSummary,
};

use crate::escape;
use crate::preview::{self, CsvShape, Kind};

/// What a check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// An output repeats a private input.
    PrivateEcho,
    /// An output holds a registered canary string.
    Canary,
    /// An output is larger than the threshold.
    LargeOutput,
    /// An output is not text.
    BinaryOutput,
    /// A table output has more rows than the threshold.
    ManyRows,
    /// A table output has a count below k.
    SmallCount,
}

impl CheckKind {
    /// Every kind, in a stable order.
    pub const ALL: [CheckKind; 6] = [
        CheckKind::PrivateEcho,
        CheckKind::Canary,
        CheckKind::LargeOutput,
        CheckKind::BinaryOutput,
        CheckKind::ManyRows,
        CheckKind::SmallCount,
    ];

    /// The stable name: `private_echo`, `canary`, `large_output`, `binary_output`, `many_rows`,
    /// `small_count`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::PrivateEcho => "private_echo",
            CheckKind::Canary => "canary",
            CheckKind::LargeOutput => "large_output",
            CheckKind::BinaryOutput => "binary_output",
            CheckKind::ManyRows => "many_rows",
            CheckKind::SmallCount => "small_count",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check kind name that is not one of [`CheckKind::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown check kind `{name}` (the kinds are private_echo, canary, large_output, binary_output, \
     many_rows and small_count)"
)]
pub struct UnknownCheckKind {
    /// The name given, escaped.
    pub name: String,
}

impl FromStr for CheckKind {
    type Err = UnknownCheckKind;

    fn from_str(s: &str) -> Result<CheckKind, UnknownCheckKind> {
        CheckKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownCheckKind {
                name: escape::line(s).into_owned(),
            })
    }
}

/// Reads `[review] block_on`: each name must be a kind; repeats are dropped, order kept.
pub fn parse_block_on<S: AsRef<str>>(names: &[S]) -> Result<Vec<CheckKind>, UnknownCheckKind> {
    let mut kinds = Vec::new();
    for name in names {
        let kind: CheckKind = name.as_ref().parse()?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// The kinds that block a release unless configured otherwise: `private_echo` and `canary`.
pub fn default_block_on() -> Vec<CheckKind> {
    vec![CheckKind::PrivateEcho, CheckKind::Canary]
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What was found.
    pub kind: CheckKind,
    /// Where: `outputs/<name>` (the name escaped), `stdout` or `stderr`.
    pub output: String,
    /// What exactly, safe to print (every excerpt escaped).
    pub detail: String,
}

impl Check {
    /// Whether this finding blocks a release under `block_on`.
    pub fn blocks(&self, block_on: &[CheckKind]) -> bool {
        block_on.contains(&self.kind)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.output, self.detail)
    }
}

/// The `[review]` table of a side's configuration: which findings block a release, and the checks'
/// thresholds. A key left out keeps its default; an unknown key is an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewPolicy {
    /// The kinds whose findings block a release unless the owner overrides them with a reason (default
    /// [`default_block_on`]: `private_echo` and `canary`).
    pub block_on: Vec<CheckKind>,
    /// Distinct reviewers whose signed approvals a job needs before it crosses (low side), and that the high
    /// side counts before it runs one (default 1).
    pub approvals_required: u32,
    /// Distinct reviewers whose signed releases a result needs before it crosses (high side), and that the low
    /// side counts before it delivers one (default 1).
    pub releases_required: u32,
    /// `large_output` above this many bytes (default 10 MiB).
    pub large_output_bytes: u64,
    /// `many_rows` above this many table rows (default 1000).
    pub many_rows: u64,
    /// `small_count` for counts from 1 to `small_count_k - 1` (default 10).
    pub small_count_k: u64,
    /// Shortest field or row, in characters, that `private_echo` recognises whole (default 32). Takes
    /// effect when an index is built.
    pub echo_field_min: u32,
    /// Bytes of the spans `private_echo` recognises inside a line (default 64). Takes effect when an
    /// index is built.
    pub echo_window: u32,
    /// Winnowing window: spans of `echo_window + echo_winnow - 1` bytes are always recognised (default
    /// 256). Takes effect when an index is built.
    pub echo_winnow: u32,
    /// A value or span found this many times or more in an asset is not indexed (default 10). Takes
    /// effect when an index is built.
    pub echo_common_rows: u32,
    /// Examples given in one finding's detail (default 3).
    pub max_examples: usize,
}

impl Default for ReviewPolicy {
    fn default() -> ReviewPolicy {
        let p = IndexParams::default();
        ReviewPolicy {
            block_on: default_block_on(),
            approvals_required: 1,
            releases_required: 1,
            large_output_bytes: 10 << 20,
            many_rows: 1000,
            small_count_k: 10,
            echo_field_min: p.field_min,
            echo_window: p.window,
            echo_winnow: p.winnow,
            echo_common_rows: p.common_rows,
            max_examples: 3,
        }
    }
}

impl ReviewPolicy {
    /// The parameters to build an asset's [`EchoIndex`] with. An index keeps the parameters it was
    /// built with: changed `echo_*` thresholds apply to indexes built afterwards.
    pub fn index_params(&self) -> IndexParams {
        IndexParams {
            window: self.echo_window,
            winnow: self.echo_winnow,
            field_min: self.echo_field_min,
            common_rows: self.echo_common_rows,
        }
    }

    /// Checks the ranges (the `echo_*` ones as [`IndexParams::validate`] does).
    pub fn validate(&self) -> Result<(), IndexError> {
        if self.approvals_required == 0 || self.releases_required == 0 {
            return Err(IndexError::BadParams(
                "approvals_required and releases_required must be at least 1".into(),
            ));
        }
        if self.small_count_k < 2 {
            return Err(IndexError::BadParams(
                "small_count_k must be at least 2".into(),
            ));
        }
        self.index_params().validate()
    }
}

/// Shortest canary, in bytes: a shorter string would turn up by chance.
pub const MIN_CANARY_BYTES: usize = 8;

/// A string the owner planted in an asset, whose appearance in an output means the asset leaked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    /// The asset it was planted in.
    pub asset: String,
    /// The string. Findings name the canary by asset and position, never by value.
    pub value: String,
}

/// A canary too short to be told from chance.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a canary for `{asset}` is {len} bytes; canaries must be at least {MIN_CANARY_BYTES} bytes"
)]
pub struct ShortCanary {
    /// The asset, escaped.
    pub asset: String,
    /// The canary's length.
    pub len: usize,
}

impl Canary {
    /// A canary for `asset`, of at least [`MIN_CANARY_BYTES`].
    pub fn new(asset: &str, value: &str) -> Result<Canary, ShortCanary> {
        if value.len() < MIN_CANARY_BYTES {
            return Err(ShortCanary {
                asset: escape::line(asset).into_owned(),
                len: value.len(),
            });
        }
        Ok(Canary {
            asset: asset.to_string(),
            value: value.to_string(),
        })
    }
}

/// What the checks look at: one output file, or the job's stdout or stderr.
#[derive(Clone, Copy, Debug)]
pub struct Output<'a> {
    label: &'a str,
    stream: bool,
    /// Its bytes.
    pub data: &'a [u8],
}

impl<'a> Output<'a> {
    /// A file the job wrote, by its name under `outputs/`.
    pub fn file(name: &'a str, data: &'a [u8]) -> Output<'a> {
        Output {
            label: name,
            stream: false,
            data,
        }
    }

    /// The job's stdout.
    pub fn stdout(data: &'a [u8]) -> Output<'a> {
        Output {
            label: "stdout",
            stream: true,
            data,
        }
    }

    /// The job's stderr.
    pub fn stderr(data: &'a [u8]) -> Output<'a> {
        Output {
            label: "stderr",
            stream: true,
            data,
        }
    }

    /// How findings name it: `outputs/<name>` (escaped), `stdout` or `stderr`.
    pub fn shown(&self) -> String {
        if self.stream {
            self.label.to_string()
        } else {
            format!("outputs/{}", escape::line(self.label))
        }
    }
}

/// Runs every check on every output. `indexes` are the echo indexes of the private inputs the job
/// read, `canaries` the canaries of those inputs. Findings come per output, in the order given, then
/// in the order of [`CheckKind::ALL`].
pub fn run_checks(
    outputs: &[Output<'_>],
    indexes: &[&EchoIndex],
    canaries: &[Canary],
    t: &ReviewPolicy,
) -> Vec<Check> {
    let mut checks = Vec::new();
    for output in outputs {
        let shown = output.shown();
        let mut add = |kind: CheckKind, detail: String| {
            checks.push(Check {
                kind,
                output: shown.clone(),
                detail,
            });
        };
        for index in indexes {
            if let Some(detail) = private_echo(index, output.data, t.max_examples) {
                add(CheckKind::PrivateEcho, detail);
            }
        }
        for detail in canary_findings(output.data, canaries) {
            add(CheckKind::Canary, detail);
        }
        let bytes = output.data.len() as u64;
        if bytes > t.large_output_bytes {
            add(
                CheckKind::LargeOutput,
                format!(
                    "{bytes} bytes, over the threshold of {} bytes",
                    t.large_output_bytes
                ),
            );
        }
        let kind = preview::classify(output.data);
        if kind == Kind::Binary {
            add(
                CheckKind::BinaryOutput,
                format!(
                    "{}, {bytes} bytes: not text, so review cannot read it",
                    preview::detect_type(output.data)
                ),
            );
        }
        if kind == Kind::Text {
            if let Some(shape) = preview::csv_shape(output.data) {
                if shape.rows > t.many_rows {
                    add(
                        CheckKind::ManyRows,
                        format!(
                            "a table of {} rows after the header, over the threshold of {} rows",
                            shape.rows, t.many_rows
                        ),
                    );
                }
                for detail in small_counts(output.data, &shape, t.small_count_k, t.max_examples) {
                    add(CheckKind::SmallCount, detail);
                }
            }
        }
    }
    checks
}

fn private_echo(index: &EchoIndex, data: &[u8], examples: usize) -> Option<String> {
    let scan = index.scan(data, examples);
    if scan.lines_hit == 0 {
        return None;
    }
    let params = index.params();
    let mut detail = format!(
        "{} line{} repeat{} private input `{}`",
        scan.lines_hit,
        if scan.lines_hit == 1 { "" } else { "s" },
        if scan.lines_hit == 1 { "s" } else { "" },
        escape::line(index.label()),
    );
    for hit in &scan.hits {
        let what = match hit.kind {
            EchoKind::Record => format!("a whole row of {} bytes", hit.len),
            EchoKind::Field => format!("a whole field of {} bytes", hit.len),
            EchoKind::Window => format!("a span of {} bytes", params.window),
        };
        detail.push_str(&format!("; line {}: {what}: {}", hit.line, hit.excerpt));
    }
    if scan.lines_hit > scan.hits.len() as u64 {
        detail.push_str(&format!(
            "; and {} more lines",
            scan.lines_hit - scan.hits.len() as u64
        ));
    }
    Some(detail)
}

fn canary_findings(data: &[u8], canaries: &[Canary]) -> Vec<String> {
    let mut found = Vec::new();
    let mut lower: Option<Vec<u8>> = None;
    for (i, canary) in canaries.iter().enumerate() {
        let needle = canary.value.as_bytes();
        if needle.is_empty() {
            continue;
        }
        // The position among this asset's canaries, so the value itself is never printed.
        let nth = canaries[..i]
            .iter()
            .filter(|c| c.asset == canary.asset)
            .count()
            + 1;
        let name = format!("canary {nth} of `{}`", escape::line(&canary.asset));
        if let Some(at) = memchr::memmem::find(data, needle) {
            found.push(format!("holds {name} at byte {at}"));
            continue;
        }
        if needle.iter().any(u8::is_ascii_alphabetic) {
            let lower = lower.get_or_insert_with(|| data.to_ascii_lowercase());
            if let Some(at) = memchr::memmem::find(lower, &needle.to_ascii_lowercase()) {
                found.push(format!("holds {name} at byte {at}, in other letter case"));
            }
        }
    }
    found
}

/// Header words that make a column a count (compared in lower case).
pub const COUNT_WORDS: &[&str] = &[
    "count",
    "counts",
    "cnt",
    "n",
    "num",
    "number",
    "freq",
    "frequency",
    "total",
    "tally",
    "users",
    "people",
    "persons",
    "individuals",
    "patients",
    "respondents",
    "participants",
    "members",
    "customers",
    "records",
    "rows",
    "occurrences",
];

/// The header's words: split at non-alphanumerics and at lower-to-upper case changes, lower-cased.
fn header_words(header: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in header.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_lowercase();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn whole_number(cell: &[u8]) -> Option<u64> {
    let cell = cell.trim_ascii();
    if cell.is_empty() || !cell.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(cell).ok()?.parse().ok()
}

fn small_counts(data: &[u8], shape: &CsvShape, k: u64, examples: usize) -> Vec<String> {
    let mut columns: Vec<usize> = shape
        .header
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            header_words(h)
                .iter()
                .any(|w| COUNT_WORDS.contains(&w.as_str()))
        })
        .map(|(i, _)| i)
        .collect();
    // Data rows with their 1-based line numbers, walked again for each pass (nothing is collected).
    let rows = || {
        preview::lines(data)
            .enumerate()
            .skip(1)
            .filter(|(_, l)| !l.is_empty())
            .map(|(n, l)| (n as u64 + 1, preview::split_fields(l, shape.delimiter)))
    };
    if columns.is_empty() && shape.columns == 2 {
        let (mut total, mut categories, mut counts) = (0usize, 0usize, 0usize);
        for (_, f) in rows() {
            total += 1;
            categories += usize::from(f.first().and_then(|c| whole_number(c)).is_none());
            counts += usize::from(f.get(1).and_then(|c| whole_number(c)).is_some());
        }
        if total > 0 && categories * 2 > total && counts == total {
            columns.push(1);
        }
    }
    let mut findings = Vec::new();
    for col in columns {
        let mut small = 0usize;
        let mut shown: Vec<String> = Vec::new();
        for (line, f) in rows() {
            let Some(v) = f.get(col).and_then(|c| whole_number(c)) else {
                continue;
            };
            if (1..k).contains(&v) {
                small += 1;
                if shown.len() < examples {
                    shown.push(format!("line {line}: {v}"));
                }
            }
        }
        if small == 0 {
            continue;
        }
        findings.push(format!(
            "column `{}`: {small} count{} from 1 to {} (k = {k}): {}{}",
            escape::line(&shape.header[col]),
            if small == 1 { "" } else { "s" },
            k - 1,
            shown.join(", "),
            if small > examples { ", ..." } else { "" }
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(checks: &[Check]) -> Vec<CheckKind> {
        checks.iter().map(|c| c.kind).collect()
    }

    fn private() -> (String, EchoIndex) {
        let mut csv = String::from("id,source,text\n");
        for i in 0..2000 {
            csv.push_str(&format!(
                "{i},{},private message {i} written by a person who trusted the lab {}\n",
                ["wiki", "forum"][i % 2],
                i * 7 % 13
            ));
        }
        let idx = EchoIndex::build_with_key(
            "train.csv",
            csv.as_bytes(),
            ReviewPolicy::default().index_params(),
            [7; 16],
        )
        .unwrap();
        (csv, idx)
    }

    #[test]
    fn kinds_serialise_as_stable_snake_case_names_and_parse_back() {
        for kind in CheckKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(kind.as_str().parse::<CheckKind>(), Ok(kind));
        }
        let check = Check {
            kind: CheckKind::SmallCount,
            output: "outputs/t.csv".into(),
            detail: "d".into(),
        };
        assert_eq!(
            serde_json::to_string(&check).unwrap(),
            r#"{"kind":"small_count","output":"outputs/t.csv","detail":"d"}"#
        );
    }

    #[test]
    fn block_on_names_are_validated() {
        assert_eq!(
            parse_block_on(&["private_echo", "canary", "private_echo"]),
            Ok(vec![CheckKind::PrivateEcho, CheckKind::Canary])
        );
        let e = parse_block_on(&["private_echo", "privat\u{1b}_echo"]).unwrap_err();
        assert_eq!(e.name, "privat\\x1b_echo");
        assert!(e
            .to_string()
            .starts_with("unknown check kind `privat\\x1b_echo`"));
        let block_on = default_block_on();
        let check = |kind| Check {
            kind,
            output: "stdout".into(),
            detail: String::new(),
        };
        assert!(check(CheckKind::Canary).blocks(&block_on));
        assert!(!check(CheckKind::ManyRows).blocks(&block_on));
    }

    #[test]
    fn thresholds_read_from_review_config_with_defaults() {
        #[derive(Deserialize)]
        struct Config {
            review: ReviewPolicy,
        }
        let c: Config = toml::from_str("[review]\nmany_rows = 50\nsmall_count_k = 5\n").unwrap();
        assert_eq!(c.review.many_rows, 50);
        assert_eq!(c.review.small_count_k, 5);
        assert_eq!(c.review.echo_field_min, 32);
        assert_eq!(c.review.echo_window, 64);
        assert_eq!(c.review.large_output_bytes, 10 << 20);
        assert_eq!(c.review.block_on, default_block_on());
        assert!(c.review.validate().is_ok());
        let c: Config = toml::from_str("[review]\nblock_on = [\"small_count\"]\n").unwrap();
        assert_eq!(c.review.block_on, vec![CheckKind::SmallCount]);
        let c: Config = toml::from_str("[review]\nblock_on = []\n").unwrap();
        assert!(c.review.block_on.is_empty());
        let err = toml::from_str::<Config>("[review]\nblock_on = [\"echo\"]\n")
            .err()
            .expect("an unknown kind is refused");
        assert!(err.to_string().contains("echo"), "{err}");
        let err = toml::from_str::<Config>("[review]\nmany_row = 5\n")
            .err()
            .expect("a misspelt key is refused");
        assert!(err.to_string().contains("many_row"), "{err}");
        let bad = ReviewPolicy {
            echo_window: 4,
            ..ReviewPolicy::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn an_aggregate_is_not_flagged_but_a_copied_row_is() {
        let (csv, idx) = private();
        let t = ReviewPolicy::default();
        let aggregate = b"source,count\nwiki,1000\nforum,1000\n";
        let checks = run_checks(
            &[Output::file("by_source.csv", aggregate)],
            &[&idx],
            &[],
            &t,
        );
        assert_eq!(checks, []);
        let row = csv.lines().nth(1234).unwrap();
        let leak = format!("id,source,text\n{row}\n");
        let checks = run_checks(&[Output::stdout(leak.as_bytes())], &[&idx], &[], &t);
        assert_eq!(kinds(&checks), [CheckKind::PrivateEcho]);
        assert_eq!(checks[0].output, "stdout");
        assert!(
            checks[0]
                .detail
                .starts_with("1 line repeats private input `train.csv`; line 2: a whole field of "),
            "{}",
            checks[0].detail
        );
        assert!(checks[0].detail.contains("private message 1233 written"));
    }

    #[test]
    fn canaries_are_found_exactly_and_in_other_case_and_never_printed() {
        let canaries = [
            Canary::new("train.csv", "FERRY-CANARY-7f3a").unwrap(),
            Canary::new("train.csv", "zebra-quartz-19").unwrap(),
        ];
        assert!(Canary::new("train.csv", "short").is_err());
        let out = b"model said ferry-canary-7F3A and also zebra-quartz-19!";
        let checks = run_checks(
            &[Output::file("o.txt", out)],
            &[],
            &canaries,
            &ReviewPolicy::default(),
        );
        assert_eq!(kinds(&checks), [CheckKind::Canary, CheckKind::Canary]);
        assert_eq!(
            checks[0].detail,
            "holds canary 1 of `train.csv` at byte 11, in other letter case"
        );
        assert_eq!(checks[1].detail, "holds canary 2 of `train.csv` at byte 38");
        assert_eq!(checks[0].output, "outputs/o.txt");
        for c in &checks {
            assert!(!c.detail.to_lowercase().contains("ferry-canary"));
        }
    }

    #[test]
    fn large_binary_and_many_rows_outputs_are_flagged() {
        let t = ReviewPolicy {
            large_output_bytes: 100,
            many_rows: 3,
            ..ReviewPolicy::default()
        };
        let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00";
        let rows = b"id,value\n1,a\n2,b\n3,c\n4,d\n";
        let big = vec![b'x'; 101];
        let checks = run_checks(
            &[
                Output::file("p.png", png),
                Output::file("rows.csv", rows),
                Output::file("big.txt", &big),
            ],
            &[],
            &[],
            &t,
        );
        assert_eq!(
            checks,
            [
                Check {
                    kind: CheckKind::BinaryOutput,
                    output: "outputs/p.png".into(),
                    detail: "PNG image, 18 bytes: not text, so review cannot read it".into(),
                },
                Check {
                    kind: CheckKind::ManyRows,
                    output: "outputs/rows.csv".into(),
                    detail: "a table of 4 rows after the header, over the threshold of 3 rows"
                        .into(),
                },
                Check {
                    kind: CheckKind::LargeOutput,
                    output: "outputs/big.txt".into(),
                    detail: "101 bytes, over the threshold of 100 bytes".into(),
                },
            ]
        );
    }

    #[test]
    fn small_counts_by_header_or_by_category_count_shape() {
        let t = ReviewPolicy::default();
        let run = |data: &[u8]| run_checks(&[Output::file("t.csv", data)], &[], &[], &t);
        let checks = run(b"region,n_patients,mean_age\nnorth,120,54\nsouth,3,61\neast,7,40\n");
        assert_eq!(kinds(&checks), [CheckKind::SmallCount]);
        assert_eq!(
            checks[0].detail,
            "column `n_patients`: 2 counts from 1 to 9 (k = 10): line 3: 3, line 4: 7"
        );
        // camelCase header words.
        assert_eq!(
            kinds(&run(b"group,userCount\na,2\nb,50\n")),
            [CheckKind::SmallCount]
        );
        // The shape of `group,count` without a count-like header.
        let checks = run(b"diagnosis,seen\nflu,40\nrare disease,1\n");
        assert_eq!(kinds(&checks), [CheckKind::SmallCount]);
        let checks = run(b"word,value\nalpha,1\nbeta,12\n");
        assert_eq!(kinds(&checks), [CheckKind::SmallCount]);
        // Not counts: no count header, and the first column is numbers (id, value).
        assert_eq!(run(b"id,score\n1,3\n2,5\n"), []);
        // Counts at or above k, and zero, are fine.
        assert_eq!(run(b"source,count\nwiki,12\nforum,10\nnews,0\n"), []);
        // Mean age is not a count even though its values are small.
        assert_eq!(
            run(b"region,mean_age\nnorth,5\nsouth,6\n").len(),
            1,
            "2-column shape applies"
        );
        assert_eq!(run(b"region,mean_age,sd\nnorth,5,1\nsouth,6,2\n"), []);
    }

    #[test]
    fn header_words_split_as_documented() {
        assert_eq!(header_words("n_users"), ["n", "users"]);
        assert_eq!(header_words("userCount"), ["user", "count"]);
        assert_eq!(header_words("Total Records"), ["total", "records"]);
        assert_eq!(header_words("ID"), ["id"]);
    }

    #[test]
    fn output_names_in_findings_are_escaped() {
        let out = Output::file("x\u{202e}.csv", b"\x00");
        let checks = run_checks(&[out], &[], &[], &ReviewPolicy::default());
        assert_eq!(checks[0].output, "outputs/x\\u{202e}.csv");
    }
}
