//! Applies what the Serf delegate collected: key changes asked for by Serf's
//! internal key queries (`serf keys -install/-use/-remove/-list`), then the
//! query responses. Runs after every input, from the driver's hook.

use swimnet_core::Memberlist;
use swimnet_serf::{KeyOp, SerfAction};

use crate::agent::AgentDelegate;
use crate::keyfile::KeyringFile;

/// Drains the Serf delegate's actions and carries them out on the core.
pub fn apply(core: &mut Memberlist<AgentDelegate>, keyring_file: Option<&KeyringFile>) {
    let actions = match core.delegate_mut() {
        AgentDelegate::Serf(d) => d.take_actions(),
        AgentDelegate::Plain(_) => return,
    };
    for action in actions {
        match action {
            SerfAction::Send { to, payload } => core.send_user_packet(to, &payload),
            SerfAction::Key { op, reply } => {
                let result = match &op {
                    KeyOp::List => {
                        if core.keyring().is_some() {
                            Ok(())
                        } else {
                            Err("encryption is not enabled on this node".to_string())
                        }
                    }
                    KeyOp::Install(k) => core.install_key(k).map_err(|e| e.to_string()),
                    KeyOp::Use(k) => core.use_key(k).map_err(|e| e.to_string()),
                    KeyOp::Remove(k) => core.remove_key(k).map_err(|e| e.to_string()),
                };
                let keys: Vec<Vec<u8>> = core
                    .keyring()
                    .map(|r| r.keys().iter().map(|k| k.as_bytes().to_vec()).collect())
                    .unwrap_or_default();
                let mut result = result;
                if result.is_ok() && !matches!(op, KeyOp::List) {
                    tracing::info!(op = op.name(), "keyring changed by a Serf key query");
                    if let Some(f) = keyring_file {
                        if let Err(e) = f.save(&keys) {
                            tracing::error!(error = %crate::escape::esc(&e), "could not persist the keyring");
                            result = Err(e);
                        }
                    }
                }
                let (to, payload) = match core.delegate_mut() {
                    AgentDelegate::Serf(d) => d.key_response(&reply, result, &keys),
                    AgentDelegate::Plain(_) => return,
                };
                core.send_user_packet(to, &payload);
            }
        }
    }
}
