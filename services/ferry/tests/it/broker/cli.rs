//! What the command line says when the broker answers but refuses.

use crate::harness::Pair;

#[test]
fn a_login_the_broker_refuses_gets_a_hint() {
    let pair = Pair::create();
    let out = pair.run_env(
        &["assets"],
        &[("FERRY_AMQP_URL", "amqp://nobody:wrong@127.0.0.1:5672/%2f")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("hint: the broker refused this account"),
        "{err}"
    );
    assert!(
        err.contains("nobody:***@"),
        "the password is not printed: {err}"
    );
}
