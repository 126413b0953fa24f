//! The researcher's commands: what they check before publishing, the job ids they accept, what they exit with.

use crate::harness::Pair;

const CODE: &str = "print(open('inputs/training-data.csv').read().count('subtilis'))\n";

fn script(pair: &Pair) -> String {
    let path = pair
        .dir
        .path()
        .join(format!("{}.py", crate::harness::unique("job")));
    std::fs::write(&path, CODE).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn submit_refuses_an_unknown_asset_or_runtime_before_publishing() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    let env = [("FERRY_AMQP_URL", alice.as_str())];
    let script = script(&pair);
    pair.wait_for("the low side to answer", || {
        pair.run_env(&["assets"], &env).status.success().then_some(())
    });

    let out = pair.run_env(
        &["submit", "--asset", "training-dta.csv", &script],
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown asset \"training-dta.csv\""), "{err}");
    assert!(err.contains("the catalog has training-data.csv"), "{err}");
    assert!(out.stdout.is_empty(), "no job id is printed");

    let out = pair.run_env(
        &[
            "submit",
            "--asset",
            "training-data.csv",
            "--runtime",
            "julia",
            &script,
        ],
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown runtime \"julia\""), "{err}");
    assert!(err.contains("offers python"), "{err}");

    // Nothing reached the low side: the researcher has no job at all.
    let jobs = pair.run_env(&["results", "--json"], &env);
    assert!(jobs.status.success());
    let v: serde_json::Value = serde_json::from_slice(&jobs.stdout).unwrap();
    assert_eq!(v, serde_json::json!([]), "{v}");
}
