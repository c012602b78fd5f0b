//! grpc.health.v1 over real calls (HTTP/3 and HTTP/2 on loopback): Check, Watch
//! (SERVICE_UNKNOWN keeps the stream open), List, and NOT_SERVING when the
//! server starts draining, before its GOAWAY.

use std::time::Duration;

use grpc_h3::server::Server;
use grpc_h3::tls::{ClientTlsConfig, DevCertificate};
use grpc_h3::{Channel, Code, Transport};
use grpc_h3_health::pb::health_client::HealthClient;
use grpc_h3_health::pb::{HealthCheckRequest, HealthListRequest};
use grpc_h3_health::{HealthReporter, ServingStatus};

struct Running {
    channel: Channel,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<Result<(), grpc_h3::Error>>,
}

async fn serve(health: &HealthReporter, notice: Duration) -> Running {
    serve_over(health, notice, Transport::Http3).await
}

async fn serve_over(health: &HealthReporter, notice: Duration, transport: Transport) -> Running {
    let cert = DevCertificate::localhost().unwrap();
    let bound = Server::builder()
        .tls_identity(cert.cert_pem(), cert.key_pem())
        .add_service(health.service())
        .on_drain(health.drain_hook())
        .drain_notice(notice)
        .bind("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let port = bound.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(bound.serve_with_shutdown(async {
        let _ = stopped.await;
    }));
    let channel = Channel::builder(format!("https://127.0.0.1:{port}"))
        .tls_config(ClientTlsConfig::new().ca_certificate(cert.cert_pem()))
        .transport(transport)
        .build()
        .unwrap();
    Running {
        channel,
        stop,
        serving,
    }
}

fn named(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

async fn check(client: &HealthClient, service: &str) -> Result<ServingStatus, Code> {
    client
        .check(named(service))
        .await
        .map(|r| r.into_inner().status())
        .map_err(|s| s.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_list_report_what_the_reporter_set_over_http3() {
    check_and_list_report_what_the_reporter_set(Transport::Http3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_list_report_what_the_reporter_set_over_http2() {
    check_and_list_report_what_the_reporter_set(Transport::Http2).await;
}

async fn check_and_list_report_what_the_reporter_set(transport: Transport) {
    let health = HealthReporter::new();
    let server = serve_over(&health, Duration::ZERO, transport).await;
    let client = HealthClient::new(server.channel.clone());
    assert_eq!(check(&client, "").await, Ok(ServingStatus::Serving));
    assert_eq!(check(&client, "test.Echo").await, Err(Code::NotFound));
    health.set_service_status("test.Echo", ServingStatus::NotServing);
    assert_eq!(
        check(&client, "test.Echo").await,
        Ok(ServingStatus::NotServing)
    );

    let listed = client
        .list(HealthListRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut names: Vec<_> = listed
        .statuses
        .iter()
        .map(|(name, r)| (name.clone(), r.status()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            (String::new(), ServingStatus::Serving),
            ("test.Echo".to_owned(), ServingStatus::NotServing)
        ]
    );

    health.clear_service_status("test.Echo");
    assert_eq!(check(&client, "test.Echo").await, Err(Code::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_on_an_unknown_service_stays_open_and_streams_changes_over_http3() {
    watch_on_an_unknown_service_stays_open_and_streams_changes(Transport::Http3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_on_an_unknown_service_stays_open_and_streams_changes_over_http2() {
    watch_on_an_unknown_service_stays_open_and_streams_changes(Transport::Http2).await;
}

async fn watch_on_an_unknown_service_stays_open_and_streams_changes(transport: Transport) {
    let health = HealthReporter::new();
    let server = serve_over(&health, Duration::ZERO, transport).await;
    let client = HealthClient::new(server.channel.clone());
    let mut updates = client
        .watch(named("test.Later"))
        .await
        .unwrap()
        .into_inner();
    async fn next(
        updates: &mut grpc_h3::Streaming<grpc_h3_health::pb::HealthCheckResponse>,
    ) -> ServingStatus {
        tokio::time::timeout(Duration::from_secs(10), updates.message())
            .await
            .expect("an update arrives")
            .expect("the stream is still open")
            .expect("a message, not the end")
            .status()
    }
    assert_eq!(next(&mut updates).await, ServingStatus::ServiceUnknown);
    // Still open: the service appears, changes, and goes away again.
    health.set_service_status("test.Later", ServingStatus::Serving);
    assert_eq!(next(&mut updates).await, ServingStatus::Serving);
    // Setting the same status again is not a change.
    health.set_service_status("test.Later", ServingStatus::Serving);
    health.set_service_status("test.Later", ServingStatus::NotServing);
    assert_eq!(next(&mut updates).await, ServingStatus::NotServing);
    health.clear_service_status("test.Later");
    assert_eq!(next(&mut updates).await, ServingStatus::ServiceUnknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_says_not_serving_before_the_goaway() {
    let health = HealthReporter::new();
    health.set_service_status("test.Echo", ServingStatus::Serving);
    let server = serve(&health, Duration::from_millis(500)).await;
    let client = HealthClient::new(server.channel.clone());
    let mut updates = client.watch(named("")).await.unwrap().into_inner();
    assert_eq!(
        updates.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    server.stop.send(()).unwrap();
    // The watcher hears it, and new calls are still served during the
    // notice: a balancer probing now learns it too.
    assert_eq!(
        updates.message().await.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    assert_eq!(
        check(&client, "test.Echo").await,
        Ok(ServingStatus::NotServing)
    );
    // Then the drain ends the watch and the server stops.
    drop(updates);
    tokio::time::timeout(Duration::from_secs(30), server.serving)
        .await
        .expect("the server stopped")
        .unwrap()
        .unwrap();
}
