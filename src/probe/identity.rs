//! Who answered: proof that a reply came from podlab's own server for a
//! given pod, so that a stand-in (a learner's `python3 -m http.server` on a
//! Service's address, a DNS server answering any name) cannot pass a check.
//!
//! Each lab has a secret, made when its daemon first starts and kept in
//! the state directory (`identity.key`, mode 0600). The grader sends a
//! fresh challenge with each probe; podlab's servers answer with
//! HMAC-SHA256(secret, kind, lab, pod, challenge). Only a server holding
//! the secret can make that, and a recorded answer is no good for the
//! next challenge. A learner who is root on the machine can read the key:
//! this stops a stand-in, not a forger (docs/exercises.md).
//!
//! SHA-256 and HMAC come from RustCrypto's `sha2` and `hmac`; the
//! published test vectors below pin the outputs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The file in a lab's state directory that holds its secret.
pub const KEY_FILE: &str = "identity.key";
/// The HTTP request header that carries the grader's challenge, and the
/// answer's header that carries the proof.
pub const CHALLENGE_HEADER: &str = "x-podlab-challenge";
pub const PROOF_HEADER: &str = "x-podlab-proof";
/// The EDNS option (in the range for local use, RFC 6891 §9) that carries
/// the challenge in a DNS query and the proof in its answer.
pub const EDNS_OPTION: u16 = 65_001;
/// What the UDP probe sends before its challenge.
pub const UDP_PREFIX: &str = "podlab-probe challenge=";

const SECRET_LEN: usize = 32;
const CHALLENGE_LEN: usize = 16;

/// What kind of server answers: part of what is signed, so that a DNS
/// proof cannot pass for an HTTP one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Udp,
    Dns,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Udp => "udp",
            Kind::Dns => "dns",
        }
    }
}

/// A lab's secret and name: what both the servers and the grader hold.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    lab: String,
    secret: [u8; SECRET_LEN],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({}, <secret>)", self.lab)
    }
}

impl Identity {
    pub fn new(lab: &str, secret: [u8; SECRET_LEN]) -> Identity {
        Identity {
            lab: lab.to_string(),
            secret,
        }
    }

    /// The proof a genuine server of `pod` (`namespace/name`) gives for
    /// `challenge` (hex, as sent), in hex.
    pub fn prove(&self, kind: Kind, pod: &str, challenge: &str) -> String {
        let msg = format!(
            "podlab-identity-v1\0{}\0{}\0{pod}\0{challenge}",
            kind.word(),
            self.lab
        );
        // No proof (empty) is never a match: `which` refuses it.
        hmac_sha256(&self.secret, msg.as_bytes()).map_or_else(String::new, |d| hex(&d))
    }

    /// Which of `pods` (if any) made `proof` for `challenge`.
    pub fn which<'a>(
        &self,
        kind: Kind,
        pods: impl IntoIterator<Item = &'a str>,
        challenge: &str,
        proof: &str,
    ) -> Option<&'a str> {
        if proof.is_empty() {
            return None;
        }
        pods.into_iter().find(|p| {
            let made = self.prove(kind, p, challenge);
            !made.is_empty() && equal(made.as_bytes(), proof.as_bytes())
        })
    }

    /// The lab's identity from its state directory: what the grader uses.
    pub fn load(state_dir: &Path, lab: &str) -> Result<Identity, String> {
        let path = state_dir.join(KEY_FILE);
        let mut f = std::fs::File::open(&path).map_err(|e| {
            format!(
                "cannot read {}: {e}: who answered cannot be checked (a lab brought up by an older podlab: `podlab down {lab}` and up again)",
                path.display()
            )
        })?;
        let mut secret = [0u8; SECRET_LEN];
        f.read_exact(&mut secret)
            .map_err(|e| format!("{} is not a podlab key: {e}", path.display()))?;
        Ok(Identity::new(lab, secret))
    }

    /// The lab's identity, made and saved (0600) the first time: what the
    /// daemon uses. A restarted daemon keeps the secret it had.
    pub fn load_or_create(state_dir: &Path, lab: &str) -> Result<Identity, String> {
        if state_dir.join(KEY_FILE).exists() {
            return Identity::load(state_dir, lab);
        }
        let secret: [u8; SECRET_LEN] = random()?;
        save(&state_dir.join(KEY_FILE), &secret)
            .map_err(|e| format!("cannot write {}: {e}", state_dir.join(KEY_FILE).display()))?;
        Ok(Identity::new(lab, secret))
    }
}

fn save(path: &Path, secret: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = f.write_all(secret).and_then(|()| f.sync_all());
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Bytes from the kernel's random source.
fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(b)
}

/// A fresh challenge, in hex.
pub fn challenge() -> String {
    // /dev/urandom does not fail on Linux once open; the fallback keeps
    // challenges distinct (time and a counter) should it ever.
    match random::<CHALLENGE_LEN>() {
        Ok(b) => hex(&b),
        Err(_) => {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            hex(&sha256(format!("{t}-{n}-{}", std::process::id()).as_bytes())[..CHALLENGE_LEN])
        }
    }
}

/// Whether `s` looks like a challenge: what the servers sign, and nothing
/// longer (a learner's request must not make the server sign any text).
pub fn is_challenge(s: &str) -> bool {
    s.len() == 2 * CHALLENGE_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The identity the daemon's servers answer with, set once at start.
static SERVED: OnceLock<Identity> = OnceLock::new();

/// Set the daemon's identity; called once, before any server starts.
pub fn install(id: Identity) {
    let _ = SERVED.set(id);
}

/// The identity the servers sign with; `None` (no proof given) outside a
/// daemon, or before `install`.
pub fn served() -> Option<&'static Identity> {
    SERVED.get()
}

/// What a server adds to its answer when asked with `challenge`: the proof
/// for `pod`, if the daemon has an identity and the challenge is one.
pub fn answer(kind: Kind, pod: &str, challenge: Option<&str>) -> Option<String> {
    let c = challenge.filter(|c| is_challenge(c))?;
    Some(served()?.prove(kind, pod, c))
}

/// Constant-time comparison: a wrong proof takes as long as a right one.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// `None` only if the crate refused the key, which HMAC never does (a key
/// longer than a block is hashed first).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Option<[u8; 32]> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
    mac.update(msg);
    Some(mac.finalize().into_bytes().into())
}

#[cfg(test)]
pub(crate) fn install_for_tests(lab: &str) -> &'static Identity {
    SERVED.get_or_init(|| Identity::new(lab, [7u8; SECRET_LEN]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answers() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            hex(&sha256(&[b'a'; 1000])),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    #[test]
    fn hmac_rfc4231_vectors() {
        // Test cases 1, 2 and 6 (a key longer than a block).
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There").expect("hmac")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?").expect("hmac")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )
            .expect("hmac")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn a_proof_names_its_pod_lab_kind_and_challenge() {
        let id = Identity::new("lab-a", [1; SECRET_LEN]);
        let c = challenge();
        assert!(is_challenge(&c));
        let p = id.prove(Kind::Http, "default/web-1", &c);
        let pods = ["default/web-0", "default/web-1"];
        assert_eq!(id.which(Kind::Http, pods, &c, &p), Some("default/web-1"));
        assert_eq!(id.which(Kind::Udp, pods, &c, &p), None, "another kind");
        assert_eq!(
            id.which(Kind::Http, pods, &challenge(), &p),
            None,
            "replayed"
        );
        let other = Identity::new("lab-b", [1; SECRET_LEN]);
        assert_eq!(other.which(Kind::Http, pods, &c, &p), None, "another lab");
        let key = Identity::new("lab-a", [2; SECRET_LEN]);
        assert_eq!(key.which(Kind::Http, pods, &c, &p), None, "another secret");
        assert!(!is_challenge("anything a learner types"));
    }

    #[test]
    fn the_key_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path(), "l").unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Identity::load_or_create(dir.path(), "l").unwrap();
        assert_eq!(a, b, "a restarted daemon keeps its secret");
        assert_eq!(Identity::load(dir.path(), "l").unwrap(), a);
        let e = Identity::load(&dir.path().join("none"), "l").unwrap_err();
        assert!(e.contains("who answered cannot be checked"), "{e}");
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
        assert_eq!(unhex("0g"), None);
    }
}
