//! The contract virtualenv's Python tools, run from tests: `tests/contract/*.py` check what
//! the gateway answers against published specifications and our own docs/openapi.yaml.

use std::process::{Command, Stdio};

/// The contract virtualenv's Python (`make test` creates it; `CHAUKAS_CONTRACT_PYTHON`
/// names another).
fn python() -> String {
    std::env::var("CHAUKAS_CONTRACT_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/../target/contract/venv/bin/python",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

/// What a contract script printed.
pub struct ScriptOutput {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs `tests/contract/<script>` with `args`, `stdin` as its input.
pub fn run_contract_script(script: &str, args: &[&str], stdin: &[u8]) -> ScriptOutput {
    let python = python();
    let path = format!("{}/contract/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(&python)
        .arg(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {python} ({error}); `make test` creates it, or run `make contract-descriptors` once"));
    let mut input = child.stdin.take().expect("piped stdin");
    std::io::Write::write_all(&mut input, stdin).expect("script reads its input");
    drop(input);
    let output = child.wait_with_output().expect("script runs");
    ScriptOutput {
        success: output.status.success(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Asserts that `answer` is what docs/openapi.yaml's schema `schema` describes, with no
/// property the document does not name.
pub fn assert_conforms(schema: &str, answer: &serde_json::Value) {
    let output = run_contract_script(
        "conforms.py",
        &[schema],
        &serde_json::to_vec(answer).expect("JSON"),
    );
    assert!(
        output.success,
        "the answer does not match docs/openapi.yaml's {schema}:\n{}\n{answer:#}",
        output.stderr
    );
}
