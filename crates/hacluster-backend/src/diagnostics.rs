//! Findings about the config, built one by one.

use crate::{Diagnostic, Severity};

/// The findings of [`Backend::validate`](crate::Backend::validate).
///
/// ```ignore
/// out.error("backends.mine.region", format!("`{r}` is not a region"))
///     .help("use one of eu-west-1, us-east-1");
/// ```
#[derive(Debug, Default)]
pub struct Diagnostics {
    list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An error at `path` (the config's dotted form): the cluster cannot be provisioned.
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) -> &mut Diagnostic {
        self.push(Severity::Error, path.into(), message.into())
    }

    /// A warning at `path`: shown, but the cluster can be provisioned.
    pub fn warning(&mut self, path: impl Into<String>, message: impl Into<String>) -> &mut Diagnostic {
        self.push(Severity::Warning, path.into(), message.into())
    }

    fn push(&mut self, severity: Severity, path: String, message: String) -> &mut Diagnostic {
        self.list.push(Diagnostic { severity, path, message, help: None });
        self.list.last_mut().expect("just pushed")
    }

    /// The errors, as one message (`path: message; ...`), if there are any.
    pub(crate) fn refusal(&self) -> Option<String> {
        let errors: Vec<String> = self
            .list
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    }

    pub(crate) fn into_vec(self) -> Vec<Diagnostic> {
        self.list
    }
}

impl Diagnostic {
    /// What the user can do about it.
    pub fn help(&mut self, help: impl Into<String>) -> &mut Self {
        self.help = Some(help.into());
        self
    }
}
