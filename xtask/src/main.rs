//! Project automation: `cargo xtask <command>`.
#![forbid(unsafe_code)]

mod conformance;
mod decode;
mod export;
mod layers;
// The OAS-to-JSON-Schema converter has one home, the fake server's crate: both check against
// the same rules.
use lead_intake_fake::schema as oas;
mod ordered;
mod surface;
mod validate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  validate [--root DIR]   check openapi/*.yaml: structure, $refs, operationIds,
                          and every example against its schema
  export [--check] [--root DIR]
                          write openapi/export/<api>.{json,yaml}: each spec with its
                          examples inlined, for other languages' generators;
                          --check fails if the checked-in files are stale
  surface [--check]       write openapi/surface/<api>.md: the generated Rust API
                          (types, fields, operations); --check fails if stale
  conformance [--skip-install] [--decode-only]
                          install the pinned third-party tools (scripts/install-
                          conformance-tools.sh), then check the exported documents with
                          linters, other languages' generators (each decoding every
                          example and corpus answer and writing it back unchanged) and
                          a Prism contract test of the Rust client; prints tool |
                          version | result; --decode-only: only the decoding checks,
                          on the clients the last full run generated
  layers [--root DIR]     check that the modules of src/ use each other without a
                          cycle; prints them in layer order
  help                    show this message";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match command.as_str() {
        "validate" => validate::main(rest),
        "export" => export::main(rest),
        "layers" => layers::main(rest),
        "conformance" => conformance::main(rest),
        "surface" => surface::main(rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("error: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}
