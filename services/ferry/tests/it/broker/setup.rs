//! Setting a side up on the broker: `ferry init --provision` and `ferry researcher add`.

use crate::harness::{rabbitmqctl_lines, unique, Pair, RESEARCHER_PASSWORD};

fn has_user(name: &str) -> bool {
    rabbitmqctl_lines(&["list_users"])
        .iter()
        .any(|l| l.split_whitespace().next() == Some(name))
}

#[test]
fn researcher_add_before_the_vhost_exists_leaves_nothing_and_can_be_retried() {
    let mut pair = Pair::create();
    let name = unique("carol-");
    let out = pair.researcher_add(&name, RESEARCHER_PASSWORD);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("the broker has no vhost {}", pair.low_vhost)),
        "{err}"
    );
    assert!(err.contains("ferry init --provision"), "{err}");
    assert!(!has_user(&name), "a half-made account was left behind");

    pair.broker();
    let out = pair.researcher_add(&name, RESEARCHER_PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(has_user(&name));
}
