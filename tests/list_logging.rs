//! A list with odd items logs one WARN event, naming the count, the first one's index and path,
//! and no value. (A binary of its own: one subscriber, one test, nothing racing for callsites.)

use std::sync::{Arc, Mutex};

use lead_intake::closebot::types::SourcePage;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn a_list_with_odd_items_logs_once_at_warn_without_values() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let body = r#"{"total": 4, "results": [
        {"name": "a"},
        {"name": "b", "connected": "s3cr3t-value"},
        {"name": "c"},
        {"name": ["s3cr3t-too"]}
    ]}"#;
    let page: SourcePage = serde_json::from_str(body).unwrap();
    assert_eq!(
        (page.results.len(), page.results.unrecognized().len()),
        (2, 2)
    );
    let clean: SourcePage = serde_json::from_str(r#"{"results": [{"name": "a"}]}"#).unwrap();
    assert!(clean.results.all_recognized());

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one event for the odd list, none for the clean one: {text}"
    );
    let line = lines[0];
    assert!(
        line.contains("WARN") && line.contains("lead_intake::list"),
        "{line}"
    );
    assert!(
        line.contains("unrecognized=2")
            && line.contains("total=4")
            && line.contains("first_index=1")
            && line.contains("first_path=connected"),
        "{line}"
    );
    assert!(!line.contains("s3cr3t"), "{line}");
}
