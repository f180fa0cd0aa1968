//! The allowed signers file and SSH signature checks (`core::signers`), each
//! answer compared with the real OpenSSH `ssh-keygen -Y verify`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use opsgate::core::signers::{
    AllowedSigners, Entry, LineError, Origin, SignersError, Verified, VerifyError, fingerprint,
};
use ssh_key::public::{Ed25519PublicKey, KeyData, SkEd25519};
use ssh_key::{Algorithm, HashAlg, LineEnding, PublicKey, Signature, SshSig};

const NS: &str = "opsgate";
const MSG: &[u8] = b"approve change 42\n";

/// A temp dir with keys made by ssh-keygen.
struct Lab {
    dir: tempfile::TempDir,
    counter: Cell<usize>,
}

impl Lab {
    fn new() -> Lab {
        Lab {
            dir: tempfile::tempdir().unwrap(),
            counter: Cell::new(0),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn next(&self) -> usize {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        n
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new("ssh-keygen")
            .args(args)
            .current_dir(self.dir.path())
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh-keygen {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `ssh-keygen -t TYPE -N '' -f NAME`; returns the public key line.
    fn keygen(&self, name: &str, key_type: &str, extra: &[&str]) -> String {
        let mut args = vec!["-q", "-t", key_type, "-N", "", "-C", name, "-f", name];
        args.extend_from_slice(extra);
        self.run(&args);
        self.pubkey(name)
    }

    fn ed25519(&self, name: &str) -> String {
        self.keygen(name, "ed25519", &[])
    }

    fn pubkey(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.pub")))
            .unwrap()
            .trim()
            .to_string()
    }

    /// `ssh-keygen -s CA -I ID ARGS KEY.pub`, writing `KEY-cert.pub`.
    fn certify(&self, ca: &str, key: &str, key_id: &str, extra: &[&str]) {
        let pubfile = format!("{key}.pub");
        let mut args = vec!["-q", "-s", ca, "-I", key_id];
        args.extend_from_slice(extra);
        args.push(&pubfile);
        self.run(&args);
    }

    /// `ssh-keygen -Y sign -n NS -f KEY FILE`; returns the armored signature.
    fn sign(&self, key: &str, namespace: &str, message: &[u8]) -> String {
        let file = format!("msg{}", self.next());
        std::fs::write(self.path(&file), message).unwrap();
        self.run(&["-Y", "sign", "-n", namespace, "-f", key, &file]);
        std::fs::read_to_string(self.path(&format!("{file}.sig"))).unwrap()
    }

    /// `ssh-keygen -lf NAME.pub` fingerprint.
    fn fingerprint(&self, name: &str) -> String {
        let out = self.run(&["-l", "-f", &format!("{name}.pub")]);
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace().nth(1).unwrap().to_string()
    }

    /// Reference verdict of `ssh-keygen -Y verify` at time `at`.
    fn reference(
        &self,
        allowed: &str,
        principal: &str,
        namespace: &str,
        message: &[u8],
        sig: &str,
        at: DateTime<Utc>,
    ) -> bool {
        let n = self.next();
        let allowed_file = format!("allowed{n}");
        let sig_file = format!("ref{n}.sig");
        std::fs::write(self.path(&allowed_file), allowed).unwrap();
        std::fs::write(self.path(&sig_file), sig).unwrap();
        let verify_time = format!("verify-time={}", at.format("%Y%m%d%H%M%SZ"));
        let msg_file = format!("refmsg{n}");
        std::fs::write(self.path(&msg_file), message).unwrap();
        let status = Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f", &allowed_file, "-I", principal])
            .args(["-n", namespace, "-s", &sig_file, "-O", &verify_time])
            .current_dir(self.dir.path())
            .env("TZ", "UTC")
            .stdin(std::fs::File::open(self.path(&msg_file)).unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        status.success()
    }

    /// Verify with ours and with ssh-keygen; assert both give `expect_ok`.
    #[allow(clippy::too_many_arguments)]
    fn check_at(
        &self,
        allowed: &str,
        principal: &str,
        namespace: &str,
        message: &[u8],
        sig: &str,
        at: DateTime<Utc>,
        expect_ok: bool,
    ) -> Result<Verified, VerifyError> {
        let signers = AllowedSigners::parse(allowed).unwrap();
        let ours = signers.verify(principal, namespace, message, sig, at);
        let reference = self.reference(allowed, principal, namespace, message, sig, at);
        assert_eq!(
            reference, expect_ok,
            "ssh-keygen disagrees with the expectation for {principal}/{namespace} with\n{allowed}"
        );
        assert_eq!(
            ours.is_ok(),
            expect_ok,
            "ours: {ours:?} for {principal}/{namespace} with\n{allowed}"
        );
        ours
    }

    fn check(
        &self,
        allowed: &str,
        principal: &str,
        sig: &str,
        expect_ok: bool,
    ) -> Result<Verified, VerifyError> {
        self.check_at(allowed, principal, NS, MSG, sig, now(), expect_ok)
    }
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%SZ").to_string()
}

#[test]
fn each_key_type_verifies_with_ssh_keygen_fingerprint() {
    let lab = Lab::new();
    let cases: [(&str, &str, &[&str]); 5] = [
        ("ed", "ed25519", &[]),
        ("p256", "ecdsa", &["-b", "256"]),
        ("p384", "ecdsa", &["-b", "384"]),
        ("p521", "ecdsa", &["-b", "521"]),
        ("rsa", "rsa", &["-b", "2048"]),
    ];
    for (name, key_type, extra) in cases {
        let public = lab.keygen(name, key_type, extra);
        let sig = lab.sign(name, NS, MSG);
        let allowed = format!("alice {public}\n");
        let verified = lab.check(&allowed, "alice", &sig, true).unwrap();
        assert_eq!(verified.principal, "alice");
        assert_eq!(verified.fingerprint, lab.fingerprint(name), "{name}");
        assert_eq!(
            verified.algorithm,
            public.split_whitespace().next().unwrap(),
            "{name}"
        );
        assert_eq!(verified.certificate, None);
        assert_eq!(verified.origin, Origin::Line(1));
        let key = PublicKey::from_openssh(&public).unwrap();
        assert_eq!(fingerprint(&key), lab.fingerprint(name));
    }
}

#[test]
fn wrong_principal_message_or_namespace_fails() {
    let lab = Lab::new();
    let alice = lab.ed25519("alice");
    let bob = lab.ed25519("bob");
    let allowed = format!("alice {alice}\nbob {bob}\n");
    let sig = lab.sign("alice", NS, MSG);
    lab.check(&allowed, "alice", &sig, true).unwrap();

    // alice's key claimed as bob, and bob's key claimed as alice
    let err = lab.check(&allowed, "bob", &sig, false).unwrap_err();
    assert!(matches!(err, VerifyError::KeyNotListed { ref principal, .. } if principal == "bob"));
    let bob_sig = lab.sign("bob", NS, MSG);
    let err = lab.check(&allowed, "alice", &bob_sig, false).unwrap_err();
    assert!(matches!(err, VerifyError::KeyNotListed { .. }), "{err}");

    // a different message
    let err = lab
        .check_at(
            &allowed,
            "alice",
            NS,
            b"approve change 43\n",
            &sig,
            now(),
            false,
        )
        .unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");

    // a signature made for git is not an opsgate signature
    let git_sig = lab.sign("alice", "git", MSG);
    let err = lab.check(&allowed, "alice", &git_sig, false).unwrap_err();
    assert_eq!(
        err,
        VerifyError::WrongNamespace {
            expected: "opsgate".into(),
            found: "git".into()
        }
    );
    lab.check_at(&allowed, "alice", "git", MSG, &git_sig, now(), true)
        .unwrap();
    assert!(err.to_string().contains("`git`"), "{err}");
}

#[test]
fn several_principals_and_negation() {
    let lab = Lab::new();
    let shared = lab.ed25519("shared");
    let open = lab.ed25519("open");
    let allowed = format!("alice,bob {shared}\n!carol,* {open}\n");
    let shared_sig = lab.sign("shared", NS, MSG);
    let open_sig = lab.sign("open", NS, MSG);
    lab.check(&allowed, "alice", &shared_sig, true).unwrap();
    lab.check(&allowed, "bob", &shared_sig, true).unwrap();
    lab.check(&allowed, "carol", &shared_sig, false)
        .unwrap_err();
    lab.check(&allowed, "alic", &shared_sig, false).unwrap_err();
    lab.check(&allowed, "dave", &open_sig, true).unwrap();
    lab.check(&allowed, "alice@example.com", &open_sig, true)
        .unwrap();
    let err = lab.check(&allowed, "carol", &open_sig, false).unwrap_err();
    assert!(matches!(err, VerifyError::KeyNotListed { .. }), "{err}");

    // negation wins wherever it is in the list; wildcards with ? and *
    let allowed = format!("*,!carol {open}\n");
    lab.check(&allowed, "carol", &open_sig, false).unwrap_err();
    lab.check(&allowed, "erin", &open_sig, true).unwrap();
    let allowed = format!("*@example.com,b?b {open}\n");
    lab.check(&allowed, "alice@example.com", &open_sig, true)
        .unwrap();
    lab.check(&allowed, "bob", &open_sig, true).unwrap();
    lab.check(&allowed, "alice@example.org", &open_sig, false)
        .unwrap_err();
    // a negation-only line lets nobody in
    let allowed = format!("!carol {open}\n");
    lab.check(&allowed, "dave", &open_sig, false).unwrap_err();
}

#[test]
fn namespaces_option() {
    let lab = Lab::new();
    let key = lab.ed25519("k");
    let sig = lab.sign("k", NS, MSG);
    let refused = |line: String| {
        let err = lab.check(&line, "alice", &sig, false).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::NamespaceNotAllowed {
                    origin: Origin::Line(1),
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("allowed signers line 1"), "{err}");
    };
    refused(format!("alice namespaces=\"git\" {key}\n"));
    refused(format!("alice namespaces=\"*,!opsgate\" {key}\n"));
    refused(format!("alice namespaces=\"\" {key}\n"));
    lab.check(
        &format!("alice namespaces=\"opsgate,git\" {key}\n"),
        "alice",
        &sig,
        true,
    )
    .unwrap();
    lab.check(
        &format!("alice NameSpaces=\"ops*\" {key}\n"),
        "alice",
        &sig,
        true,
    )
    .unwrap();
    // a refusing line does not hide a later accepting one
    let allowed = format!("alice namespaces=\"git\" {key}\nalice namespaces=\"opsgate\" {key}\n");
    let verified = lab.check(&allowed, "alice", &sig, true).unwrap();
    assert_eq!(verified.origin, Origin::Line(2));
}

#[test]
fn validity_options() {
    let lab = Lab::new();
    let key = lab.ed25519("k");
    let sig = lab.sign("k", NS, MSG);
    let at = now();
    let line = |opts: String| format!("alice {opts} {key}\n");
    let check = |opts: String, ok: bool| lab.check_at(&line(opts), "alice", NS, MSG, &sig, at, ok);

    // YYYYMMDD
    let err = check("valid-before=\"20200101\"".into(), false).unwrap_err();
    assert!(matches!(err, VerifyError::LineExpired { .. }), "{err}");
    let err = check("valid-after=\"20990101\"".into(), false).unwrap_err();
    assert!(matches!(err, VerifyError::LineNotYetValid { .. }), "{err}");
    check(
        "valid-after=\"20200101\",valid-before=\"20990101\"".into(),
        true,
    )
    .unwrap();

    // YYYYMMDDHHMMSSZ and YYYYMMDDHHMMZ near `at`
    let err = check(
        format!("valid-after=\"{}\"", ts(at + Duration::seconds(60))),
        false,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::LineNotYetValid { .. }), "{err}");
    let err = check(
        format!("valid-before=\"{}\"", ts(at - Duration::seconds(1))),
        false,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::LineExpired { .. }), "{err}");
    let minute = |t: DateTime<Utc>| t.format("%Y%m%d%H%MZ").to_string();
    let err = check(
        format!("valid-before=\"{}\"", minute(at - Duration::minutes(2))),
        false,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::LineExpired { .. }), "{err}");
    let err = check(
        format!("valid-after=\"{}\"", minute(at + Duration::minutes(2))),
        false,
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::LineNotYetValid { .. }), "{err}");
    check(
        format!(
            "valid-after=\"{}\",valid-before=\"{}\"",
            minute(at - Duration::minutes(2)),
            minute(at + Duration::minutes(2))
        ),
        true,
    )
    .unwrap();

    // both bounds are inclusive
    check(format!("valid-after=\"{}\"", ts(at)), true).unwrap();
    check(format!("valid-before=\"{}\"", ts(at)), true).unwrap();
    check(
        format!(
            "valid-after=\"{}\",valid-before=\"{}\"",
            ts(at),
            ts(at + Duration::seconds(1))
        ),
        true,
    )
    .unwrap();
}

#[test]
fn certificates() {
    let lab = Lab::new();
    let ca = lab.ed25519("ca");
    let other_ca = lab.ed25519("otherca");
    lab.ed25519("user");
    lab.certify(
        "ca",
        "user",
        "keyid-1",
        &["-n", "alice", "-V", "-5m:+1h", "-z", "7"],
    );
    let cert_text = lab.pubkey("user-cert");
    let sig = lab.sign("user-cert.pub", NS, MSG);

    // the certificate is embedded in the signature
    let parsed: SshSig = sig.parse().unwrap();
    assert!(parsed.public_key().is_certificate());

    let allowed = format!("alice cert-authority {ca}\n");
    let verified = lab.check(&allowed, "alice", &sig, true).unwrap();
    assert_eq!(verified.fingerprint, lab.fingerprint("user"));
    assert_eq!(verified.algorithm, "ssh-ed25519");
    let info = verified.certificate.unwrap();
    assert_eq!(info.key_id, "keyid-1");
    assert_eq!(info.serial, 7);
    assert_eq!(info.ca_fingerprint, lab.fingerprint("ca"));

    // not for bob: the line does not trust the CA for bob ...
    let err = lab.check(&allowed, "bob", &sig, false).unwrap_err();
    assert!(matches!(err, VerifyError::CaNotTrusted { .. }), "{err}");
    // ... and with a wildcard line the certificate does not name bob
    let wildcard = format!("* cert-authority {ca}\n");
    lab.check(&wildcard, "alice", &sig, true).unwrap();
    let err = lab.check(&wildcard, "bob", &sig, false).unwrap_err();
    assert!(
        matches!(err, VerifyError::CertificatePrincipalMismatch { ref principal, .. } if principal == "bob"),
        "{err}"
    );

    // CA not listed
    let err = lab
        .check(
            &format!("alice cert-authority {other_ca}\n"),
            "alice",
            &sig,
            false,
        )
        .unwrap_err();
    assert!(matches!(err, VerifyError::CaNotTrusted { .. }), "{err}");

    // a CA key is trusted only as a CA; listing the CA as a plain key does not
    // make certificates valid either
    let err = lab
        .check(&format!("alice {ca}\n"), "alice", &sig, false)
        .unwrap_err();
    assert!(matches!(err, VerifyError::CaNotTrusted { .. }), "{err}");

    // the CA key signing directly is not a user
    let ca_sig = lab.sign("ca", NS, MSG);
    let err = lab.check(&allowed, "alice", &ca_sig, false).unwrap_err();
    assert!(matches!(err, VerifyError::KeyNotListed { .. }), "{err}");

    // a certificate signature does not match a plain line for its key
    let user_line = format!("alice {}\n", lab.pubkey("user"));
    let err = lab.check(&user_line, "alice", &sig, false).unwrap_err();
    assert!(matches!(err, VerifyError::CaNotTrusted { .. }), "{err}");

    // the line's namespaces apply to certificates too
    let err = lab
        .check(
            &format!("alice cert-authority,namespaces=\"git\" {ca}\n"),
            "alice",
            &sig,
            false,
        )
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::NamespaceNotAllowed { .. }),
        "{err}"
    );

    // principals_for_key on the certificate
    // ssh-key's PublicKey::from_openssh refuses certificate lines; go through
    // Certificate.
    assert!(PublicKey::from_openssh(&cert_text).is_err());
    let cert = ssh_key::Certificate::from_openssh(&cert_text).unwrap();
    let cert_key = PublicKey::from(KeyData::Certificate(Box::new(cert)));
    assert_eq!(fingerprint(&cert_key), lab.fingerprint("user"));
    let signers = AllowedSigners::parse(&wildcard).unwrap();
    assert_eq!(signers.principals_for_key(&cert_key, NS, now()), ["alice"]);
    assert!(
        AllowedSigners::parse(&format!("bob cert-authority {ca}\n"))
            .unwrap()
            .principals_for_key(&cert_key, NS, now())
            .is_empty()
    );
}

#[test]
fn certificate_validity_type_and_principals() {
    let lab = Lab::new();
    let ca = lab.ed25519("ca");
    let allowed = format!("* cert-authority {ca}\n");
    let make = |name: &str, extra: &[&str]| {
        lab.ed25519(name);
        lab.certify("ca", name, &format!("id-{name}"), extra);
        lab.sign(&format!("{name}-cert.pub"), NS, MSG)
    };

    let expired = make("expired", &["-n", "alice", "-V", "20200101:20200102"]);
    let err = lab.check(&allowed, "alice", &expired, false).unwrap_err();
    assert!(
        matches!(err, VerifyError::CertificateExpired { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("id-expired"), "{err}");
    // ... but it was valid back then
    let back_then: DateTime<Utc> = "2020-01-01T12:00:00Z".parse().unwrap();
    lab.check_at(&allowed, "alice", NS, MSG, &expired, back_then, true)
        .unwrap();

    let future = make("future", &["-n", "alice", "-V", "+1h:+2h"]);
    let err = lab.check(&allowed, "alice", &future, false).unwrap_err();
    assert!(
        matches!(err, VerifyError::CertificateNotYetValid { .. }),
        "{err}"
    );

    let host = make("host", &["-h", "-n", "alice", "-V", "-5m:+1h"]);
    let err = lab.check(&allowed, "alice", &host, false).unwrap_err();
    assert!(
        matches!(err, VerifyError::NotUserCertificate { .. }),
        "{err}"
    );

    // OpenSSH refuses certificates without principals for signatures
    let nobody = make("nobody", &["-V", "-5m:+1h"]);
    let err = lab.check(&allowed, "alice", &nobody, false).unwrap_err();
    assert!(
        matches!(err, VerifyError::CertificateNoPrincipals { .. }),
        "{err}"
    );

    // several principals; matched exactly, not as patterns
    let multi = make("multi", &["-n", "alice,bob,*", "-V", "-5m:+1h"]);
    lab.check(&allowed, "alice", &multi, true).unwrap();
    lab.check(&allowed, "bob", &multi, true).unwrap();
    let err = lab.check(&allowed, "carol", &multi, false).unwrap_err();
    assert!(
        matches!(err, VerifyError::CertificatePrincipalMismatch { .. }),
        "{err}"
    );

    // the line's validity applies on top of the certificate's
    let line = format!("* cert-authority,valid-before=\"20200101Z\" {ca}\n");
    let err = lab.check(&line, "alice", &multi, false).unwrap_err();
    assert!(matches!(err, VerifyError::LineExpired { .. }), "{err}");
}

#[test]
fn signing_with_key_next_to_cert_embeds_plain_key() {
    let lab = Lab::new();
    let ca = lab.ed25519("ca");
    let user = lab.ed25519("user");
    lab.certify("ca", "user", "id", &["-n", "alice", "-V", "-5m:+1h"]);
    // `-f user` with user-cert.pub next to it: ssh-keygen embeds the plain key
    let sig = lab.sign("user", NS, MSG);
    let parsed: SshSig = sig.parse().unwrap();
    assert!(!parsed.public_key().is_certificate());
    lab.check(&format!("alice {user}\n"), "alice", &sig, true)
        .unwrap();
    let err = lab
        .check(
            &format!("alice cert-authority {ca}\n"),
            "alice",
            &sig,
            false,
        )
        .unwrap_err();
    assert!(matches!(err, VerifyError::KeyNotListed { .. }), "{err}");
}

#[test]
fn forged_certificate_is_refused() {
    let lab = Lab::new();
    let ca = lab.ed25519("ca");
    lab.ed25519("user");
    lab.certify("ca", "user", "id", &["-n", "bob", "-V", "-5m:+1h"]);
    let sig = lab.sign("user-cert.pub", NS, MSG);
    let parsed: SshSig = sig.parse().unwrap();
    let cert = parsed.public_key().certificate().unwrap();

    // Rewrite the principal inside the certificate (bob -> eve, same length)
    // and re-sign the sshsig with the user key: the CA signature no longer
    // matches.
    let mut blob = cert.to_bytes().unwrap();
    let at = blob.windows(3).position(|w| w == b"bob").unwrap();
    blob[at..at + 3].copy_from_slice(b"eve");
    let forged = ssh_key::Certificate::from_bytes(&blob).unwrap();
    assert_eq!(forged.valid_principals(), ["eve"]);
    let user = ssh_key::PrivateKey::read_openssh_file(lab.path("user")).unwrap();
    let signed = SshSig::sign(&user, NS, HashAlg::Sha512, MSG).unwrap();
    let forged_sig = SshSig::new(
        KeyData::Certificate(Box::new(forged)),
        NS,
        HashAlg::Sha512,
        signed.signature().clone(),
    )
    .unwrap()
    .to_pem(LineEnding::LF)
    .unwrap();
    let allowed = format!("* cert-authority {ca}\n");
    let err = lab.check(&allowed, "eve", &forged_sig, false).unwrap_err();
    assert!(
        matches!(err, VerifyError::CertificateSignatureInvalid { .. }),
        "{err}"
    );
}

#[test]
fn malformed_and_tampered_signatures() {
    let lab = Lab::new();
    let key = lab.ed25519("k");
    let allowed = format!("alice {key}\n");
    let sig = lab.sign("k", NS, MSG);

    let err = lab
        .check(&allowed, "alice", "not a signature", false)
        .unwrap_err();
    assert!(matches!(err, VerifyError::Malformed(_)), "{err}");
    let truncated: String = sig.lines().take(2).collect::<Vec<_>>().join("\n");
    let err = lab.check(&allowed, "alice", &truncated, false).unwrap_err();
    assert!(matches!(err, VerifyError::Malformed(_)), "{err}");

    // flip a bit in the signature value (last bytes of the blob)
    let parsed: SshSig = sig.parse().unwrap();
    let mut bytes = parsed.signature_bytes().to_vec();
    bytes[10] ^= 1;
    let tampered = SshSig::new(
        parsed.public_key().clone(),
        NS,
        parsed.hash_alg(),
        Signature::new(parsed.algorithm(), bytes).unwrap(),
    )
    .unwrap()
    .to_pem(LineEnding::LF)
    .unwrap();
    let err = lab.check(&allowed, "alice", &tampered, false).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");

    // the hash algorithm is part of the signed data
    let sha256 = lab.reference(&allowed, "alice", NS, MSG, &sig, now());
    assert!(sha256);
    let relabeled = SshSig::new(
        parsed.public_key().clone(),
        NS,
        HashAlg::Sha256,
        parsed.signature().clone(),
    )
    .unwrap()
    .to_pem(LineEnding::LF)
    .unwrap();
    lab.check(&allowed, "alice", &relabeled, false).unwrap_err();
}

#[test]
fn sk_ed25519_signature() {
    // No authenticator here: build a sk-ssh-ed25519 key and signature by hand
    // (flags 0x01 = user present, counter 5) and check ssh-keygen agrees.
    let lab = Lab::new();
    let keypair = ssh_key::private::Ed25519Keypair::from_seed(&[7u8; 32]);
    let sk = SkEd25519::new(keypair.public, "ssh:");
    let public = PublicKey::new(KeyData::SkEd25519(sk.clone()), "sk");
    let public_text = public.to_openssh().unwrap();
    assert!(public_text.starts_with("sk-ssh-ed25519@openssh.com "));
    std::fs::write(lab.path("sk.pub"), format!("{public_text}\n")).unwrap();

    let sshsig_data = SshSig::signed_data(NS, HashAlg::Sha512, MSG).unwrap();
    let flags_counter = [0x01u8, 0, 0, 0, 5];
    let mut to_sign = Vec::new();
    to_sign.extend(<sha2::Sha256 as sha2::Digest>::digest(b"ssh:"));
    to_sign.extend(flags_counter);
    to_sign.extend(<sha2::Sha256 as sha2::Digest>::digest(&sshsig_data));
    let private = ssh_key::PrivateKey::from(keypair.clone());
    let mut raw = raw_sign(&private, &to_sign).as_bytes().to_vec();
    raw.extend(flags_counter);
    let sig = SshSig::new(
        KeyData::SkEd25519(sk),
        NS,
        HashAlg::Sha512,
        Signature::new(Algorithm::SkEd25519, raw).unwrap(),
    )
    .unwrap()
    .to_pem(LineEnding::LF)
    .unwrap();

    let allowed = format!("alice {public_text}\n");
    let verified = lab.check(&allowed, "alice", &sig, true).unwrap();
    assert_eq!(verified.algorithm, "sk-ssh-ed25519@openssh.com");
    assert_eq!(verified.fingerprint, lab.fingerprint("sk"));
    lab.check_at(&allowed, "alice", NS, b"other", &sig, now(), false)
        .unwrap_err();
    lab.check(&allowed, "bob", &sig, false).unwrap_err();

    // sk-ecdsa-sha2-nistp256 keys parse and fingerprint like ssh-keygen
    lab.keygen("p256", "ecdsa", &["-b", "256"]);
    let p256 = PublicKey::from_openssh(&lab.pubkey("p256")).unwrap();
    let point = match p256.key_data().ecdsa().unwrap() {
        ssh_key::public::EcdsaPublicKey::NistP256(point) => *point,
        other => panic!("not p256: {other:?}"),
    };
    let sk_ecdsa = PublicKey::new(
        KeyData::SkEcdsaSha2NistP256(ssh_key::public::SkEcdsaSha2NistP256::new(point, "ssh:")),
        "",
    );
    let text = sk_ecdsa.to_openssh().unwrap();
    assert!(text.starts_with("sk-ecdsa-sha2-nistp256@openssh.com "));
    std::fs::write(lab.path("skp256.pub"), format!("{text}\n")).unwrap();
    let signers = AllowedSigners::parse(&format!("carol namespaces=\"opsgate\" {text}\n")).unwrap();
    assert_eq!(
        fingerprint(signers.entries()[0].key()),
        lab.fingerprint("skp256")
    );
    assert_eq!(signers.principals_for_key(&sk_ecdsa, NS, now()), ["carol"]);
}

/// Sign raw bytes with any ssh-key signing key.
fn raw_sign<K: ssh_key::SigningKey>(key: &K, data: &[u8]) -> Signature {
    key.try_sign(data).unwrap()
}

#[test]
fn parse_errors_name_the_line_and_value() {
    let lab = Lab::new();
    let key = lab.ed25519("k");
    let b64 = key.split_whitespace().nth(1).unwrap();
    let err = |text: String| AllowedSigners::parse(&text).unwrap_err();
    let line3 = |bad: String| format!("# header\n\n{bad}\nbob {key}\n");

    let e = err(line3(format!("alice foo=\"x\" {key}")));
    assert_eq!(
        e.to_string(),
        "allowed signers line 3: unknown option `foo`"
    );
    assert!(matches!(
        e,
        SignersError::Line {
            line: 3,
            error: LineError::UnknownOption(_)
        }
    ));
    let e = err(line3(format!("alice cert-authorityx {key}")));
    assert_eq!(
        e.to_string(),
        "allowed signers line 3: unknown option `cert-authorityx`"
    );

    let e = err(line3("alice ssh-ed25519 AAAA!!notbase64".into()));
    assert!(
        matches!(
            e,
            SignersError::Line {
                line: 3,
                error: LineError::BadKey { .. }
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().starts_with(
            "allowed signers line 3: invalid `ssh-ed25519` key data `AAAA!!notbase64`"
        ),
        "{e}"
    );
    // valid base64 of the wrong key type
    let e = err(line3(format!("alice ecdsa-sha2-nistp256 {b64}")));
    assert!(
        matches!(
            e,
            SignersError::Line {
                line: 3,
                error: LineError::BadKey { .. }
            }
        ),
        "{e}"
    );

    for missing in [
        "alice",
        "alice ",
        "alice cert-authority",
        "alice namespaces=\"git\"",
    ] {
        let e = err(line3(missing.into()));
        assert_eq!(
            e.to_string(),
            "allowed signers line 3: missing key",
            "{missing}"
        );
    }
    let e = err(line3("alice ssh-ed25519".into()));
    assert_eq!(
        e.to_string(),
        "allowed signers line 3: missing base64 key data after `ssh-ed25519`"
    );

    let e = err(line3(format!("alice valid-after=\"2020\" {key}")));
    assert_eq!(
        e.to_string(),
        "allowed signers line 3: bad timestamp `2020` for `valid-after` (expected YYYYMMDD[HHMM[SS]][Z])"
    );
    // Each bad line, and what the error says about it (on line 3).
    for (bad, want) in [
        (
            format!("alice valid-before=\"20201345Z\" {key}"),
            "line 3: bad timestamp `20201345Z`",
        ),
        (
            format!("alice valid-before=20200101 {key}"),
            "line 3: option `valid-before` needs a double-quoted value",
        ),
        (
            format!("alice valid-after=\"20200102\",valid-before=\"20200101\" {key}"),
            "line 3: valid-before `20200101` is not after valid-after `20200102`",
        ),
        (
            format!("alice namespaces=\"a\",namespaces=\"b\" {key}"),
            "line 3: duplicate option `namespaces`",
        ),
        (
            format!("alice namespaces=\"git {key}"),
            "line 3: unterminated quote",
        ),
        (
            format!("alice cert-authority, {key}"),
            "line 3: unexpected end of options",
        ),
        (format!("\"alice {key}"), "line 3: unterminated quote"),
    ] {
        let e = err(line3(bad.clone()));
        assert!(e.to_string().contains(want), "{bad}: {e}");
    }
    let e = err(line3("alice foo@example.com AAAA".into()));
    assert_eq!(
        e.to_string(),
        "allowed signers line 3: unsupported key type `foo@example.com`"
    );
    let e = err(line3(format!(
        "alice {}",
        lab.pubkey("k")
            .replace("ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com")
    )));
    assert!(e.to_string().contains("line 3: certificate type"), "{e}");
}

#[test]
fn file_syntax_comments_whitespace_quotes_and_crlf() {
    let lab = Lab::new();
    let key = lab.ed25519("k");
    let sig = lab.sign("k", NS, MSG);
    let allowed = format!(
        "# comment\n\n   \n\t# indented comment\n  \t\"carol,dave\" {key} trailing comment\r\n\
         erin CERT-AUTHORITY,Namespaces=\"a\\\"b,c d\",VALID-AFTER=\"20200101UTC\" {key}\n\
         frank\tnamespaces=\"opsgate\"\t{key}\n\
         grace namespaces=\"file@example.com\" {key}\n"
    );
    let signers = AllowedSigners::parse(&allowed).unwrap();
    assert_eq!(signers.len(), 4);
    let entries = signers.entries();
    assert_eq!(entries[0].principals(), "carol,dave");
    assert_eq!(entries[0].origin(), Origin::Line(5));
    assert_eq!(
        entries[0].key().comment().as_str_lossy(),
        "k trailing comment"
    );
    assert!(entries[1].is_cert_authority());
    assert_eq!(entries[1].namespaces(), Some("a\"b,c d"));
    assert_eq!(
        entries[1].valid_after().unwrap().to_rfc3339(),
        "2020-01-01T00:00:00+00:00"
    );
    assert_eq!(entries[2].namespaces(), Some("opsgate"));
    assert_eq!(entries[3].namespaces(), Some("file@example.com"));
    lab.check(&allowed, "grace", &sig, false).unwrap_err();
    lab.check(&allowed, "carol", &sig, true).unwrap();
    lab.check(&allowed, "dave", &sig, true).unwrap();
    lab.check(&allowed, "frank", &sig, true).unwrap();
    // erin's line is cert-authority: her key is not a plain signer
    lab.check(&allowed, "erin", &sig, false).unwrap_err();
    assert!(AllowedSigners::parse("").unwrap().is_empty());
}

#[test]
fn principals_for_key_lists_literal_principals() {
    let lab = Lab::new();
    let key = lab.ed25519("k");
    let other = lab.ed25519("other");
    let allowed = format!(
        "alice,bob,!mallory,*@example.com {key}\n\
         carol namespaces=\"git\" {key}\n\
         dave valid-before=\"20200101Z\" {key}\n\
         erin cert-authority {key}\n\
         frank {other}\n\
         bob,grace,!grace {key}\n"
    );
    let signers = AllowedSigners::parse(&allowed).unwrap();
    let public = PublicKey::from_openssh(&key).unwrap();
    assert_eq!(
        signers.principals_for_key(&public, NS, now()),
        ["alice", "bob"]
    );
    assert_eq!(
        signers.principals_for_key(&public, "git", now()),
        ["alice", "bob", "carol"]
    );
    let back_then: DateTime<Utc> = "2019-06-01T00:00:00Z".parse().unwrap();
    assert_eq!(
        signers.principals_for_key(&public, NS, back_then),
        ["alice", "bob", "dave"]
    );
    let other_public = PublicKey::from_openssh(&other).unwrap();
    assert_eq!(
        signers.principals_for_key(&other_public, NS, now()),
        ["frank"]
    );
}

#[test]
fn inline_entries() {
    let lab = Lab::new();
    let alice = lab.ed25519("alice");
    let bob = lab.ed25519("bob");
    let entries = vec![
        Entry::parse_key_line("alice", &alice).unwrap(),
        Entry::parse_key_line("bob", &format!("namespaces=\"git\" {bob}")).unwrap(),
    ];
    assert_eq!(entries[0].origin(), Origin::Inline);
    let signers = AllowedSigners::from_entries(entries);
    let alice_sig = lab.sign("alice", NS, MSG);
    let bob_sig = lab.sign("bob", NS, MSG);
    let verified = signers.verify("alice", NS, MSG, &alice_sig, now()).unwrap();
    assert_eq!(verified.origin, Origin::Inline);
    assert!(matches!(
        signers.verify("bob", NS, MSG, &alice_sig, now()),
        Err(VerifyError::KeyNotListed { .. })
    ));
    let err = signers.verify("bob", NS, MSG, &bob_sig, now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "inline entry: key for `bob` is not permitted in namespace `opsgate` (namespaces=\"git\")"
    );

    // principals are literal names
    for bad in ["", "a,b", "*", "!eve", "a b"] {
        let e = Entry::parse_key_line(bad, &alice).unwrap_err();
        assert!(
            matches!(
                e,
                SignersError::Inline {
                    error: LineError::InvalidPrincipal(_),
                    ..
                }
            ),
            "{e}"
        );
    }
    let e = Entry::parse_key_line("alice", "ssh-ed25519 AAAAbad").unwrap_err();
    assert!(
        e.to_string().starts_with(
            "inline key for principal `alice`: invalid `ssh-ed25519` key data `AAAAbad`"
        ),
        "{e}"
    );
    let e = Entry::parse_key_line("alice", "").unwrap_err();
    assert_eq!(
        e.to_string(),
        "inline key for principal `alice`: missing key"
    );

    // combine a file and inline entries
    let mut combined = AllowedSigners::parse(&format!("carol {bob}\n"))
        .unwrap()
        .into_entries();
    combined.push(Entry::parse_key_line("alice", &alice).unwrap());
    let signers = AllowedSigners::from_entries(combined);
    signers.verify("carol", NS, MSG, &bob_sig, now()).unwrap();
    signers.verify("alice", NS, MSG, &alice_sig, now()).unwrap();
}

/// Many keys: lookups are indexed, and verification stays fast.
#[test]
fn large_allowed_signers_file() {
    let lab = Lab::new();
    let key = lab.ed25519("k");
    let sig = lab.sign("k", NS, MSG);
    let mut text = String::new();
    for i in 0u32..20_000 {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&i.to_be_bytes());
        bytes[31] = 0x55;
        let filler = PublicKey::new(KeyData::Ed25519(Ed25519PublicKey(bytes)), "");
        text.push_str(&format!("user{i} {}\n", filler.to_openssh().unwrap()));
    }
    text.push_str(&format!("alice {key}\n"));
    let started = std::time::Instant::now();
    let signers = AllowedSigners::parse(&text).unwrap();
    let parsed_in = started.elapsed();
    assert_eq!(signers.len(), 20_001);

    let n = 10_000;
    let at = now();
    let started = std::time::Instant::now();
    for _ in 0..n {
        let v = signers.verify("alice", NS, MSG, &sig, at).unwrap();
        assert_eq!(v.origin, Origin::Line(20_001));
    }
    let verified_in = started.elapsed();
    eprintln!("parsed 20001 lines in {parsed_in:?}; {n} verifications in {verified_in:?}");
    assert!(signers.verify("user7", NS, MSG, &sig, at).is_err());
}
