//! The generated clients and servers of every example, end to end over
//! HTTP/3 on loopback.

use std::time::Duration;

use grpc_h3::server::Server;
use grpc_h3::{Code, Request};
use grpc_h3_examples::greeter::MyGreeter;
use grpc_h3_examples::helloworld::greeter_client::GreeterClient;
use grpc_h3_examples::helloworld::greeter_server::GreeterServer;
use grpc_h3_examples::helloworld::HelloRequest;
use grpc_h3_examples::local::{self, LocalServer};
use grpc_h3_examples::route_guide::{sample_features, MyRouteGuide};
use grpc_h3_examples::routeguide::route_guide_client::RouteGuideClient;
use grpc_h3_examples::routeguide::route_guide_server::RouteGuideServer;
use grpc_h3_examples::routeguide::{Point, Rectangle, RouteNote};
use grpc_h3_examples::user::v1::admin_service_server::AdminServiceServer;
use grpc_h3_examples::user::v1::user_service_client::UserServiceClient;
use grpc_h3_examples::user::v1::user_service_server::UserServiceServer;
use grpc_h3_examples::user::v1::{CreateUserRequest, DeleteUserRequest, GetUserRequest};
use grpc_h3_examples::user_service::{MyAdminService, MyUserService};
use grpc_h3_types::StatusExt;

async fn start() -> LocalServer {
    let builder = Server::builder()
        .add_service(GreeterServer::new(MyGreeter))
        .add_service(RouteGuideServer::new(MyRouteGuide::new(sample_features())))
        .add_service(UserServiceServer::new(MyUserService::new(
            "t0ken",
            Duration::from_millis(50),
        )))
        .add_service(AdminServiceServer::new(MyAdminService));
    local::start(builder).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeter() {
    let running = start().await;
    let client = GreeterClient::new(running.channel.clone());
    let reply = client
        .say_hello(HelloRequest { name: "Ada".into() })
        .await
        .unwrap();
    assert_eq!(reply.get_ref().message, "Hello Ada!");
    let status = client.say_hello(HelloRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_guide_all_four_kinds() {
    let running = start().await;
    let client = RouteGuideClient::new(running.channel.clone());

    let known = Point {
        latitude: 413_628_156,
        longitude: -749_015_468,
    };
    assert_eq!(
        client.get_feature(known).await.unwrap().get_ref().name,
        "Bear Mountain State Park"
    );
    let nowhere = Point {
        latitude: 0,
        longitude: 0,
    };
    assert_eq!(
        client.get_feature(nowhere).await.unwrap().get_ref().name,
        ""
    );

    let rect = Rectangle {
        lo: Some(Point {
            latitude: 408_000_000,
            longitude: -747_000_000,
        }),
        hi: Some(Point {
            latitude: 410_000_000,
            longitude: -743_000_000,
        }),
    };
    let mut names = Vec::new();
    let mut features = client.list_features(rect).await.unwrap().into_inner();
    while let Some(feature) = features.message().await.unwrap() {
        names.push(feature.name);
    }
    assert_eq!(
        names,
        [
            "Berkshire Valley Management Area Trail",
            "Patriots Path, Mendham"
        ]
    );

    let route: Vec<Point> = sample_features()
        .into_iter()
        .filter_map(|f| f.location)
        .take(2)
        .collect();
    let expected = grpc_h3_examples::route_guide::distance(&route[0], &route[1]);
    let summary = client
        .record_route(tokio_stream::iter(route))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (summary.point_count, summary.feature_count, summary.distance),
        (2, 2, expected)
    );

    let here = Some(Point {
        latitude: 5,
        longitude: 5,
    });
    let notes: Vec<RouteNote> = ["a", "b", "c"]
        .into_iter()
        .map(|m| RouteNote {
            location: here,
            message: m.into(),
        })
        .collect();
    let mut echoes = client
        .route_chat(tokio_stream::iter(notes))
        .await
        .unwrap()
        .into_inner();
    let mut seen = Vec::new();
    while let Some(note) = echoes.message().await.unwrap() {
        seen.push(note.message);
    }
    // Each note brings back every earlier note at the same point.
    assert_eq!(seen, ["a", "a", "b"]);
    running.stop().await.unwrap();
}

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", "Bearer t0ken")
        .unwrap();
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_service_auth_details_deadlines_and_metadata() {
    let running = start().await;
    let client = UserServiceClient::new(running.channel.clone());

    let status = client.ping(()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut wrong = Request::new(());
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope")
        .unwrap();
    assert_eq!(
        client.ping(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    client.ping(authorized(())).await.unwrap();

    let invalid = CreateUserRequest {
        email: "no-at-sign".into(),
        display_name: None,
    };
    let status = client.create_user(authorized(invalid)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let bad = status.error_details().unwrap().bad_request.unwrap();
    assert_eq!(bad.field_violations[0].field, "email");

    let created = client
        .create_user(authorized(CreateUserRequest {
            email: "a@b.c".into(),
            display_name: None,
        }))
        .await
        .unwrap();
    let id = created.get_ref().id.clone();
    assert_eq!(created.metadata().get("x-user-id"), Some(id.as_str()));
    assert!(
        created.get_ref().display_name.is_none(),
        "proto3 optional stays unset"
    );
    assert!(created.get_ref().created_at.is_some());

    let fetched = client
        .get_user(authorized(GetUserRequest { id: id.clone() }))
        .await
        .unwrap();
    assert_eq!(fetched.get_ref().email, "a@b.c");
    assert_eq!(fetched.trailers().get("x-lookup-source"), Some("memory"));
    #[allow(deprecated)]
    let looked_up = client
        .lookup_user(authorized(GetUserRequest { id: id.clone() }))
        .await
        .unwrap();
    assert_eq!(looked_up.get_ref().id, id);

    let status = client
        .get_user(authorized(GetUserRequest { id: "ghost".into() }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let info = status
        .error_details()
        .unwrap()
        .resource_info
        .expect("a ResourceInfo detail");
    assert_eq!(
        (info.resource_type.as_str(), info.resource_name.as_str()),
        ("user.v1.User", "ghost")
    );

    let mut hurried = authorized(GetUserRequest { id: id.clone() });
    hurried.set_timeout(Duration::from_millis(5));
    assert_eq!(
        client.get_user(hurried).await.unwrap_err().code(),
        Code::DeadlineExceeded
    );
    // A client-wide default timeout applies to calls that set none.
    let impatient = client.clone().timeout(Duration::from_millis(5));
    assert_eq!(
        impatient
            .get_user(authorized(GetUserRequest { id: id.clone() }))
            .await
            .unwrap_err()
            .code(),
        Code::DeadlineExceeded
    );

    client
        .delete_user(authorized(DeleteUserRequest { id: id.clone() }))
        .await
        .unwrap();
    let status = client
        .delete_user(authorized(DeleteUserRequest { id }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_methods_answers_unimplemented() {
    let running = start().await;
    let status = grpc_h3::client::Grpc::new(running.channel.clone())
        .unary(
            Request::new(()),
            http::uri::PathAndQuery::from_static("/user.v1.AdminService/Anything"),
            grpc_h3::codegen::ProstCodec::<(), ()>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    running.stop().await.unwrap();
}
