//! The automatic transport: a channel to an `https://` URI uses HTTP/3
//! where it works and HTTP/2 where it does not, remembers broken QUIC, and
//! follows `alt-svc`. Servers here serve one transport each (a port with
//! HTTP/2 on TCP and nothing on UDP is what a network dropping UDP looks
//! like to the client); every call is real, over loopback.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{payload, start_at_on, start_on, EchoClient, TestServer};
use grpc_h3::server::Listen;
use grpc_h3::tls::DevCertificate;
use grpc_h3::{Channel, Request, Transport};

/// A channel choosing its transport by itself, as `Channel::builder`
/// makes by default.
fn automatic(server: &TestServer, race_delay: Duration) -> grpc_h3::client::ChannelBuilder {
    Channel::builder(format!("https://127.0.0.1:{}", server.addr.port()))
        .tls_config(server.tls())
        .race_delay(race_delay)
}

async fn call_transport(client: &EchoClient) -> Transport {
    let response = client
        .unary(Request::new(payload(10)))
        .await
        .expect("the call succeeds");
    *response
        .extensions()
        .get::<Transport>()
        .expect("the response says which transport carried it")
}

/// Calls until one goes out over `wanted` (at most 200 calls, 50 ms
/// apart); every call must succeed on the way.
async fn calls_until(client: &EchoClient, wanted: Transport) -> usize {
    for attempt in 0..200 {
        if call_transport(client).await == wanted {
            return attempt;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("calls never moved to {wanted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_unanswered_the_first_call_goes_over_http2_and_later_channels_skip_quic() {
    let server = start_on(Transport::Http2, |b| {
        b.listen(Listen::Http2Only).advertise_http3(false)
    })
    .await;
    let channel = automatic(&server, Duration::from_millis(100))
        .build()
        .unwrap();
    assert_eq!(channel.current_transport(), None, "nothing connected yet");
    let client = EchoClient::new(channel.clone());
    assert_eq!(call_transport(&client).await, Transport::Http2);
    assert_eq!(channel.current_transport(), Some(Transport::Http2));

    // QUIC is now remembered as broken for this address: a new channel
    // whose race delay is an hour (a race would outlast the call's 10 s
    // deadline) goes straight to HTTP/2.
    let later = automatic(&server, Duration::from_secs(3600))
        .build()
        .unwrap();
    let client = EchoClient::new(later);
    let mut request = Request::new(payload(10));
    request.set_timeout(Duration::from_secs(10));
    let response = client.unary(request).await.expect("no race, no wait");
    assert_eq!(
        response.extensions().get::<Transport>(),
        Some(&Transport::Http2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_move_to_http3_once_quic_works_after_the_broken_period() {
    let cert = DevCertificate::localhost().unwrap();
    let tcp_only = start_at_on(
        Transport::Http2,
        "127.0.0.1:0".parse().unwrap(),
        cert.clone(),
        |b| b.listen(Listen::Http2Only).advertise_http3(false),
    )
    .await;
    let channel = automatic(&tcp_only, Duration::from_millis(50))
        .broken_quic_period(Duration::from_millis(300))
        .build()
        .unwrap();
    let client = EchoClient::new(channel.clone());
    assert_eq!(call_transport(&client).await, Transport::Http2);

    // UDP "unblocked": HTTP/3 appears on the same port number.
    let udp = start_at_on(Transport::Http3, tcp_only.addr, cert, |b| {
        b.listen(Listen::Http3Only)
    })
    .await;
    calls_until(&client, Transport::Http3).await;
    assert_eq!(channel.current_transport(), Some(Transport::Http3));
    assert!(
        udp.stats.completed.load(Ordering::Relaxed) > 0,
        "the HTTP/3 server took calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alt_svc_moves_calls_to_the_advertised_port_and_clear_forgets_it() {
    let cert = DevCertificate::localhost().unwrap();
    let http3 = start_at_on(
        Transport::Http3,
        "127.0.0.1:0".parse().unwrap(),
        cert.clone(),
        |b| b.listen(Listen::Http3Only),
    )
    .await;
    let advertised = Arc::new(Mutex::new(format!("h3=\":{}\"; ma=60", http3.addr.port())));
    let header = advertised.clone();
    let http2 = start_at_on(
        Transport::Http2,
        "127.0.0.1:0".parse().unwrap(),
        cert,
        move |b| {
            b.listen(Listen::Http2Only).advertise_http3(false).layer(
                tower::util::MapResponseLayer::new(
                    move |mut response: http::Response<grpc_h3::Body>| {
                        let value = header.lock().unwrap().clone();
                        response
                            .headers_mut()
                            .insert(http::header::ALT_SVC, value.parse().unwrap());
                        response
                    },
                ),
            )
        },
    )
    .await;
    let origin_port = http2.addr.port();
    let channel = automatic(&http2, Duration::from_millis(50))
        .build()
        .unwrap();
    assert_eq!(
        channel.http3_authority().as_deref(),
        Some(format!("127.0.0.1:{origin_port}").as_str())
    );
    let client = EchoClient::new(channel.clone());
    // Nothing answers QUIC at the origin's own port: HTTP/2, which says
    // where HTTP/3 is.
    assert_eq!(call_transport(&client).await, Transport::Http2);
    assert_eq!(
        channel.http3_authority(),
        Some(format!("127.0.0.1:{}", http3.addr.port()))
    );
    calls_until(&client, Transport::Http3).await;
    assert!(http3.stats.completed.load(Ordering::Relaxed) > 0);

    // The alternative goes away and the origin says `clear`: calls go back
    // to HTTP/2 and the alternative is forgotten.
    *advertised.lock().unwrap() = "clear".to_owned();
    http3.shutdown().await;
    calls_until(&client, Transport::Http2).await;
    for _ in 0..200 {
        if channel.http3_authority() == Some(format!("127.0.0.1:{origin_port}")) {
            return;
        }
        call_transport(&client).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "alt-svc: clear was not honoured: HTTP/3 still goes to {:?}",
        channel.http3_authority()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_the_error_names_both_transports() {
    // A port nobody serves: bind one and let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let channel = Channel::builder(format!("https://127.0.0.1:{port}"))
        .tls_config(grpc_h3::tls::ClientTlsConfig::new().with_system_roots())
        .race_delay(Duration::from_millis(20))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let status = EchoClient::new(channel)
        .unary(Request::new(payload(1)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), grpc_h3::Code::Unavailable, "{status:?}");
    let message = status.message();
    assert!(
        message.contains("HTTP/3")
            && message.contains("HTTP/2")
            && message.contains(&port.to_string()),
        "{message}"
    );
}
