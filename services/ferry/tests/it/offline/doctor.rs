//! `ferry doctor` names each broken part of a side, with a hint, and exits 1.

use std::os::unix::fs::PermissionsExt;

use crate::harness::Pair;

/// The doctor's report on `config`, which must find problems (exit 1).
fn problems(pair: &Pair, config: &std::path::Path) -> String {
    let (out, err) = pair.fails(1, &["doctor", "--config", config.to_str().unwrap()]);
    assert!(err.contains("problem(s) found"), "{err}");
    out
}

#[test]
fn doctor_names_each_broken_part_of_a_side_with_a_hint() {
    let pair = Pair::create();
    let high = pair.side_dir(&pair.high);
    // A fresh side, as init made it: its keys are private, its peer pinned.
    let out = problems(&pair, &pair.high);
    assert!(out.contains("ok       keys: this side's key is"), "{out}");
    assert!(out.contains("ok       peer: the low side's key"), "{out}");
    assert!(out.contains("ok       directories"), "{out}");
    assert!(
        out.contains("ok       sandbox: runtime python starts in the sandbox"),
        "{out}"
    );
    // A root worker on this host gives each job a cgroup; anyone else is told why not and how.
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if root {
        assert!(
            out.contains("ok       job cgroups: each job runs in a cgroup of its own"),
            "{out}"
        );
    } else {
        assert!(
            out.contains("note     job cgroups: jobs run without"),
            "{out}"
        );
    }
    // No broker here (these tests run without a network): named as such.
    assert!(out.contains("PROBLEM  broker:"), "{out}");
    // Break it four ways.
    let key = std::fs::read_dir(high.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_file())
        .expect("a key file");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(high.join("trust/peer.txt")).unwrap();
    std::fs::remove_dir(high.join("outbox")).unwrap();
    pair.configure(
        &pair.high,
        &[(
            "program = \"/usr/bin/python3\"",
            "program = \"/nonexistent/python3\"",
        )],
    );
    let out = problems(&pair, &pair.high);
    for (line, hint) in [
        ("PROBLEM  keys: readable by others:", "chmod 600"),
        ("PROBLEM  peer:", "ferry trust add"),
        ("PROBLEM  directories: missing:", "mkdir"),
        (
            "PROBLEM  runtimes: runtime python: /nonexistent/python3 is not an executable file",
            "runtimes.python.program",
        ),
    ] {
        let at = out
            .find(line)
            .unwrap_or_else(|| panic!("no {line:?} in\n{out}"));
        let next = out[at..].lines().nth(1).unwrap_or_default();
        assert!(
            next.contains("hint:") && next.contains(hint),
            "{line}: {next}\n{out}"
        );
    }
    // A configuration that does not load stops the doctor at once.
    std::fs::write(&pair.high, "side = \"sideways\"\n").unwrap();
    let out = problems(&pair, &pair.high);
    assert!(out.contains("PROBLEM  configuration:"), "{out}");
}
