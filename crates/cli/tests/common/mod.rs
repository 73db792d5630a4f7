//! Helpers shared by the CLI's test binaries.
// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `integrabner` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_integrabner"))
}

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The entities of a `predict` object, each checked to be the exact slice
/// of `text` at its char offsets.
pub fn exact_entities<'a>(
    text: &str,
    prediction: &'a serde_json::Value,
) -> &'a [serde_json::Value] {
    let chars: Vec<char> = text.chars().collect();
    let entities = prediction["entities"].as_array().unwrap();
    for e in entities {
        let (start, end) = (
            e["start"].as_u64().unwrap() as usize,
            e["end"].as_u64().unwrap() as usize,
        );
        assert_eq!(
            chars[start..end].iter().collect::<String>(),
            e["text"].as_str().unwrap(),
            "{e}"
        );
    }
    entities
}

/// Runs `cmd` with `stdin`, failing the test if it takes longer than `limit`.
/// Standard input is written, and standard output and error read, on their
/// own threads, so that no pipe fills up while the child runs.
pub fn run_within(cmd: &mut Command, stdin: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("{cmd:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    writer.join().unwrap();
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A file of `../shared/data` (the workspace's sibling), which must exist.
pub fn shared(path: &str) -> PathBuf {
    let p = workspace().join("../shared/data").join(path);
    assert!(
        p.exists(),
        "{} is missing: the data tests need ../shared beside the checkout",
        p.display()
    );
    p
}
