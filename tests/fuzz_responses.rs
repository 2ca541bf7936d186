//! The `responses` fuzz target's body (`lead_intake::fuzzing`, FUZZING.md) on stable, in
//! `cargo test`: it covers every operation of both specifications, its seed corpus is the vendor
//! examples, and it runs without panicking on every seed, on every crash the fuzzer found
//! (`fuzz/regressions/responses/`), and on cut and flipped variants of them.
//!
//! `LEAD_INTAKE_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_responses` rewrites
//! `fuzz/seeds/responses/` after an example changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lead_intake::fuzzing::{Answer, operations, responses};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(api, operationId, success schema name or "()")` of every operation of both specifications:
/// the 2xx response with a body, else `()`.
fn declared_operations() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for api in ["kommo", "closebot"] {
        let path = root().join(format!("openapi/{api}.yaml"));
        let doc: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let shared = &doc["components"]["responses"];
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let Some(id) = op.get("operationId").and_then(Value::as_str) else {
                    continue;
                };
                let mut schema = "()".to_string();
                for (status, response) in op["responses"].as_object().unwrap() {
                    if !status.starts_with('2') {
                        continue;
                    }
                    let response = match response.get("$ref").and_then(Value::as_str) {
                        Some(r) => &shared[r.rsplit('/').next().unwrap()],
                        None => response,
                    };
                    let Some(content) = response.get("content").and_then(Value::as_object) else {
                        continue;
                    };
                    for media in content.values() {
                        let r = media["schema"]["$ref"].as_str().unwrap_or_else(|| {
                            panic!("{api}.{id}: a success schema that is not a $ref")
                        });
                        schema = r.rsplit('/').next().unwrap().to_string();
                    }
                }
                out.push((api.to_string(), id.to_string(), schema));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_fuzz_body_covers_every_operation_of_both_specifications() {
    let mut covered: Vec<(String, String, String)> = operations()
        .into_iter()
        .map(|(api, op, ty)| {
            // `lead_intake::kommo::types::SourceList` -> `SourceList`; `()` stays.
            let name = ty.rsplit("::").next().unwrap().to_string();
            assert!(
                name == "()" || ty.starts_with(&format!("lead_intake::{api}::")),
                "{api}.{op} is read as {ty}, a type of another API"
            );
            (api.to_string(), op.to_string(), name)
        })
        .collect();
    covered.sort();
    assert_eq!(
        covered,
        declared_operations(),
        "lead_intake::fuzzing's `operations!` list must name every operation of openapi/*.yaml \
         with its success type"
    );
}

/// The seed corpus: every vendor example answer, as the API sends it, plus the error pages the
/// classifier must tell apart.
fn seeds() -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let header = |name: &'static str, value: &str| (name, value.as_bytes().to_vec());
    for api in ["kommo", "closebot"] {
        let dir = root().join("openapi/examples").join(api);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            // `{op}.response.{status}.json`, `problem.{what}.{status}.json`.
            let parts: Vec<&str> = name.split('.').collect();
            let (status, content_type) = match parts.as_slice() {
                [_, "response", status, "json"] if api == "kommo" => {
                    (status.parse().unwrap(), "application/hal+json")
                }
                [_, "response", status, "json"] => (status.parse().unwrap(), "application/json"),
                ["problem", _, status, "json"] => {
                    (status.parse().unwrap(), "application/problem+json")
                }
                _ => continue,
            };
            let answer = Answer {
                status,
                headers: vec![header("content-type", content_type)],
                body: std::fs::read(dir.join(&name)).unwrap(),
            };
            out.insert(format!("{api}.{name}"), answer.to_bytes());
        }
    }
    let page = |status: u16, headers: Vec<(&'static str, Vec<u8>)>, body: &str| Answer {
        status,
        headers,
        body: body.as_bytes().to_vec(),
    };
    let html = || header("content-type", "text/html");
    for (name, answer) in [
        ("empty.204", page(204, vec![], "")),
        (
            "rate-limited.429",
            page(
                429,
                vec![html()],
                "<html><body><h1>429 Too Many Requests</h1></body></html>",
            ),
        ),
        (
            "rate-limited-seconds.429",
            page(429, vec![html(), header("retry-after", "120")], "slow down"),
        ),
        (
            "rate-limited-date.429",
            page(
                429,
                vec![header("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")],
                "",
            ),
        ),
        (
            "blocked.403",
            page(
                403,
                vec![html()],
                "<html><head><title>403 Forbidden</title></head><body>nginx</body></html>",
            ),
        ),
        (
            "gateway.502",
            page(502, vec![html()], "<html>502 Bad Gateway</html>"),
        ),
        (
            "closebot-text-problem.400",
            page(
                400,
                vec![header("content-type", "application/json; charset=utf-8")],
                "\"Invalid page size\"",
            ),
        ),
        (
            "problem-without-content-type.400",
            page(400, vec![], r#"{"title":"Bad Request","status":400}"#),
        ),
    ] {
        out.insert(format!("made.{name}"), answer.to_bytes());
    }
    out
}

fn dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file() && e.file_name() != ".gitkeep")
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_seed_corpus_is_the_vendor_examples() {
    let dir = root().join("fuzz/seeds/responses");
    let expected = seeds();
    if std::env::var_os("LEAD_INTAKE_WRITE_FUZZ_SEEDS").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &expected {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let stored = dir_files(&dir);
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "fuzz/seeds/responses is stale: run LEAD_INTAKE_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_responses"
    );
    for (name, bytes) in &expected {
        assert!(
            stored[name] == *bytes,
            "fuzz/seeds/responses/{name} is stale: run LEAD_INTAKE_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_responses"
        );
    }
}

#[test]
fn every_example_answer_decodes_as_its_operation() {
    // The fuzzer starts from answers that get through the decoders, not only from errors.
    let ops = operations();
    let mut checked = 0;
    for (name, bytes) in seeds() {
        let Some((api, rest)) = name.split_once('.') else {
            continue;
        };
        let Some((op, _)) = rest.split_once(".response.") else {
            continue;
        };
        let decoded = responses(&bytes);
        let index = ops
            .iter()
            .position(|(a, o, _)| *a == api && *o == op)
            .unwrap_or_else(|| panic!("{name}: no operation {api}.{op}"));
        assert!(
            decoded[index],
            "{name} does not decode as {api}.{op}'s {}",
            ops[index].2
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} example answers found");
    // And an error page decodes as nothing.
    let page = Answer {
        status: 500,
        headers: vec![("content-type", b"text/html".to_vec())],
        body: b"<html>oops</html>".to_vec(),
    };
    let decoded = responses(&page.to_bytes());
    for ((api, op, ty), ok) in ops.iter().zip(decoded) {
        assert!(!ok, "a 500 page decoded as {api}.{op}'s {ty}");
    }
}

#[test]
fn the_answer_layout_reads_back_what_it_wrote() {
    let answer = Answer {
        status: 429,
        headers: vec![
            ("retry-after", b"7".to_vec()),
            ("content-type", b"text/html; charset=\xff".to_vec()),
            ("x-other", vec![0; 255]),
        ],
        body: b"\x00\x01body".to_vec(),
    };
    assert_eq!(Answer::parse(&answer.to_bytes()), answer);
    // Short input is still an answer: the defaults, then whatever is there.
    assert_eq!(Answer::parse(&[]).status, 200);
    assert_eq!(Answer::parse(&[0, 0, 3, 1]).headers, vec![]);
    // 900 (0x0384) wraps to the first status.
    assert_eq!(Answer::parse(&[3, 132]).status, 100);
}

#[test]
fn the_fuzz_body_survives_the_seeds_regressions_and_their_variants() {
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, bytes) in dir_files(&root().join("fuzz/seeds/responses")) {
        inputs.push((format!("seeds/{name}"), bytes));
    }
    for (name, bytes) in dir_files(&root().join("fuzz/regressions/responses")) {
        inputs.push((format!("regressions/{name}"), bytes));
    }
    assert!(inputs.len() >= 20, "only {} inputs", inputs.len());
    let mut rng = fastrand::Rng::with_seed(21);
    for (name, bytes) in inputs {
        responses(&bytes);
        // Cut anywhere, and one byte flipped: half a JSON document, a changed status, ...
        for _ in 0..8 {
            let cut = rng.usize(..=bytes.len());
            responses(&bytes[..cut]);
            let mut flipped = bytes.clone();
            if !flipped.is_empty() {
                let at = rng.usize(..flipped.len());
                flipped[at] ^= 1 << rng.u8(..8);
                responses(&flipped);
            }
        }
        let _ = name;
    }
}
