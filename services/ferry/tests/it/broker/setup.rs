//! Setting a side up on the broker: `ferry init --provision` and `ferry researcher add`.

use crate::harness::{rabbitmqctl_lines, unique, BrokerNames, Pair, RESEARCHER_PASSWORD};

fn has_user(name: &str) -> bool {
    rabbitmqctl_lines(&["list_users"])
        .iter()
        .any(|l| l.split_whitespace().next() == Some(name))
}

#[test]
fn init_provision_makes_the_vhost_account_and_permissions_and_can_run_again() {
    let tag = unique("prov");
    let (vhost, user) = (format!("ferry-{tag}-low"), format!("ferry-{tag}-low"));
    let _cleanup = BrokerNames {
        vhosts: vec![vhost.clone()],
        users: vec![user.clone()],
    };
    let mut pair = Pair::create();
    let dir = pair.dir.path().join("provisioned");
    let url = format!("amqp://{user}:service-password@127.0.0.1:5672/{vhost}");
    let dir_s = dir.to_str().unwrap();
    let first = pair.ok(&[
        "init",
        "--side",
        "low",
        "--dir",
        dir_s,
        "--amqp",
        &url,
        "--provision",
    ]);
    assert!(first.contains(&format!("vhost {vhost} created")), "{first}");
    assert!(
        first.contains(&format!("account {user} created")),
        "{first}"
    );
    assert!(first.contains("next steps:"), "{first}");
    assert!(!first.contains("service-password"), "{first}");
    assert!(rabbitmqctl_lines(&["list_vhosts"]).contains(&vhost));
    let perms = rabbitmqctl_lines(&["list_permissions", "-p", &vhost]);
    assert!(
        perms
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [&user, ".*", ".*", ".*"]),
        "{perms:?}"
    );

    // The low side's account manages researchers through the management API, which needs this tag.
    assert!(
        rabbitmqctl_lines(&["list_users"])
            .iter()
            .any(|l| l.split_whitespace().next() == Some(user.as_str())
                && l.contains("administrator")),
        "{user} has no administrator tag"
    );
    assert!(first.contains("has the administrator tag"), "{first}");

    // Again, on the side now made: nothing new, nothing broken.
    let again = pair.ok(&["init", "--side", "low", "--dir", dir_s, "--provision"]);
    assert!(
        again.contains(&format!("vhost {vhost} was there")),
        "{again}"
    );
    assert!(
        again.contains(&format!("account {user} was there")),
        "{again}"
    );
    assert!(
        again.contains(&format!("{user} had the administrator tag")),
        "{again}"
    );
    // An existing account is not given another password behind its owner's back.
    let other = pair.dir.path().join("other");
    let wrong = url.replace("service-password", "another-password");
    let (_, err) = pair.fails(
        1,
        &[
            "init",
            "--side",
            "low",
            "--dir",
            other.to_str().unwrap(),
            "--amqp",
            &wrong,
            "--provision",
        ],
    );
    assert!(err.contains("refuses the URL's password"), "{err}");
    assert!(
        !other.join("ferry.toml").exists(),
        "nothing written on failure"
    );

    // The account works: researcher add connects with it and declares the topology.
    pair.low = dir.join("ferry.toml");
    let name = unique("r-");
    let out = pair.researcher_add(&name, RESEARCHER_PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
