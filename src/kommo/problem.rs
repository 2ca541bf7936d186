use super::types::Problem;
use crate::error::ProblemSummary;

impl ProblemSummary for Problem {
    fn forbidden_page_means_blocked() -> bool {
        true
    }

    fn is_problem_document(&self) -> bool {
        self.title.is_some()
            || self.detail.is_some()
            || self.status.is_some()
            || self.type_.is_some()
            || !self.validation_errors.is_empty()
    }

    fn summary(&self) -> String {
        let mut out = match (&self.title, &self.detail) {
            (Some(t), Some(d)) => format!("{t}: {d}"),
            (Some(s), None) | (None, Some(s)) => s.clone(),
            (None, None) => "no title or detail".to_string(),
        };
        if let Some(hint) = &self.hint {
            out.push_str(&format!(" (hint: {hint})"));
        }
        let rejected = self.validation_errors.len();
        if rejected > 0 {
            out.push_str(&format!(
                " ({rejected} item{} rejected",
                if rejected == 1 { "" } else { "s" }
            ));
            for group in &self.validation_errors {
                for e in &group.errors {
                    out.push_str(&format!(
                        "; request_id {}: {} at {}: {}",
                        group.request_id.as_deref().unwrap_or("?"),
                        e.code.as_deref().unwrap_or("?"),
                        e.path.as_deref().unwrap_or("?"),
                        e.detail.as_deref().unwrap_or("?"),
                    ));
                }
            }
            out.push(')');
        }
        out
    }
}
