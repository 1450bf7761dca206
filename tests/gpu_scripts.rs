//! scripts/gpu-prep.sh copies the test executables that have GPU tests to the GPU machine; a
//! test file with a test ignored as needing a GPU but missing from its list would never run
//! there. This checks the list against the test files.

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn every_test_file_with_gpu_tests_goes_to_the_gpu_machine() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let prep = std::fs::read_to_string(root.join("scripts/gpu-prep.sh")).unwrap();
    let line = prep
        .lines()
        .find(|l| l.trim_start().starts_with("keep = {"))
        .expect("gpu-prep.sh has its keep = {...} list");
    let keep: BTreeSet<String> = line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    // Test targets: tests/NAME.rs, and tests/NAME/main.rs.
    let mut need = BTreeSet::new();
    for e in std::fs::read_dir(root.join("tests")).unwrap() {
        let p = e.unwrap().path();
        let (name, file) = if p.extension().is_some_and(|x| x == "rs") {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                p.clone(),
            )
        } else if p.join("main.rs").is_file() {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                p.join("main.rs"),
            )
        } else {
            continue;
        };
        // A target's GPU tests may sit in its modules (tests/NAME/*.rs).
        let mut text = std::fs::read_to_string(&file).unwrap();
        if file.ends_with("main.rs") {
            for m in std::fs::read_dir(p).unwrap() {
                text += &std::fs::read_to_string(m.unwrap().path()).unwrap_or_default();
            }
        }
        if text
            .lines()
            .any(|l| l.contains("#[ignore = \"needs") && l.contains("GPU"))
        {
            need.insert(name);
        }
    }
    assert!(need.len() >= 10, "found only {need:?}");
    let missing: Vec<_> = need.difference(&keep).collect();
    assert!(
        missing.is_empty(),
        "test files with GPU tests that scripts/gpu-prep.sh does not copy: {missing:?}"
    );
}
