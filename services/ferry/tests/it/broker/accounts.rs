//! Researcher accounts through the broker's management HTTP API: `ferry researcher add|list|remove|password`
//! (finding 14 of issue 11). The low side's ferry.toml names the API (`[broker] management_url`), as for a broker
//! on another host; the tests log in over AMQP as the researchers to prove what the API made.

use std::process::Output;

use crate::harness::{
    rabbitmqctl, rabbitmqctl_lines, unique, BrokerNames, Pair, RESEARCHER_PASSWORD,
};

/// A pair whose low side names the management API explicitly.
fn pair() -> Pair {
    let pair = Pair::with_broker();
    let text = std::fs::read_to_string(&pair.low).unwrap();
    assert!(!text.contains("[broker]"), "{text}");
    std::fs::write(
        &pair.low,
        text.replacen(
            "\n[",
            "\n[broker]\nmanagement_url = \"http://127.0.0.1:15672\"\n\n[",
            1,
        ),
    )
    .unwrap();
    pair
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has_user(name: &str) -> bool {
    rabbitmqctl_lines(&["list_users"])
        .iter()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn has_queue(vhost: &str, queue: &str) -> bool {
    rabbitmqctl_lines(&["list_queues", "-p", vhost, "name"])
        .iter()
        .any(|l| l.trim() == queue)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Logs in at `url`; Err is the broker's refusal.
fn login(url: &str) -> Result<(), ferry_broker::BrokerError> {
    runtime().block_on(async {
        let session = ferry_broker::Session::connect(url).await?;
        session.close().await;
        Ok(())
    })
}

/// Logs in at `url` and starts consuming `queue`.
fn consume(url: &str, queue: &str) -> Result<(), ferry_broker::BrokerError> {
    runtime().block_on(async {
        let session = ferry_broker::Session::connect(url).await?;
        let sub = session.consume(queue, 1).await.map(drop);
        session.close().await;
        sub
    })
}

fn url_with_password(pair: &Pair, name: &str, password: &str) -> String {
    format!("amqp://{name}:{password}@127.0.0.1:5672/{}", pair.low_vhost)
}

#[test]
fn a_researcher_added_through_the_management_api_logs_in_and_cannot_read_another_researchers_queue()
{
    let mut pair = pair();
    let (alice, bob) = (unique("alice-"), unique("bob-"));
    for name in [&alice, &bob] {
        let out = pair.researcher_add(name, RESEARCHER_PASSWORD);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("read ferry.results.{name}")),
            "{}",
            stdout(&out)
        );
    }
    // Exactly today's confinement.
    let perms = rabbitmqctl_lines(&["list_permissions", "-p", &pair.low_vhost]);
    let line: Vec<String> = vec![
        alice.clone(),
        "^$".into(),
        "^ferry\\.requests$".into(),
        format!("^ferry\\.results\\.{alice}$"),
    ];
    assert!(
        perms
            .iter()
            .any(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>() == line),
        "{perms:?}"
    );
    let alice_url = pair.researcher_url(&alice);
    consume(&alice_url, &format!("ferry.results.{alice}")).expect("alice reads her own queue");
    let err = consume(&alice_url, &format!("ferry.results.{bob}")).unwrap_err();
    assert!(err.is_access_refused(), "{err}");
    let err = consume(&alice_url, ferry_core::wire::REQUESTS_QUEUE).unwrap_err();
    assert!(err.is_access_refused(), "{err}");
}

#[test]
fn a_researcher_add_that_fails_part_way_undoes_what_it_made_and_can_be_retried() {
    let mut pair = pair();
    let name = unique("dora-");
    let queue = format!("ferry.results.{name}");
    for point in [
        "researcher-add:after-queue",
        "researcher-add:after-user",
        "researcher-add:after-permissions",
    ] {
        let out =
            pair.researcher_add_env(&name, RESEARCHER_PASSWORD, &[("FERRY_FAILPOINT", point)]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{point}: {err}");
        assert!(err.contains(&format!("failpoint {point}")), "{err}");
        assert!(err.contains("what was made is undone"), "{err}");
        assert!(!err.contains(RESEARCHER_PASSWORD), "{err}");
        assert!(!has_user(&name), "{point}: the account was left behind");
        assert!(
            !has_queue(&pair.low_vhost, &queue),
            "{point}: the queue was left behind"
        );
    }
    let out = pair.researcher_add(&name, RESEARCHER_PASSWORD);
    assert!(out.status.success(), "{}", stderr(&out));
    login(&pair.researcher_url(&name)).expect("the retried account logs in");
    assert!(has_queue(&pair.low_vhost, &queue));
}

#[test]
fn re_adding_an_existing_researcher_is_refused_and_changes_nothing() {
    let mut pair = pair();
    let name = unique("erin-");
    let out = pair.researcher_add(&name, RESEARCHER_PASSWORD);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = pair.researcher_add(&name, "another-password");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("exists already"), "{err}");
    assert!(err.contains("ferry researcher password"), "{err}");
    login(&pair.researcher_url(&name)).expect("the first password still works");
    assert!(login(&url_with_password(&pair, &name, "another-password")).is_err());
}

#[test]
fn researcher_list_shows_the_researchers_and_no_other_account() {
    let mut pair = pair();
    let (a, b) = (unique("fay-"), unique("gil-"));
    // An account with other permissions on the vhost (the service account's, say) is no researcher.
    let other = unique("svc-");
    let _cleanup = BrokerNames {
        vhosts: vec![],
        users: vec![other.clone()],
    };
    rabbitmqctl(&["add_user", &other, "some-password"]);
    rabbitmqctl(&[
        "set_permissions",
        "-p",
        &pair.low_vhost,
        &other,
        ".*",
        ".*",
        ".*",
    ]);
    let low = pair.low_s().to_string();
    let empty = pair.ok(&["researcher", "list", "--config", &low]);
    assert!(empty.contains("no researchers"), "{empty}");
    for name in [&b, &a] {
        let out = pair.researcher_add(name, RESEARCHER_PASSWORD);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let json: serde_json::Value =
        serde_json::from_str(&pair.ok(&["researcher", "list", "--config", &low, "--json"]))
            .unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [a.as_str(), b.as_str()], "{json}");
    assert_eq!(json[0]["results_queue"], format!("ferry.results.{a}"));
    assert_eq!(json[0]["queue_exists"], true);
    assert_eq!(json[0]["messages_waiting"], 0);
    let text = pair.ok(&["researcher", "list", "--config", &low]);
    assert!(text.contains(&a) && text.contains(&b), "{text}");
    assert!(!text.contains(&other) && !text.contains("guest"), "{text}");
}

#[test]
fn a_removed_researcher_cannot_log_in_and_their_queue_is_gone() {
    let mut pair = pair();
    let name = unique("hal-");
    let out = pair.researcher_add(&name, RESEARCHER_PASSWORD);
    assert!(out.status.success(), "{}", stderr(&out));
    login(&pair.researcher_url(&name)).expect("logs in before");
    let low = pair.low_s().to_string();
    let out = pair.ok(&["researcher", "remove", "--config", &low, &name]);
    assert!(out.contains(&format!("removed researcher {name}")), "{out}");
    assert!(out.contains("jobs stay"), "{out}");
    let err = login(&pair.researcher_url(&name)).unwrap_err();
    assert!(err.is_access_refused(), "{err}");
    assert!(!has_queue(
        &pair.low_vhost,
        &format!("ferry.results.{name}")
    ));
    let (_, err) = pair.fails(1, &["researcher", "remove", "--config", &low, &name]);
    assert!(
        err.contains(&format!("there is no researcher {name}")),
        "{err}"
    );
    let listed = pair.ok(&["researcher", "list", "--config", &low]);
    assert!(!listed.contains(&name), "{listed}");

    // What an add whose undo failed leaves (a user without tags or permissions) is removed too.
    let half = unique("half-");
    let _half = BrokerNames {
        vhosts: vec![],
        users: vec![half.clone()],
    };
    rabbitmqctl(&["add_user", &half, "some-password"]);
    let out = pair.ok(&["researcher", "remove", "--config", &low, &half]);
    assert!(out.contains(&format!("removed researcher {half}")), "{out}");
    assert!(!has_user(&half));

    // A user that is not a researcher is never removed.
    let other = unique("svc-");
    let _cleanup = BrokerNames {
        vhosts: vec![],
        users: vec![other.clone()],
    };
    rabbitmqctl(&["add_user", &other, "some-password"]);
    rabbitmqctl(&[
        "set_permissions",
        "-p",
        &pair.low_vhost,
        &other,
        ".*",
        ".*",
        ".*",
    ]);
    let (_, err) = pair.fails(1, &["researcher", "remove", "--config", &low, &other]);
    assert!(err.contains("is not a researcher"), "{err}");
    assert!(has_user(&other));
}

/// Runs ferry with `args` and `input` while researcher `name` is logged in; returns whether their connection
/// was still open once the command had ended (waiting up to the harness's patience for the broker to close it).
fn open_connection_survives(pair: &Pair, name: &str, args: &[&str], input: &str) -> bool {
    runtime().block_on(async {
        let session = ferry_broker::Session::connect(&pair.researcher_url(name))
            .await
            .expect("logs in");
        assert!(session.is_open());
        let out = pair.run_stdin(args, input, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let start = std::time::Instant::now();
        while session.is_open() {
            if start.elapsed() > crate::harness::patience() {
                session.close().await;
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    })
}

#[test]
fn removing_or_re_passwording_a_researcher_closes_their_open_connections() {
    let mut pair = pair();
    let low = pair.low_s().to_string();
    let name = unique("jay-");
    let out = pair.researcher_add(&name, RESEARCHER_PASSWORD);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!open_connection_survives(
        &pair,
        &name,
        &["researcher", "password", "--config", &low, &name],
        &format!("{RESEARCHER_PASSWORD}\n"),
    ));
    assert!(!open_connection_survives(
        &pair,
        &name,
        &["researcher", "remove", "--config", &low, &name],
        "",
    ));
}

#[test]
fn a_new_password_replaces_the_old_one() {
    let mut pair = pair();
    let name = unique("ivy-");
    let out = pair.researcher_add(&name, RESEARCHER_PASSWORD);
    assert!(out.status.success(), "{}", stderr(&out));
    let low = pair.low_s().to_string();
    let new_password = "a-brand-new-password";
    let out = pair.run_stdin(
        &["researcher", "password", "--config", &low, &name],
        &format!("{new_password}\n"),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains(new_password) && !stderr(&out).contains(new_password));
    let err = login(&pair.researcher_url(&name)).unwrap_err();
    assert!(err.is_access_refused(), "{err}");
    login(&url_with_password(&pair, &name, new_password)).expect("the new password logs in");
    // Still confined after the change.
    let err = consume(
        &url_with_password(&pair, &name, new_password),
        ferry_core::wire::REQUESTS_QUEUE,
    )
    .unwrap_err();
    assert!(err.is_access_refused(), "{err}");

    let out = pair.run_stdin(
        &[
            "researcher",
            "password",
            "--config",
            &low,
            &unique("nobody-"),
        ],
        &format!("{new_password}\n"),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("there is no researcher"),
        "{}",
        stderr(&out)
    );
}
