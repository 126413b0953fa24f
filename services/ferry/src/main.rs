//! `ferry`: the command line of both sides, a thin shell over the libraries.
//!
//! `main` parses arguments ([`cli`]), sets up logging and hands over to one module per group of commands under
//! [`cmd`], which print for people (or `--json`) and leave the work to `ferry-transfer` (the gap protocol),
//! `ferry-serve` (the long-running services) and `ferry-broker` (the researcher's calls). An error prints as one
//! `error:` line and, when its typed cause has a known fix, one `hint:` line ([`hint`]).
//!
//! Exit codes: 0 success; 1 failure (the message names what is wrong); 2 usage error; for `ferry run --mock`, the
//! job's own exit code when it ran; for `ferry results JOB`, how the job stands (docs/contract.md).

mod cli;
mod cmd;
mod hint;
mod progress;

use clap::Parser;

use cli::{Cli, Command};
use cmd::{accounts, audit, console, doctor, researcher, review, runtime, serve, setup, transfer};

fn main() {
    reset_sigpipe();
    let cli = Cli::parse();
    progress::set_quiet(cli.quiet);
    // Services log their work; one-shot commands speak through their output and only log warnings.
    let serving = matches!(
        cli.command,
        Command::Serve { .. } | Command::Console { .. } | Command::Worker { .. }
    );
    init_tracing(if serving { "info" } else { "warn" });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("error: {}", error_line(&err));
            if let Some(hint) = hint::hint_for(&err) {
                eprintln!("hint: {hint}");
            }
            std::process::exit(1);
        }
    }
}

/// Rust ignores SIGPIPE, so `ferry review list | head -1` would panic on a closed pipe; restoring the default
/// makes such a command end quietly, as other Unix tools do.
#[allow(unsafe_code)]
fn reset_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The error and its causes on one line, each said once: a cause whose text its parent already quotes (as
/// `BrokerError::Connect` quotes lapin's error) is not repeated.
fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Logs go to stderr, coloured only when it is a terminal (a log file gets no escape codes). The AMQP library's
/// own log lines are off: ferry-broker turns its errors into typed ones, which are printed or logged once.
fn init_tracing(default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default_level},lapin=off,amq_protocol=off"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

async fn dispatch(command: Command) -> anyhow::Result<i32> {
    use cli::*;
    match command {
        Command::Init {
            side,
            dir,
            amqp,
            provision,
            assets,
        } => {
            let side = match side {
                InitSide::Worker => {
                    return setup::init_worker(&dir, amqp.as_deref(), assets.as_deref(), provision)
                        .map(|_| 0)
                }
                InitSide::Low => ferry_core::Side::Low,
                InitSide::High => ferry_core::Side::High,
            };
            if assets.is_some() {
                anyhow::bail!("--assets is for --side worker only: a high side registers assets with `ferry asset add`");
            }
            setup::init(side, &dir, amqp.as_deref(), provision).map(|_| 0)
        }
        Command::Worker { config, metrics } => serve::worker_cmd(&config.config, metrics.as_deref())
            .await
            .map(|_| 0),
        Command::Trust {
            action: TrustAction::Add {
                config,
                peer_public_txt,
            },
        } => setup::trust_add(&config.config, &peer_public_txt).map(|_| 0),
        Command::Researcher { action } => match action {
            ResearcherAction::Add { config, name } => {
                accounts::add(&config.config, &name).await.map(|_| 0)
            }
            ResearcherAction::List { config, json } => {
                accounts::list(&config.config, json).map(|_| 0)
            }
            ResearcherAction::Remove { config, name } => {
                accounts::remove(&config.config, &name).map(|_| 0)
            }
            ResearcherAction::Password { config, name } => {
                accounts::password(&config.config, &name).await.map(|_| 0)
            }
        },
        Command::Asset { action } => match action {
            AssetAction::Add {
                config,
                name,
                private,
                mock,
                description,
                canary,
            } => setup::asset_add(&config.config, &name, &private, &mock, &description, &canary)
                .map(|_| 0),
            AssetAction::List { config, json } => setup::asset_list(&config.config, json).map(|_| 0),
            AssetAction::Remove { config, name } => {
                setup::asset_remove(&config.config, &name).map(|_| 0)
            }
        },
        Command::Review { action } => review::run(action).map(|_| 0),
        Command::Reviewer { action } => audit::reviewer(action).map(|_| 0),
        Command::Doctor { config } => doctor::doctor(&config.config).await,
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "ferry", &mut std::io::stdout());
            Ok(0)
        }
        Command::Manpage => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            Ok(0)
        }
        Command::Audit { action } => audit::audit(action),
        Command::Export {
            config,
            resend,
            max_part_size,
            metrics_file,
        } => transfer::export_cmd(
            &config.config,
            resend,
            max_part_size,
            metrics_file.as_deref(),
        )
        .map(|_| 0),
        Command::Keys {
            action: KeysAction::Rotate { config },
        } => transfer::rotate_cmd(&config.config).map(|_| 0),
        Command::Media { action } => match action {
            MediaAction::Write { config, dir } => {
                transfer::media_write_cmd(&config.config, &dir).map(|_| 0)
            }
            MediaAction::Read { config, dir } => transfer::media_read_cmd(&config.config, &dir),
        },
        Command::Import {
            config,
            files,
            accept_gap,
        } => transfer::import_cmd(&config.config, &files, accept_gap),
        Command::Serve { config, metrics } => serve::serve_cmd(&config.config, metrics.as_deref())
            .await
            .map(|_| 0),
        Command::Console {
            config,
            key,
            listen,
        } => console::console_cmd(&config.config, &key, listen)
            .await
            .map(|_| 0),
        Command::Bundle { action } => match action {
            BundleAction::Inspect { file, json } => transfer::inspect_cmd(&file, json).map(|_| 0),
            BundleAction::Verify { config, file } => {
                transfer::verify_cmd(&config.config, &file).map(|_| 0)
            }
        },
        Command::Status {
            job,
            config,
            amqp,
            json,
        } => match (job, config, amqp) {
            (Some(job), _, Some(amqp)) => researcher::status(&amqp, &job, json).await.map(|_| 0),
            (None, Some(config), _) => review::side_status(&config, json).map(|_| 0),
            (Some(_), _, None) => anyhow::bail!(
                "`ferry status JOB` asks the low side over your broker account: give --amqp URL or set FERRY_AMQP_URL"
            ),
            (None, None, _) => anyhow::bail!(
                "`ferry status` needs a JOB (researchers, with --amqp) or --config FILE (owners and ops)"
            ),
        },
        Command::Assets { amqp, json } => researcher::assets(&amqp.amqp, json).await.map(|_| 0),
        Command::Mock {
            action: MockAction::Fetch { name, out, amqp },
        } => researcher::mock_fetch(&amqp.amqp, &name, &out).await.map(|_| 0),
        Command::Run {
            mock: _,
            assets,
            runtime,
            python,
            out,
            no_sandbox,
            amqp,
            script,
        } => {
            researcher::run_mock(
                &amqp.amqp,
                &assets,
                &runtime,
                python.as_deref(),
                &script,
                &out,
                no_sandbox,
            )
            .await
        }
        Command::Runtimes { amqp, json } => runtime::runtimes(&amqp.amqp, json).await.map(|_| 0),
        Command::Runtime { action } => match action {
            RuntimeAction::Add {
                config,
                name,
                python,
                description,
                devices,
            } => runtime::add(
                &config.config,
                &runtime::Registration {
                    name: &name,
                    python: &python,
                    description: &description,
                    devices: &devices,
                },
            )
            .map(|_| 0),
            RuntimeAction::List { config, json } => runtime::list(&config.config, json).map(|_| 0),
            RuntimeAction::Remove { config, name } => {
                runtime::remove(&config.config, &name).map(|_| 0)
            }
            RuntimeAction::Install { name, dir, amqp } => {
                runtime::install(&amqp.amqp, &name, dir.as_deref())
                    .await
                    .map(|_| 0)
            }
        },
        Command::Submit {
            assets,
            title,
            description,
            runtime,
            revises,
            memory_mb,
            wall_secs,
            cpus,
            amqp,
            script,
        } => researcher::submit(
            &amqp.amqp,
            researcher::Submission {
                assets: &assets,
                title: &title,
                description: &description,
                runtime: &runtime,
                revises: revises.as_deref(),
                resources: ferry_core::wire::Resources {
                    memory_mb,
                    wall_secs,
                    cpus,
                },
                script: &script,
            },
        )
        .await
        .map(|_| 0),
        Command::Results {
            job,
            wait,
            timeout,
            out,
            json,
            amqp,
        } => researcher::results(&amqp.amqp, job.as_deref(), wait, timeout, &out, json).await,
        Command::Cancel { job, amqp } => researcher::cancel(&amqp.amqp, &job).await.map(|_| 0),
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("access refused")
        }
    }
    impl std::error::Error for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "connecting: {}", self.0)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_line_says_each_cause_once() {
        let err = anyhow::Error::new(Outer(Inner)).context("listing the assets");
        assert_eq!(
            super::error_line(&err),
            "listing the assets: connecting: access refused"
        );
        assert_eq!(format!("{err:#}").matches("access refused").count(), 2);
    }
}
