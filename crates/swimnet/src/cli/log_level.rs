//! `--log-level`: a level (`info`) or RUST_LOG-style directives
//! (`swimnet_core=debug,info`: a level per target, the bare level for the
//! rest), checked strictly so that a typo is a start-up error instead of a
//! filter that silently turns logging off (tracing's parser takes a bare
//! unknown word as a target name and logs nothing else).
//!
//! The directives are those of tracing-subscriber's `EnvFilter` without
//! its span and field filters (`[span{field=x}]`), parsed by `Targets`,
//! which needs no regex engine in the binary.

use tracing_subscriber::filter::Targets;

/// Level names accepted, most to least quiet.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

fn is_level(word: &str) -> bool {
    LEVELS.iter().any(|l| l.eq_ignore_ascii_case(word))
}

/// A target is a Rust module path (`swimnet`, `swimnet_core::memberlist`).
fn is_target(word: &str) -> bool {
    !word.is_empty()
        && word.split("::").all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Checks a `--log-level` value; returns it unchanged when every
/// comma-separated directive is `LEVEL` or `TARGET=LEVEL`. Used as the
/// flag's clap value parser, so the flag, `SWIMNET_LOG_LEVEL` and the
/// config file's `log_level` are all checked.
pub fn parse_log_level(text: &str) -> Result<String, String> {
    let levels = LEVELS.join(", ");
    let directives: Vec<&str> = text.split(',').map(str::trim).collect();
    if directives.iter().all(|d| d.is_empty()) {
        return Err(format!(
            "give a level ({levels}) or TARGET=LEVEL directives"
        ));
    }
    for d in directives.into_iter().filter(|d| !d.is_empty()) {
        let ok = match d.split_once('=') {
            Some((target, level)) => is_target(target.trim()) && is_level(level.trim()),
            None => is_level(d),
        };
        if !ok {
            return Err(format!(
                "{d:?} is not a level ({levels}) or a TARGET=LEVEL directive such as swimnet_core=debug"
            ));
        }
    }
    Ok(text.to_string())
}

/// The filter for a value [`parse_log_level`] accepted.
pub fn log_filter(text: &str) -> Result<Targets, String> {
    parse_log_level(text)?;
    let cleaned: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    cleaned
        .join(",")
        .parse()
        .map_err(|e| format!("--log-level {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn levels_and_directives_are_accepted() {
        for ok in [
            "info",
            "DEBUG",
            "off",
            "swimnet_core=debug,info",
            "swimnet=trace, warn",
            "swimnet_core::memberlist=debug",
        ] {
            assert!(parse_log_level(ok).is_ok(), "{ok} refused");
        }
        let f = log_filter("swimnet_core=debug,info").unwrap();
        assert!(f.would_enable("swimnet_core::memberlist", &Level::DEBUG));
        assert!(!f.would_enable("swimnet", &Level::DEBUG));
        assert!(f.would_enable("swimnet", &Level::INFO));
    }

    #[test]
    fn typos_are_refused_in_one_line() {
        for bad in [
            "bogus",
            "",
            " , ",
            "inf",
            "swimnet=loud",
            "=debug",
            "swimnet core=debug",
            "[span]=debug",
            "a::=info",
        ] {
            let e = parse_log_level(bad).unwrap_err();
            assert!(!e.contains('\n') && !e.is_empty(), "{bad:?}: {e:?}");
        }
        assert!(parse_log_level("bogus")
            .unwrap_err()
            .starts_with("\"bogus\" is not a level"));
    }
}
