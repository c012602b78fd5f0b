//! Runs the UserService and shows what a production API needs: bearer
//! tokens, NOT_FOUND with typed details, deadlines and metadata.

use std::time::Duration;

use clap::Parser;
use grpc_h3::server::Server;
use grpc_h3::Request;
use grpc_h3_examples::local;
use grpc_h3_examples::user::v1::user_service_client::UserServiceClient;
use grpc_h3_examples::user::v1::user_service_server::UserServiceServer;
use grpc_h3_examples::user::v1::{CreateUserRequest, GetUserRequest};
use grpc_h3_examples::user_service::MyUserService;
use grpc_h3_types::StatusExt;

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", "Bearer demo-token")
        .expect("a valid header");
    request
}

/// Starts the UserService on an ephemeral UDP port (development
/// certificate) and shows what a production API needs: a call without a
/// bearer token (UNAUTHENTICATED), initial and trailing metadata, NOT_FOUND
/// with typed details, and a deadline shorter than the handler.
#[derive(Parser)]
#[command(about)]
struct Args {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    Args::parse();
    let service = MyUserService::new("demo-token", Duration::from_millis(20));
    let server = local::start(Server::builder().add_service(UserServiceServer::new(service)))?;
    let client = UserServiceClient::new(server.channel.clone()).timeout(Duration::from_secs(2));

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
        status.error_details().ok().and_then(|d| d.resource_info)
    );

    let mut hurried = authorized(GetUserRequest {
        id: created.get_ref().id.clone(),
    });
    hurried.set_timeout(Duration::from_millis(5));
    let status = client.get_user(hurried).await.unwrap_err();
    println!("5 ms deadline against a 20 ms handler: {:?}", status.code());

    server.stop().await
}
