//! Keys as the user gives them: base64 on the command line, and the keyring
//! file (a JSON list of base64 keys, primary first, as Serf writes it).

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use swimnet_wire::security::{Key, Keyring};

/// Decodes a base64 key and checks its length (16, 24 or 32 bytes).
pub fn parse_key(text: &str) -> Result<Vec<u8>, String> {
    let bytes = STANDARD.decode(text.trim()).map_err(|_| {
        format!(
            "key {:?} is not valid base64: make one with `swimnet keygen`",
            text.trim()
        )
    })?;
    match bytes.len() {
        16 | 24 | 32 => Ok(bytes),
        n => Err(format!(
            "key decodes to {n} bytes; it must be 16, 24 or 32 bytes (AES-128/192/256): make one with `swimnet keygen`"
        )),
    }
}

/// Base64 text of a key.
pub fn encode_key(key: &[u8]) -> String {
    STANDARD.encode(key)
}

/// A new random 32-byte key, base64.
pub fn generate_key() -> String {
    let key: [u8; 32] = rand::random();
    encode_key(&key)
}

/// Builds a keyring from raw keys, primary first.
pub fn keyring(keys: &[Vec<u8>]) -> Result<Keyring, String> {
    let keys = keys
        .iter()
        .map(|k| Key::new(k).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Keyring::from_keys(keys).map_err(|e| e.to_string())
}

/// The keyring file: read at start, rewritten after every key change so a
/// restart keeps the current keyring. Written atomically with mode 0600.
#[derive(Debug, Clone)]
pub struct KeyringFile {
    path: PathBuf,
}

impl KeyringFile {
    /// A keyring file at `path` (not read yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        KeyringFile { path: path.into() }
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the keys, primary first.
    pub fn load(&self) -> Result<Vec<Vec<u8>>, String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read keyring file {}: {e}", self.path.display()))?;
        let list: Vec<String> = serde_json::from_str(&text).map_err(|e| {
            format!(
                "keyring file {} is not a JSON list of base64 keys: {e}",
                self.path.display()
            )
        })?;
        if list.is_empty() {
            return Err(format!("keyring file {} holds no key", self.path.display()));
        }
        list.iter().map(|k| parse_key(k)).collect()
    }

    /// Writes the keys (primary first), replacing the file atomically.
    pub fn save(&self, keys: &[Vec<u8>]) -> Result<(), String> {
        let list: Vec<String> = keys.iter().map(|k| encode_key(k)).collect();
        let text = serde_json::to_string_pretty(&list).expect("strings serialize");
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
            }
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| format!("cannot write keyring file {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(parse_key(&generate_key()).is_ok());
        assert!(parse_key("not base64!")
            .unwrap_err()
            .contains("not valid base64"));
        assert!(parse_key(&encode_key(&[0; 10]))
            .unwrap_err()
            .contains("10 bytes"));
    }

    #[test]
    fn keyring_file_round_trips_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("swimnet-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = KeyringFile::new(dir.join("keyring.json"));
        let keys = vec![vec![1u8; 32], vec![2u8; 16]];
        f.save(&keys).unwrap();
        assert_eq!(f.load().unwrap(), keys);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(f.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
