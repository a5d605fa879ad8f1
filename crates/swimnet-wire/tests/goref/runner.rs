//! Building and running `swimnet-goref`, the Go reference program.

use super::*;

pub(crate) const INSTALL_HINT: &str =
    "install Go and Debian's memberlist 0.2.2 source: apt-get update && apt-get install -y golang-go golang-github-hashicorp-memberlist-dev";

pub(crate) fn goref() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let script = root.join("scripts/build-goref.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e} ({INSTALL_HINT})", script.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "building the Go reference program failed ({}):\n{stderr}\n{INSTALL_HINT}",
            out.status
        );
        let path = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
        assert!(
            path.is_file(),
            "build-goref.sh did not print a binary path (stdout: {stdout:?}, stderr: {stderr})"
        );
        path
    })
}

pub(crate) fn run_goref(mode: &str, input: &str) -> Vec<Value> {
    let mut child = Command::new(goref())
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start swimnet-goref");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        stdin
            .write_all(input.as_bytes())
            .expect("write to swimnet-goref");
    });
    let out = child.wait_with_output().expect("wait for swimnet-goref");
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "swimnet-goref {mode} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("bad JSON from swimnet-goref ({e}): {l}"))
        })
        .collect()
}
