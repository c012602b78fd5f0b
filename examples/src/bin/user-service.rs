//! Runs the UserService and shows what a production API needs: bearer
//! tokens, NOT_FOUND with typed details, deadlines and metadata.

use std::time::Duration;

use grpc_h3::server::Server;
use grpc_h3::tls::ClientTlsConfig;
use grpc_h3::{Channel, Request};
use grpc_h3_examples::user::v1::user_service_client::UserServiceClient;
use grpc_h3_examples::user::v1::user_service_server::UserServiceServer;
use grpc_h3_examples::user::v1::{CreateUserRequest, GetUserRequest};
use grpc_h3_examples::user_service::{resource_info, MyUserService};

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", "Bearer demo-token")
        .expect("a valid header");
    request
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = MyUserService::new("demo-token", Duration::from_millis(20));
    let server = Server::builder()
        .dev_certificate()
        .add_service(UserServiceServer::new(service))
        .bind("127.0.0.1:0".parse()?)?;
    let addr = server.local_addr()?;
    let ca = server.dev_certificate_pem().unwrap_or_default().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(async {
        let _ = stopped.await;
    }));
    let channel = Channel::builder(format!("https://127.0.0.1:{}", addr.port()))
        .tls_config(ClientTlsConfig::new().ca_certificate(ca))
        .build()?;
    let client = UserServiceClient::new(channel).timeout(Duration::from_secs(2));

    let status = client
        .get_user(GetUserRequest { id: "u1".into() })
        .await
        .unwrap_err();
    println!(
        "without a token: {:?} {:?}",
        status.code(),
        status.message()
    );

    let created = client
        .create_user(authorized(CreateUserRequest {
            email: "ada@example.com".into(),
            display_name: Some("Ada".into()),
        }))
        .await?;
    println!(
        "created {} (x-user-id header: {:?})",
        created.get_ref().id,
        created.metadata().get("x-user-id")
    );

    let fetched = client
        .get_user(authorized(GetUserRequest {
            id: created.get_ref().id.clone(),
        }))
        .await?;
    println!(
        "fetched {:?}, trailer x-lookup-source={:?}",
        fetched.get_ref().email,
        fetched.trailers().get("x-lookup-source")
    );

    let status = client
        .get_user(authorized(GetUserRequest {
            id: "nobody".into(),
        }))
        .await
        .unwrap_err();
    println!(
        "missing user: {:?} {:?}, detail {:?}",
        status.code(),
        status.message(),
        resource_info(&status)
    );

    let mut hurried = authorized(GetUserRequest {
        id: created.get_ref().id.clone(),
    });
    hurried.set_timeout(Duration::from_millis(5));
    let status = client.get_user(hurried).await.unwrap_err();
    println!("5 ms deadline against a 20 ms handler: {:?}", status.code());

    let _ = stop.send(());
    serving.await??;
    Ok(())
}
