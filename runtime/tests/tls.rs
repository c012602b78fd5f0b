//! Certificates as new users make them, and what the client says about
//! each: a tutorial certificate (CA:TRUE, no subjectAltName), an unknown
//! issuer, a wrong name, an expired certificate; pinning as the answer to
//! "I have a self-signed certificate"; the per-user development
//! certificate shared by a server and a client without passing files.

mod common;

use common::{payload, start, EchoClient};
use grpc_h3::tls::{ClientTlsConfig, DevCertificate};
use grpc_h3::{Channel, Code, Request, Status};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A self-signed certificate made to order: (certificate PEM, key PEM).
fn certificate(names: &[&str], ca: bool, expired: bool) -> (String, String) {
    certificate_named("localhost", names, ca, expired)
}

fn certificate_named(
    common_name: &str,
    names: &[&str],
    ca: bool,
    expired: bool,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// One call to a server using `server_cert`, from a client with `tls`.
async fn call_with(server_cert: &(String, String), tls: ClientTlsConfig) -> Result<(), Status> {
    let (cert_pem, key_pem) = server_cert;
    let server = start(|b| b.tls_identity(cert_pem, key_pem)).await;
    let channel = Channel::builder(format!("https://127.0.0.1:{}", server.addr.port()))
        .tls_config(tls)
        .build()
        .unwrap();
    let result = EchoClient::new(channel)
        .unary(Request::new(payload(1)))
        .await
        .map(drop);
    server.shutdown().await;
    result
}

fn expect_message(result: Result<(), Status>, parts: &[&str]) {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    for part in parts {
        assert!(
            status.message().contains(part),
            "{part:?} missing from: {}",
            status.message()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tutorial_certificate_is_explained_and_pinning_accepts_it() {
    // What `openssl req -x509 -newkey ... -subj /CN=localhost` makes:
    // CA:TRUE, and no subjectAltName.
    let tutorial = certificate(&[], true, false);
    expect_message(
        call_with(
            &tutorial,
            ClientTlsConfig::new().ca_certificate(&tutorial.0),
        )
        .await,
        &[
            "CaUsedAsEndEntity",
            "-addext basicConstraints=critical,CA:FALSE -addext subjectAltName=DNS:127.0.0.1",
            "ClientTlsConfig::pin_certificate(pem)",
        ],
    );
    // Pinned, it is trusted as it is (it names no host, so the pin alone
    // identifies the server).
    call_with(
        &tutorial,
        ClientTlsConfig::new().pin_certificate(&tutorial.0),
    )
    .await
    .expect("a pinned tutorial certificate is accepted");

    // With a subjectAltName but still CA:TRUE: the same advice.
    let ca_with_names = certificate(&["localhost", "127.0.0.1"], true, false);
    expect_message(
        call_with(
            &ca_with_names,
            ClientTlsConfig::new().ca_certificate(&ca_with_names.0),
        )
        .await,
        &["CaUsedAsEndEntity", "pin_certificate"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_without_names_is_explained() {
    let nameless = certificate(&[], false, false);
    expect_message(
        call_with(
            &nameless,
            ClientTlsConfig::new().ca_certificate(&nameless.0),
        )
        .await,
        &[
            "names no host (no subjectAltName",
            "subjectAltName=DNS:127.0.0.1",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_issuer_names_the_options_that_trust_it() {
    let server_cert = certificate(&["127.0.0.1"], false, false);
    let other = certificate_named("someone else", &["127.0.0.1"], false, false);
    expect_message(
        call_with(
            &server_cert,
            ClientTlsConfig::new().ca_certificate(&other.0),
        )
        .await,
        &[
            "not issued by a CA this client trusts (UnknownIssuer)",
            "ClientTlsConfig::ca_certificate(pem)",
            "trust_dev_certificate()",
        ],
    );
    // Another certificate with the same name as the trusted one: the
    // usual mix-up of two development certificates.
    let twin = certificate(&["127.0.0.1"], false, false);
    expect_message(
        call_with(&server_cert, ClientTlsConfig::new().ca_certificate(&twin.0)).await,
        &[
            "BadSignature",
            "two different certificates with the same name",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_mismatch_says_which_names_the_certificate_has() {
    let localhost_only = certificate(&["localhost"], false, false);
    expect_message(
        call_with(
            &localhost_only,
            ClientTlsConfig::new().ca_certificate(&localhost_only.0),
        )
        .await,
        &["valid for localhost but not for 127.0.0.1", "server_name"],
    );
    // Setting the name to check is the fix.
    call_with(
        &localhost_only,
        ClientTlsConfig::new()
            .ca_certificate(&localhost_only.0)
            .server_name("localhost"),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_says_so() {
    let expired = certificate(&["127.0.0.1"], false, true);
    expect_message(
        call_with(&expired, ClientTlsConfig::new().ca_certificate(&expired.0)).await,
        &["expired", "days ago"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_accept_exactly_their_certificate_and_check_its_names() {
    let server_cert = certificate(&["127.0.0.1"], false, false);
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(server_cert.0.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
        .unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    let fingerprint: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    call_with(
        &server_cert,
        ClientTlsConfig::new().pin_sha256(fingerprint.join(":")),
    )
    .await
    .expect("the fingerprint pin matches");

    let other = certificate(&["127.0.0.1"], false, false);
    expect_message(
        call_with(
            &server_cert,
            ClientTlsConfig::new().pin_certificate(&other.0),
        )
        .await,
        &["is not the pinned one"],
    );

    // A pinned certificate for another name: refused, unless told not to
    // check names.
    let elsewhere = certificate(&["other.example"], false, false);
    expect_message(
        call_with(
            &elsewhere,
            ClientTlsConfig::new().pin_certificate(&elsewhere.0),
        )
        .await,
        &[
            "valid for other.example but not for 127.0.0.1",
            "check_pinned_server_name(false)",
        ],
    );
    call_with(
        &elsewhere,
        ClientTlsConfig::new()
            .pin_certificate(&elsewhere.0)
            .check_pinned_server_name(false),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_development_certificate_needs_one_line_on_each_side() {
    let server = grpc_h3::server::Server::builder()
        .dev_certificate()
        .add_service(common::EchoService::default())
        .bind("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let serving = tokio::spawn(server.serve_with_shutdown(async {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await
    }));
    // No PEM passed around: both sides find the user's certificate.
    let channel = Channel::builder(format!("https://localhost:{port}"))
        .tls_config(ClientTlsConfig::new().trust_dev_certificate())
        .build()
        .unwrap();
    EchoClient::new(channel)
        .unary(Request::new(payload(1)))
        .await
        .unwrap();
    serving.abort();
    assert_eq!(
        std::fs::read_to_string(DevCertificate::user_path().unwrap())
            .unwrap()
            .split("-----BEGIN PRIVATE KEY-----")
            .next(),
        Some(DevCertificate::for_this_user().unwrap().cert_pem())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_files_that_cannot_be_read_are_named() {
    let err = grpc_h3::server::Server::builder()
        .tls_identity_files("/nonexistent/cert.pem", "/nonexistent/key.pem")
        .add_service(common::EchoService::default())
        .bind("127.0.0.1:0".parse().unwrap())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("reading the certificate file /nonexistent/cert.pem"),
        "{err}"
    );
}
