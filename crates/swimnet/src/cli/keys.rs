//! `swimnet keys list|install|use|remove`: on the whole cluster by default
//! (`/v1/cluster-keys`), printing `N/M nodes responded` and each failure
//! as `serf keys` does; on the agent alone with `--local` (`/v1/keys`).

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use swimnet::api::KeysView;
use swimnet::api_server::parse_duration;
use swimnet::client::Client;
use swimnet::cluster_keys::KeyOpReport;
use swimnet::keyfile::parse_key;

/// Output format of `keys list`.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum KeysFormat {
    /// Readable text.
    Text,
    /// The API's JSON.
    Json,
}

/// Where a key command acts.
#[derive(Args, Clone, Copy)]
pub struct Scope {
    /// Act on this agent only (the cluster is not asked).
    #[arg(long)]
    local: bool,
    /// How long to wait for the members' answers (`5s`, `1500ms`; at most 60 s).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
}

/// `swimnet keys` subcommands.
#[derive(Subcommand)]
pub enum KeysCmd {
    /// List the keys: of every member with how many hold each (or, with
    /// `--local`, this agent's, primary first).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: KeysFormat,
        #[command(flatten)]
        scope: Scope,
    },
    /// Add a key (not primary) on every member.
    Install {
        /// Base64 key.
        key: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// Make a key primary on every member; refused unless every member
    /// answers and has it installed.
    Use {
        /// Base64 key.
        key: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// Remove a key (not the primary) from every member.
    Remove {
        /// Base64 key.
        key: String,
        #[command(flatten)]
        scope: Scope,
    },
}

/// Runs a `swimnet keys` subcommand against the agent at `client`.
pub fn run_keys(client: Client, op: KeysCmd) -> Result<(), String> {
    let (op_name, key, scope, verb) = match op {
        KeysCmd::List { format, scope } if scope.local => return list_local(&client, format),
        KeysCmd::List { format, scope } => return list_cluster(&client, format, scope),
        KeysCmd::Install { key, scope } => ("install", key, scope, "installed"),
        KeysCmd::Use { key, scope } => ("use", key, scope, "now primary"),
        KeysCmd::Remove { key, scope } => ("remove", key, scope, "removed"),
    };
    parse_key(&key)?;
    if scope.local {
        let _: KeysView = client.post(
            &format!("/v1/keys/{op_name}"),
            serde_json::json!({ "key": key }),
        )?;
        println!("key {verb}");
        return Ok(());
    }
    let report: KeyOpReport = client.post(
        &format!("/v1/cluster-keys/{op_name}"),
        serde_json::json!({ "key": key, "timeout_ms": timeout_ms(scope) }),
    )?;
    print_summary(&report);
    if report.all_ok() {
        println!("key {verb} on every member");
        Ok(())
    } else {
        Err(format!("key {op_name} failed on some members"))
    }
}

fn timeout_ms(scope: Scope) -> u128 {
    scope.timeout.as_millis()
}

fn list_local(client: &Client, format: KeysFormat) -> Result<(), String> {
    let v: KeysView = client.get("/v1/keys")?;
    if format == KeysFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serializable")
        );
        return Ok(());
    }
    for (i, k) in v.keys.iter().enumerate() {
        println!("{k}{}", if i == 0 { "  (primary)" } else { "" });
    }
    Ok(())
}

fn list_cluster(client: &Client, format: KeysFormat, scope: Scope) -> Result<(), String> {
    let path = format!("/v1/cluster-keys?timeout_ms={}", timeout_ms(scope));
    let report: KeyOpReport = client.get(&path)?;
    if format == KeysFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serializable")
        );
    } else {
        print_summary(&report);
        for (k, n) in &report.keys {
            println!("  {k}  [{n}/{}]", report.total);
        }
    }
    if report.all_ok() {
        Ok(())
    } else {
        Err("some members did not list their keys".into())
    }
}

/// `N/M nodes responded`, then one line per failure.
fn print_summary(report: &KeyOpReport) {
    println!("{}/{} nodes responded", report.responded, report.total);
    for line in report.failure_lines() {
        println!("  failed: {line}");
    }
}
