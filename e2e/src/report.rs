//! Checks and counts, printed as they happen and summed up at the end.

use std::sync::Mutex;

use crate::lock::lock;

/// One assertion's outcome.
#[derive(Debug, Clone)]
pub struct Check {
    pub suite: String,
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// Everything one run asserted and counted.
#[derive(Debug, Default)]
pub struct Report {
    checks: Mutex<Vec<Check>>,
    counts: Mutex<Vec<(String, String)>>,
    /// Quiet: record without printing (mutation runs print their own digest).
    pub quiet: bool,
}

impl Report {
    pub fn new(quiet: bool) -> Report {
        Report {
            quiet,
            ..Report::default()
        }
    }

    /// Records an assertion.
    pub fn check(&self, suite: &str, name: &str, passed: bool, detail: impl Into<String>) -> bool {
        let detail = detail.into();
        if !self.quiet {
            let mark = if passed { "PASS" } else { "FAIL" };
            if detail.is_empty() {
                println!("  {mark} [{suite}] {name}");
            } else {
                println!("  {mark} [{suite}] {name}: {detail}");
            }
        }
        lock(&self.checks).push(Check {
            suite: suite.to_string(),
            name: name.to_string(),
            passed,
            detail,
        });
        passed
    }

    /// Records a failed assertion from an error (a stage that could not run at all).
    pub fn error(&self, suite: &str, name: &str, error: &anyhow::Error) {
        self.check(suite, name, false, format!("{error:#}"));
    }

    /// Records a number for the summary.
    pub fn count(&self, label: impl Into<String>, value: impl std::fmt::Display) {
        let (label, value) = (label.into(), value.to_string());
        if !self.quiet {
            println!("  COUNT {label}: {value}");
        }
        lock(&self.counts).push((label, value));
    }

    /// Prints a line (unless quiet).
    pub fn note(&self, text: impl AsRef<str>) {
        if !self.quiet {
            println!("  note: {}", text.as_ref());
        }
    }

    pub fn checks(&self) -> Vec<Check> {
        lock(&self.checks).clone()
    }

    pub fn failed(&self) -> usize {
        lock(&self.checks).iter().filter(|c| !c.passed).count()
    }

    pub fn passed(&self) -> usize {
        lock(&self.checks).iter().filter(|c| c.passed).count()
    }

    /// The final summary: counts, failures again, and `N passed, M failed`.
    pub fn summary(&self) -> String {
        let mut out = String::from("\n==== e2e-cluster summary ====\n");
        for (label, value) in lock(&self.counts).iter() {
            out.push_str(&format!("  {label}: {value}\n"));
        }
        let checks = lock(&self.checks);
        let failed: Vec<&Check> = checks.iter().filter(|c| !c.passed).collect();
        if !failed.is_empty() {
            out.push_str("  failed checks:\n");
            for c in &failed {
                out.push_str(&format!("    [{}] {}: {}\n", c.suite, c.name, c.detail));
            }
        }
        out.push_str(&format!(
            "{} passed, {} failed\n",
            checks.len() - failed.len(),
            failed.len()
        ));
        out
    }
}
