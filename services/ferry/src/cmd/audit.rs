//! `ferry reviewer ...` (reviewers' keys) and `ferry audit ...` (the tamper-evident log).

use std::path::Path;

use anyhow::{Context as _, Result};
use ferry_core::decision::{ReviewerKey, ReviewerPublic};
use ferry_core::store::AuditEntry;
use ferry_review::escape;
use ferry_transfer::SideDir;

use crate::cli::{AuditAction, ReviewerAction};

/// Runs one `ferry reviewer` action.
pub fn reviewer(action: ReviewerAction) -> Result<()> {
    match action {
        ReviewerAction::Keygen { out } => {
            let key = ReviewerKey::generate();
            key.save(&out)?;
            eprintln!(
                "wrote your reviewer key to {} (mode 0600; keep it to yourself); register the line below with \
                 `ferry reviewer add --config CFG NAME LINE`",
                escape::line(&out.display().to_string())
            );
            println!("{}", key.public());
            Ok(())
        }
        ReviewerAction::Add {
            config,
            name,
            public,
        } => {
            ferry_core::names::reviewer(&name)?;
            let text = if Path::new(&public).is_file() {
                std::fs::read_to_string(&public).with_context(|| format!("reading {public}"))?
            } else {
                public.clone()
            };
            let key: ReviewerPublic = text.trim().parse()?;
            let mut side = SideDir::open(&config.config)?;
            let tx = side.store.begin(side.config.side)?;
            tx.add_reviewer(&name, &key, &super::review::owner_actor())?;
            tx.commit()?;
            println!(
                "reviewer {name} ({key}) registered on the {} side; decisions here now need a reviewer's --key, and the \
                 list crosses with the next export",
                side.config.side.as_str()
            );
            Ok(())
        }
        ReviewerAction::List { config, json } => {
            let side = SideDir::open(&config.config)?;
            let rows = side.store.reviewers()?;
            if json {
                let list: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "name": r.reviewer.name,
                            "public_key": r.reviewer.public_key.to_string(),
                            "added_at": ferry_core::time::rfc3339(r.added_at),
                            "removed_at": r.removed_at.map(ferry_core::time::rfc3339),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if rows.is_empty() {
                println!("no reviewers: decisions here are unsigned (`ferry reviewer add` registers one)");
            }
            for r in rows {
                println!(
                    "{:<20} {}{}",
                    r.reviewer.name,
                    r.reviewer.public_key,
                    if r.reviewer.removed {
                        "  (removed)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        ReviewerAction::Remove { config, name } => {
            let mut side = SideDir::open(&config.config)?;
            let tx = side.store.begin(side.config.side)?;
            tx.remove_reviewer(&name, &super::review::owner_actor())?;
            tx.commit()?;
            println!("reviewer {name} removed: their decisions no longer count");
            Ok(())
        }
    }
}

/// Runs one `ferry audit` action; `verify` exits 1 when it finds a problem.
pub fn audit(action: AuditAction) -> Result<i32> {
    match action {
        AuditAction::Verify { config, peer } => {
            let side = SideDir::open(&config.config)?;
            let mut problems = side.store.verify_audit()?;
            let entries = side.store.audit_entries(None)?.len();
            if let Some(peer) = &peer {
                let text = std::fs::read_to_string(peer)
                    .with_context(|| format!("reading {}", peer.display()))?;
                let log: Vec<AuditEntry> = serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{} is not an audit log written by `ferry audit export --json`",
                        peer.display()
                    )
                })?;
                let heads = side.store.peer_audit_heads()?;
                for p in ferry_core::store::check_heads(&log, &heads) {
                    problems.push(format!("peer: {p}"));
                }
                println!(
                    "peer log: {} entries checked against {} head(s) its bundles carried",
                    log.len(),
                    heads.len()
                );
            }
            if problems.is_empty() {
                println!(
                    "audit log of the {} side: {entries} entries, chain intact, audit trail and decisions agree",
                    side.config.side.as_str()
                );
                Ok(0)
            } else {
                for p in &problems {
                    println!("PROBLEM: {}", escape::line(p));
                }
                eprintln!(
                    "error: the audit log does not verify: {} problem(s)",
                    problems.len()
                );
                Ok(1)
            }
        }
        AuditAction::Export {
            config,
            json,
            since,
        } => {
            let since = since.as_deref().map(parse_time).transpose()?;
            let side = SideDir::open(&config.config)?;
            let entries = side.store.audit_entries(since)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
                return Ok(0);
            }
            for e in entries {
                println!(
                    "{:>6}  {}  {:<22} {:<24} {}{}",
                    e.seq,
                    ferry_core::time::rfc3339(e.at),
                    escape::line(&e.kind),
                    escape::line(&e.actor),
                    e.job_id
                        .as_deref()
                        .map(|j| format!("{} ", escape::line(j)))
                        .unwrap_or_default(),
                    escape::line(&e.detail)
                );
            }
            Ok(0)
        }
    }
}

/// RFC 3339 or unix seconds.
fn parse_time(text: &str) -> Result<i64> {
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp())
        .map_err(|_| anyhow::anyhow!("--since {text:?} is neither RFC 3339 nor unix seconds"))
}
