//! Fuzz targets for telltale's parsers and header handling, and the harness
//! that runs them on stable Rust.
//!
//! Each [`Target`] takes one text input and asserts, by panicking, a real
//! property besides "no panic": a round trip where one exists (a parsed chaos
//! rule set prints to text that parses to the same set; an extracted trace
//! context injects to the same `traceparent`), or the rule of the spec (a
//! context is only extracted from a W3C-valid `traceparent`; an invalid
//! correlation ID is never echoed).
//!
//! The harness ([`run`]) is written here, not taken from `cargo-fuzz` (needs
//! nightly) or `bolero` (its stable mode runs a fixed number of iterations
//! under `cargo test` and cannot report per-target counts for a time budget,
//! which CI and the README's figures need): it is a seeded, coverage-free
//! mutator over a corpus of valid inputs and a dictionary of each grammar's
//! tokens. Every input is reproducible from the seed; a panic stops the target
//! and reports the input.
//!
//! ```
//! use std::time::Duration;
//! use telltale_fuzz::{Budget, TARGETS, run};
//!
//! let target = TARGETS.iter().find(|t| t.name == "config").unwrap();
//! let report = run(target, 7, Budget::Inputs(500));
//! assert_eq!(report.inputs, 500);
//! assert!(report.failure.is_none());
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub mod targets;

pub use targets::TARGETS;

/// A fuzz target: its name, seed corpus, dictionary and property check.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The name used on the command line.
    pub name: &'static str,
    /// Valid (or nearly valid) inputs mutations start from.
    pub corpus: &'static [&'static str],
    /// Tokens of the grammar, inserted by mutations.
    pub dictionary: &'static [&'static str],
    /// Checks one input; panics when a property does not hold.
    pub check: fn(&str),
}

/// How long a target runs.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// Exactly this many inputs (the corpus first).
    Inputs(u64),
    /// Inputs until this much time has passed.
    Time(Duration),
}

/// A panic of a target: the input and the panic message.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The input, as given to the target.
    pub input: String,
    /// The panic message.
    pub message: String,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Report {
    /// The target's name.
    pub target: &'static str,
    /// Inputs checked (including a failing one).
    pub inputs: u64,
    /// The first panic, which stopped the run.
    pub failure: Option<Failure>,
}

/// Longest input generated, in characters (longer inputs come from
/// duplications and are cut here, past every length bound the parsers have).
pub const MAX_INPUT_CHARS: usize = 12_000;

/// Characters that matter to the grammars, or to text handling in general.
const INTERESTING: &[char] = &[
    ' ',
    ',',
    '=',
    ';',
    ':',
    '-',
    '%',
    '[',
    ']',
    '{',
    '}',
    '(',
    ')',
    '"',
    '\\',
    '\t',
    '\n',
    '\r',
    '\0',
    '\u{7f}',
    'é',
    'µ',
    '€',
    '\u{10FFFF}',
    '\u{FEFF}',
    '\u{200B}',
    '0',
    '9',
    'a',
    'f',
    'F',
    'Z',
    '.',
    '*',
    '/',
    '@',
    '+',
    '|',
    '&',
    '_',
    '#',
    '?',
    '\'',
    '~',
    '^',
];

/// Numbers at the edges of the types parsers use.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "00",
    "255",
    "256",
    "65535",
    "65536",
    "99999",
    "4294967296",
    "2305843009213693952",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "1e308",
    "1e-7",
    "0.0000001",
    "100000000000000000000000000000000000000000",
    "NaN",
    "inf",
    "0x10",
];

/// The seeded input generator of one run.
struct Generator {
    rng: StdRng,
    corpus: &'static [&'static str],
    dictionary: &'static [&'static str],
}

impl Generator {
    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        if items.is_empty() {
            return "";
        }
        items[self.rng.random_range(0..items.len())]
    }

    fn random_char(&mut self) -> char {
        match self.rng.random_range(0..4) {
            0 => INTERESTING[self.rng.random_range(0..INTERESTING.len())],
            1 => char::from(self.rng.random_range(0u8..0x80)),
            2 => char::from(self.rng.random_range(0x20u8..0x7f)),
            _ => self.rng.random::<char>(),
        }
    }

    fn next(&mut self) -> String {
        let mut s: Vec<char> = if self.rng.random_range(0..16) == 0 {
            let n = self.rng.random_range(0..64);
            (0..n).map(|_| self.random_char()).collect()
        } else {
            self.pick(self.corpus).chars().collect()
        };
        let rounds = self.rng.random_range(1..=8);
        for _ in 0..rounds {
            self.mutate(&mut s);
        }
        s.truncate(MAX_INPUT_CHARS);
        s.into_iter().collect()
    }

    fn mutate(&mut self, s: &mut Vec<char>) {
        let at = |rng: &mut StdRng, len: usize| rng.random_range(0..=len);
        match self.rng.random_range(0..9) {
            0 | 1 => {
                let i = at(&mut self.rng, s.len());
                let token = self.pick(self.dictionary);
                s.splice(i..i, token.chars());
            }
            2 if !s.is_empty() => {
                let i = self.rng.random_range(0..s.len());
                let n = self.rng.random_range(1..=16).min(s.len() - i);
                s.drain(i..i + n);
            }
            3 if !s.is_empty() => {
                let i = self.rng.random_range(0..s.len());
                s[i] = self.random_char();
            }
            4 if !s.is_empty() => {
                let i = self.rng.random_range(0..s.len());
                let n = self.rng.random_range(1..=32).min(s.len() - i);
                let times = if self.rng.random_range(0..8) == 0 {
                    self.rng.random_range(64..=2048)
                } else {
                    self.rng.random_range(1..=4)
                };
                let part: Vec<char> = s[i..i + n].to_vec();
                let repeated = std::iter::repeat_n(part, times)
                    .flatten()
                    .collect::<Vec<_>>();
                s.splice(i..i, repeated);
            }
            5 => {
                let i = at(&mut self.rng, s.len());
                let number = if self.rng.random_bool(0.5) {
                    self.pick(NUMBERS).to_owned()
                } else {
                    self.rng.random::<u64>().to_string()
                };
                s.splice(i..i, number.chars());
            }
            6 => {
                let other: Vec<char> = self.pick(self.corpus).chars().collect();
                let i = at(&mut self.rng, s.len());
                let j = at(&mut self.rng, other.len());
                s.truncate(i);
                s.extend_from_slice(&other[j..]);
            }
            7 if !s.is_empty() => {
                let i = self.rng.random_range(0..s.len());
                let c = s[i];
                s[i] = if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                };
            }
            8 if !s.is_empty() => {
                let i = self.rng.random_range(0..s.len());
                s.truncate(i);
            }
            _ => {
                let i = at(&mut self.rng, s.len());
                let c = self.random_char();
                s.insert(i, c);
            }
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs `target` on its corpus, then on generated inputs from `seed`, until
/// `budget` is spent or an input panics.
pub fn run(target: &Target, seed: u64, budget: Budget) -> Report {
    let mut generator = Generator {
        rng: StdRng::seed_from_u64(seed),
        corpus: target.corpus,
        dictionary: target.dictionary,
    };
    let start = Instant::now();
    let mut inputs = 0u64;
    let mut corpus = target.corpus.iter();
    loop {
        let done = match budget {
            Budget::Inputs(n) => inputs >= n,
            Budget::Time(t) => inputs % 16 == 0 && start.elapsed() >= t,
        };
        if done {
            break;
        }
        let input = match corpus.next() {
            Some(s) => (*s).to_owned(),
            None => generator.next(),
        };
        inputs += 1;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| (target.check)(&input))) {
            return Report {
                target: target.name,
                inputs,
                failure: Some(Failure {
                    input,
                    message: panic_message(&*payload),
                }),
            };
        }
    }
    Report {
        target: target.name,
        inputs,
        failure: None,
    }
}
