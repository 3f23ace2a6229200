//! What the linter reads and reports: the manifest [`Source`]s, the [`CheckOptions`] the
//! manifests cannot say, and the [`Finding`]s, collected once each in an `Out`.

use std::fmt;

/// One manifest file's text.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name to report (the path as given).
    pub name: String,
    /// The file's content.
    pub text: String,
}

/// What the manifests cannot say by themselves.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The adapter's `--proxy-prefix`; `None`: the adapter Deployment's, else `/oauth2`.
    pub proxy_prefix: Option<String>,
    /// The callback path; `None`: `<proxy prefix>/callback` (or the `--redirect-url` path).
    pub callback_path: Option<String>,
    /// Where istiod runs (and reads its `istio` ConfigMap).
    pub istio_namespace: String,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            proxy_prefix: None,
            callback_path: None,
            istio_namespace: "istio-system".to_owned(),
        }
    }
}

/// One problem: where, which rule, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file, as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The rule's name (see [`RULES`](super::rules::RULES)).
    pub rule: &'static str,
    /// What is wrong (no final period).
    pub problem: String,
    /// How to fix it (no final period).
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}. fix: {}",
            self.file, self.line, self.problem, self.fix
        )
    }
}

/// The findings so far, each once.
pub(super) struct Out {
    pub(super) findings: Vec<Finding>,
}

impl Out {
    pub(super) fn add(
        &mut self,
        file: &str,
        line: usize,
        rule: &'static str,
        problem: String,
        fix: String,
    ) {
        let finding = Finding {
            file: file.to_owned(),
            line,
            rule,
            problem,
            fix,
        };
        if !self.findings.contains(&finding) {
            self.findings.push(finding);
        }
    }
}
