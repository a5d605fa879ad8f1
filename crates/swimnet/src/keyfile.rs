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

    /// Reads the keys, primary first. Refuses a file that group or others
    /// may read (the fix is in the error) or one over [`KEYRING_FILE_MAX`].
    pub fn load(&self) -> Result<Vec<Vec<u8>>, String> {
        let text = read_private_file(&self.path, KEYRING_FILE_MAX, "keyring file")?;
        parse_keyring(&text).map_err(|e| format!("keyring file {}: {e}", self.path.display()))
    }

    /// Writes the keys (primary first), replacing the file atomically: the
    /// text goes to a new, randomly named temporary file in the same
    /// directory, created exclusively (never through an existing file or
    /// symlink) with mode 0600, then renamed over the keyring file.
    pub fn save(&self, keys: &[Vec<u8>]) -> Result<(), String> {
        let list: Vec<String> = keys.iter().map(|k| encode_key(k)).collect();
        let mut text = serde_json::to_string_pretty(&list).expect("strings serialize");
        text.push('\n');
        write_replacing(&self.path, text.as_bytes())
            .map_err(|e| format!("cannot write keyring file {}: {e}", self.path.display()))
    }
}

/// Parses a keyring file's text: a JSON list of base64 keys, primary first,
/// at least one. Call it on what [`read_private_file`] returned (it does
/// not check the size); the error says what is wrong, without the path.
pub fn parse_keyring(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let list: Vec<String> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON list of base64 keys: {e}"))?;
    if list.is_empty() {
        return Err("holds no key".into());
    }
    list.iter().map(|k| parse_key(k)).collect()
}

/// Most bytes read from a keyring file (a few hundred keys).
pub const KEYRING_FILE_MAX: u64 = 64 * 1024;

/// Most bytes read from a key file or an API token file.
pub const SECRET_FILE_MAX: u64 = 4096;

/// Reads a secret file (`what` names it in errors): refuses a file that
/// group or others may access, as ssh does with private keys, with the
/// `chmod 600` fix in the message, and a file over `max` bytes.
pub fn read_private_file(path: &Path, max: u64, what: &str) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{what} {} is accessible by group or others (mode {mode:04o}): run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    if meta.len() > max {
        return Err(format!(
            "{what} {} is {} bytes, over the {max}-byte limit",
            path.display(),
            meta.len()
        ));
    }
    let mut text = String::new();
    file.take(max + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    if text.len() as u64 > max {
        return Err(format!(
            "{what} {} is over the {max}-byte limit",
            path.display()
        ));
    }
    Ok(text)
}

/// Reads one base64 key from a key file (`--encrypt-file`), with the
/// permission and size checks of [`read_private_file`].
pub fn load_key_file(path: &Path) -> Result<Vec<u8>, String> {
    let text = read_private_file(path, SECRET_FILE_MAX, "key file")?;
    parse_key(&text).map_err(|e| format!("key file {}: {e}", path.display()))
}

/// Reads an API token file (`--api-token-file`, `--token-file`): the
/// first line, trimmed, with the checks of [`read_private_file`]; an empty
/// token is refused.
pub fn load_token_file(path: &Path) -> Result<String, String> {
    let text = read_private_file(path, SECRET_FILE_MAX, "token file")?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() || token.chars().any(|c| c.is_control()) {
        return Err(format!(
            "token file {} must hold the token on its first line",
            path.display()
        ));
    }
    Ok(token.to_string())
}

/// Replaces `path` with `bytes` through a fresh temporary file next to it
/// (random name, `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600), synced, then
/// renamed; the temporary file is removed when any step fails.
pub(crate) fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "keyring".into());
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
        match opts.open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    let written = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
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

    #[cfg(unix)]
    #[test]
    fn keyring_save_never_writes_through_a_planted_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("swimnet-keyfile-sym-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim.txt");
        std::fs::write(&victim, "precious\n").unwrap();
        let path = dir.join("keyring.json");
        // The name the old code wrote through.
        std::os::unix::fs::symlink(&victim, dir.join("keyring.tmp")).unwrap();
        let f = KeyringFile::new(&path);
        f.save(&[vec![7u8; 32]]).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(f.load().unwrap(), vec![vec![7u8; 32]]);
        assert!(!std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Only the keyring, the victim and the planted link remain: no temporary file left over.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_open_to_group_or_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("swimnet-keyfile-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("key");
        std::fs::write(&p, generate_key()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_key_file(&p).unwrap_err();
        assert!(e.contains(&format!("chmod 600 {}", p.display())), "{e}");
        assert!(e.contains("0644"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_key_file(&p).unwrap().len(), 32);
        std::fs::write(&p, vec![b'A'; 5000]).unwrap();
        assert!(load_key_file(&p).unwrap_err().contains("limit"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
