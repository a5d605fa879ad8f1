//! `swimnet agent --config PATH`: a TOML file whose keys are the agent's
//! flags, and `SWIMNET_<FLAG>` environment variables for every agent flag.
//!
//! Precedence, per setting: command-line flag > environment variable >
//! config file > built-in default. It is built on clap itself: every
//! agent flag without an explicit `env` gets `SWIMNET_<FLAG>` (`--api-host`
//! reads `SWIMNET_API_HOST`), and each key of the file becomes its flag's
//! default value, which clap uses only when neither the flag nor its
//! variable is given. So every agent flag, present or added later, has a
//! key and a variable with no list to keep in step, and file values go
//! through the same parser as the flag.
//!
//! A key is the flag's long name with `_` for `-` (`api_idle_timeout`,
//! `retry_join`, `tag`); a repeatable flag takes a list (`join =
//! ["a:7946", "b:7946"]`), the others one string, number or boolean. An
//! unknown key (the equivalent of serde's `deny_unknown_fields`), a wrong
//! type, or a value the flag would refuse is a one-line error naming the
//! file and the key.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::ArgAction;

/// The subcommand the config file and the variables apply to.
const AGENT: &str = "agent";
/// The flag naming the config file (and `SWIMNET_CONFIG`).
const CONFIG_FLAG: &str = "config";
/// Largest config file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why the command line could not be parsed.
#[derive(Debug)]
pub enum ParseError {
    /// clap's own error (or help and version output): print it with its
    /// `exit()`.
    Clap(clap::Error),
    /// The config file is unreadable or wrong, or a flag's value is: one
    /// line.
    Config(String),
}

/// The environment variable of an agent flag: `SWIMNET_` and the long
/// name in upper case with `_` for `-`.
pub fn env_name(long: &str) -> String {
    format!("SWIMNET_{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// Gives every flag of the `agent` subcommand without an explicit `env`
/// its `SWIMNET_<FLAG>` variable.
fn with_env(cmd: clap::Command) -> clap::Command {
    cmd.mut_subcommand(AGENT, |mut sub| {
        let plain: Vec<(clap::Id, String)> = sub
            .get_arguments()
            .filter(|a| a.get_env().is_none())
            .filter_map(|a| Some((a.get_id().clone(), a.get_long()?.to_string())))
            .collect();
        for (id, long) in plain {
            sub = sub.mut_arg(id, |a| a.env(env_name(&long)));
        }
        sub
    })
}

/// Parses `args` (the program name first) into `C`, with the environment
/// variables and, when `agent --config PATH` (or `SWIMNET_CONFIG`) names
/// one, the config file applied under the flags.
pub fn parse_args<C, I>(args: I) -> Result<C, ParseError>
where
    C: clap::Parser,
    I: IntoIterator<Item = OsString>,
{
    let args: Vec<OsString> = args.into_iter().collect();
    let mut cmd = with_env(C::command());
    if let Some(path) = config_path(&cmd, &args) {
        let table = read_file(&path).map_err(ParseError::Config)?;
        check_secret_mode(&path, &table).map_err(ParseError::Config)?;
        cmd = apply_file(cmd, &path, &table).map_err(ParseError::Config)?;
    }
    let matches = cmd.try_get_matches_from(args).map_err(one_line)?;
    C::from_arg_matches(&matches).map_err(one_line)
}

/// A bad value (from a flag or a variable) as one line, without clap's
/// usage trailer; other clap errors and help output as they are.
fn one_line(e: clap::Error) -> ParseError {
    use clap::error::ErrorKind;
    if !matches!(
        e.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return ParseError::Clap(e);
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    ParseError::Config(first.trim_start_matches("error: ").to_string())
}

/// The config file named on the agent's command line or in its variable,
/// found by a lenient first parse (errors are left to the real one).
fn config_path(cmd: &clap::Command, args: &[OsString]) -> Option<PathBuf> {
    let m = cmd
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()?;
    let (name, sub) = m.subcommand()?;
    if name != AGENT {
        return None;
    }
    sub.try_get_one::<PathBuf>(CONFIG_FLAG)
        .ok()
        .flatten()
        .cloned()
}

/// Reads and parses the file, at most [`MAX_FILE_BYTES`].
fn read_file(path: &Path) -> Result<toml::Table, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("config file {shown}: {e}"))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("config file {shown}: {e}"))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "config file {shown}: over {MAX_FILE_BYTES} bytes; is it the right file?"
        ));
    }
    text.parse::<toml::Table>().map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let at = line.map(|l| format!(" line {l}:")).unwrap_or_default();
        format!(
            "config file {shown}:{at} {}",
            e.message().replace('\n', " ")
        )
    })
}

/// Refuses a file holding the key itself (`encrypt`) that group or others
/// may read, as the key files are refused (`crate::keyfile`).
fn check_secret_mode(path: &Path, table: &toml::Table) -> Result<(), String> {
    if !table.contains_key("encrypt") {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display();
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("config file {shown}: {e}"))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "config file {shown}: key `encrypt`: the file is accessible by group or others (mode {mode:04o}): run `chmod 600 {shown}` or give the key in encrypt_file"
            ));
        }
    }
    Ok(())
}

/// The flag's values from one TOML value: a scalar gives one, a list one
/// per element (only for repeatable flags).
fn values_of(value: &toml::Value, repeatable: bool) -> Result<Vec<String>, String> {
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "expected a string, number or boolean, not a {}",
            other.type_str()
        )),
    };
    match value {
        toml::Value::Array(items) if repeatable => items.iter().map(scalar).collect(),
        toml::Value::Array(_) => Err("takes one value, not a list".into()),
        v => Ok(vec![scalar(v)?]),
    }
}

/// Makes each key of the file its flag's default, after checking the key
/// exists and each value passes the flag's own parser.
fn apply_file(
    cmd: clap::Command,
    path: &Path,
    table: &toml::Table,
) -> Result<clap::Command, String> {
    let shown = path.display();
    let agent = cmd
        .find_subcommand(AGENT)
        .expect("the CLI has an agent subcommand")
        .clone();
    let mut defaults: Vec<(clap::Id, Vec<String>)> = Vec::new();
    for (key, value) in table {
        let err = |msg: String| format!("config file {shown}: key `{key}`: {msg}");
        let long = key.replace('_', "-");
        let arg = agent
            .get_arguments()
            .find(|a| !key.contains('-') && a.get_long() == Some(long.as_str()))
            .filter(|a| a.get_id().as_str() != CONFIG_FLAG);
        let Some(arg) = arg else {
            let hint = if key.contains('-') {
                format!(": write it `{}`", key.replace('-', "_"))
            } else {
                String::new()
            };
            return Err(err(format!(
                "unknown key{hint} (the keys are the agent's flags, see `swimnet agent --help`)"
            )));
        };
        let repeatable = matches!(arg.get_action(), ArgAction::Append);
        let values = values_of(value, repeatable).map_err(err)?;
        for v in &values {
            check_value(arg, v).map_err(err)?;
        }
        defaults.push((arg.get_id().clone(), values));
    }
    Ok(cmd.mut_subcommand(AGENT, |mut sub| {
        for (id, values) in defaults {
            sub = sub.mut_arg(id, |a| a.required(false).default_values(values));
        }
        sub
    }))
}

/// Runs `value` through the flag's own value parser (on a one-flag
/// command, so neither the environment nor other flags interfere); the
/// error is one line.
fn check_value(arg: &clap::Arg, value: &str) -> Result<(), String> {
    use clap::error::{ContextKind, ContextValue};
    use std::error::Error as _;
    let probe = clap::Command::new("config").no_binary_name(true).arg(
        clap::Arg::new("value")
            .long("value")
            .num_args(1)
            .action(ArgAction::Set)
            .allow_hyphen_values(true)
            .value_parser(arg.get_value_parser().clone()),
    );
    let e = match probe.try_get_matches_from(["--value", value]) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let reason = match (e.source(), e.get(ContextKind::ValidValue)) {
        (Some(inner), _) => inner.to_string(),
        (None, Some(ContextValue::Strings(valid))) => {
            format!("expected one of {}", valid.join(", "))
        }
        _ => "not accepted by the flag".to_string(),
    };
    Err(format!(
        "invalid value {value:?}: {}",
        reason.replace('\n', " ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentArgs, Cli, Cmd};
    use clap::CommandFactory;
    use std::time::Duration;

    /// Writes `text` to a file of this test's own.
    fn file(test: &str, text: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("swimnet-config-{}-{test}.toml", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    fn parse(args: &[&str]) -> Result<AgentArgs, ParseError> {
        let argv = std::iter::once("swimnet")
            .chain(args.iter().copied())
            .map(OsString::from);
        match parse_args::<Cli, _>(argv)?.command {
            Cmd::Agent(a) => Ok(a),
            _ => unreachable!("an agent command"),
        }
    }

    fn config_error(args: &[&str]) -> String {
        match parse(args) {
            Err(ParseError::Config(e)) => e,
            Err(ParseError::Clap(e)) => panic!("clap error, not a config error: {e}"),
            Ok(_) => panic!("accepted: {args:?}"),
        }
    }

    #[test]
    fn every_agent_flag_has_a_key_and_a_variable() {
        let cmd = with_env(Cli::command());
        let agent = cmd.find_subcommand(AGENT).unwrap();
        for a in agent.get_arguments() {
            let long = a.get_long().expect("agent flags are long flags");
            assert!(a.get_env().is_some(), "--{long} has no variable");
            if long != CONFIG_FLAG {
                let key = long.replace('-', "_");
                let text = format!("{key} = \"\"\n");
                let table: toml::Table = text.parse().unwrap();
                let e = apply_file(cmd.clone(), Path::new("f"), &table).err();
                assert!(
                    !e.as_deref().unwrap_or("").contains("unknown key"),
                    "--{long}: {e:?}"
                );
            }
        }
        assert_eq!(env_name("api-idle-timeout"), "SWIMNET_API_IDLE_TIMEOUT");
    }

    #[test]
    fn file_values_apply_and_flags_win_over_them() {
        let p = file(
            "apply",
            r#"
node = "from-file"
bind = "127.0.0.1:7100"
join = ["127.0.0.1:7200", "localhost:7201"]
tag = ["role=web"]
api_idle_timeout = "12s"
api_max_connections = 9
topology_aware = false
retry_max = 4
"#,
        );
        let path = p.to_str().unwrap();
        let a = parse(&["agent", "--config", path]).unwrap();
        assert_eq!(a.node, "from-file");
        assert_eq!(a.bind, "127.0.0.1:7100".parse().unwrap());
        assert_eq!(a.join, ["127.0.0.1:7200", "localhost:7201"]);
        assert_eq!(a.tags, [("role".to_string(), "web".to_string())]);
        assert_eq!(a.api_idle_timeout, Duration::from_secs(12));
        assert_eq!(a.api_max_connections, 9);
        assert!(!a.topology_aware);
        assert_eq!(a.retry_max, 4);
        // Untouched keys keep the built-in defaults.
        assert!(a.api_hosts.is_empty() && a.retry_join.is_empty());
        assert_eq!(a.retry_interval, Duration::from_secs(30));
        let a = parse(&[
            "agent",
            "--config",
            path,
            "--node",
            "flag",
            "--join",
            "127.0.0.9:1",
            "--topology-aware",
        ])
        .unwrap();
        assert_eq!(a.node, "flag");
        assert_eq!(a.join, ["127.0.0.9:1"], "a flag's list replaces the file's");
        assert!(a.topology_aware);
        let _ = std::fs::remove_file(p);
    }

    /// The only test that sets a `SWIMNET_` variable, and one no other
    /// test looks at: flag > environment > file > default.
    #[test]
    fn precedence_is_flag_then_environment_then_file_then_default() {
        const VAR: &str = "SWIMNET_API_REQUEST_TIMEOUT";
        let p = file(
            "precedence",
            "node = \"n\"\napi_request_timeout = \"11s\"\n",
        );
        let path = p.to_str().unwrap();
        let timeout = |args: &[&str]| parse(args).unwrap().api_request_timeout.as_secs();
        std::env::remove_var(VAR);
        assert_eq!(timeout(&["agent", "--node", "n"]), 30, "default");
        assert_eq!(timeout(&["agent", "--config", path]), 11, "file");
        std::env::set_var(VAR, "22s");
        assert_eq!(timeout(&["agent", "--config", path]), 22, "environment");
        assert_eq!(
            timeout(&["agent", "--config", path, "--api-request-timeout", "33s"]),
            33,
            "flag"
        );
        std::env::remove_var(VAR);
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn bad_files_are_one_line_errors_naming_file_and_key() {
        let cases = [
            (
                "unknown",
                "node = \"n\"\nbogus = 1\n",
                "key `bogus`: unknown key",
            ),
            (
                "kebab",
                "api-host = [\"x\"]\n",
                "key `api-host`: unknown key: write it `api_host`",
            ),
            (
                "badaddr",
                "bind = \"not an address\"\n",
                "key `bind`: invalid value \"not an address\"",
            ),
            (
                "badenum",
                "protocol = \"carrier-pigeon\"\n",
                "key `protocol`:",
            ),
            (
                "badtype",
                "node = [\"a\", \"b\"]\n",
                "key `node`: takes one value, not a list",
            ),
            (
                "table",
                "api_idle_timeout = { s = 1 }\n",
                "key `api_idle_timeout`: expected a string, number or boolean",
            ),
            (
                "badduration",
                "api_idle_timeout = \"soon\"\n",
                "key `api_idle_timeout`: invalid value \"soon\"",
            ),
            (
                "badlevel",
                "log_level = \"bogus\"\n",
                "key `log_level`: invalid value \"bogus\"",
            ),
            ("syntax", "node = \"n\"\nbind = \n", "line 2:"),
            (
                "self",
                "config = \"other.toml\"\n",
                "key `config`: unknown key",
            ),
        ];
        for (name, text, want) in cases {
            let p = file(name, text);
            let e = config_error(&["agent", "--config", p.to_str().unwrap()]);
            assert!(e.contains(&*p.to_string_lossy()), "{name}: no file in {e}");
            assert!(e.contains(want), "{name}: {e:?} lacks {want:?}");
            assert!(!e.contains('\n'), "{name}: not one line: {e:?}");
            let _ = std::fs::remove_file(p);
        }
        let e = config_error(&["agent", "--config", "/nonexistent/swimnet.toml"]);
        assert!(
            e.starts_with("config file /nonexistent/swimnet.toml: "),
            "{e}"
        );
    }

    /// `packaging/swimnet.toml` is accepted and mentions every key.
    #[test]
    fn the_example_file_is_valid_and_complete() {
        let text = include_str!("../../../../packaging/swimnet.toml");
        let table: toml::Table = text.parse().unwrap();
        let cmd = with_env(Cli::command());
        apply_file(cmd.clone(), Path::new("swimnet.toml"), &table).unwrap();
        for a in cmd.find_subcommand(AGENT).unwrap().get_arguments() {
            let key = a.get_long().unwrap().replace('-', "_");
            let named = text
                .lines()
                .any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} = ")));
            assert!(
                key == CONFIG_FLAG || named,
                "packaging/swimnet.toml lacks `{key}`"
            );
        }
    }

    #[test]
    fn a_key_in_the_file_needs_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let key = swimnet::keyfile::generate_key();
        let p = file("secret", &format!("node = \"n\"\nencrypt = \"{key}\"\n"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = p.to_str().unwrap();
        let e = config_error(&["agent", "--config", path]);
        assert!(
            e.contains("key `encrypt`") && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let a = parse(&["agent", "--config", path])
            .map_err(|_| "refused")
            .unwrap();
        assert_eq!(a.encrypt.as_deref(), Some(key.as_str()));
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn a_bad_flag_value_is_one_line() {
        let e = config_error(&["agent", "--node", "a", "--log-level", "bogus"]);
        assert!(
            e.starts_with("invalid value 'bogus' for '--log-level"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e:?}");
    }

    #[test]
    fn other_subcommands_ignore_the_agent_config() {
        match parse_args::<Cli, _>(["swimnet", "keygen"].map(OsString::from)) {
            Ok(Cli {
                command: Cmd::Keygen,
                ..
            }) => {}
            _ => panic!("keygen not parsed"),
        }
    }
}
