//! TLS to the store: libpq's `sslmode` and `sslrootcert` (in the URL's
//! query, else `PGSSLMODE` and `PGSSLROOTCERT`), spoken with rustls and
//! ring (one crypto provider in the process, `../shared/DEPENDENCIES.md`).
//!
//! opsgate speaks TLS one way: `sslmode=verify-full`, the server's
//! certificate checked against the CA file and its name against the host.
//! `sslmode=disable` (or none) is plain TCP, for a store on the same host
//! or a trusted network. The modes in between (`prefer`, `require`,
//! `verify-ca`) are refused: they would not notice a server in the middle
//! of a connection that carries approvals.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What a URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Plain TCP.
    Off,
    /// TLS, the server checked against the CA certificates in this file.
    VerifyFull { ca: PathBuf },
}

/// Splits libpq's `sslmode` and `sslrootcert` off `url` (tokio-postgres
/// knows neither `verify-full` nor `sslrootcert`): the URL left and the
/// TLS it asks for. An unsupported mode is an error that says why.
pub fn split(url: &str) -> Result<(String, Tls), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = None;
    let mut root = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => mode = Some(decode(v)),
            "sslrootcert" => root = Some(decode(v)),
            _ => rest.push(pair),
        }
    }
    let mode = mode
        .or_else(|| std::env::var("PGSSLMODE").ok())
        .unwrap_or_else(|| "disable".into());
    let root = root.or_else(|| std::env::var("PGSSLROOTCERT").ok());
    let tls = match mode.as_str() {
        "disable" => Tls::Off,
        "verify-full" => Tls::VerifyFull {
            ca: match root {
                Some(r) => PathBuf::from(r),
                // libpq's default.
                None => std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
                    .ok_or("sslmode=verify-full needs sslrootcert=CA_FILE")?,
            },
        },
        "allow" | "prefer" | "require" | "verify-ca" => {
            return Err(format!(
                "sslmode={mode} is not spoken: opsgate uses sslmode=verify-full (with sslrootcert=CA_FILE: the server's certificate and name are checked) or sslmode=disable; {mode} would not notice a server in the middle"
            ));
        }
        other => return Err(format!("sslmode={other} is not a libpq sslmode")),
    };
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, tls))
}

/// `%XX` decoded (a path in a query).
fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connector for `tls` (for [`Tls::Off`] one that is never used:
/// the connection's `sslmode` is `disable`).
pub fn connector(tls: &Tls) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    if let Tls::VerifyFull { ca } = tls {
        let shown = ca.display();
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("sslrootcert {shown}: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("sslrootcert {shown}: no PEM certificate in it"));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("sslrootcert {shown}: {e}"))?;
        }
    }
    let config = builder.with_root_certificates(roots).with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_split_off_the_url_and_half_measures_are_refused() {
        let (url, tls) =
            split("postgres://u@h:5/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x")
                .unwrap();
        assert_eq!(url, "postgres://u@h:5/db?application_name=x");
        assert_eq!(
            tls,
            Tls::VerifyFull {
                ca: PathBuf::from("/etc/ca.pem")
            }
        );
        let (url, tls) = split("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!((url.as_str(), tls), ("postgres://u@h/db", Tls::Off));
        for mode in ["require", "prefer", "verify-ca", "allow"] {
            let e = split(&format!("postgres://u@h/db?sslmode={mode}")).unwrap_err();
            assert!(e.contains("verify-full"), "{mode}: {e}");
        }
        assert!(split("postgres://u@h/db?sslmode=bogus").is_err());
    }
}
