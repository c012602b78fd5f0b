//! Runs a RouteGuide server and exercises all four call kinds against it.

use clap::Parser;
use grpc_h3::server::Server;
use grpc_h3_examples::local;
use grpc_h3_examples::route_guide::{sample_features, MyRouteGuide};
use grpc_h3_examples::routeguide::route_guide_client::RouteGuideClient;
use grpc_h3_examples::routeguide::route_guide_server::RouteGuideServer;
use grpc_h3_examples::routeguide::{Point, Rectangle, RouteNote};

/// Starts a RouteGuide server on an ephemeral UDP port (development
/// certificate) and makes one call of each kind against it: GetFeature
/// (unary), ListFeatures (server streaming), RecordRoute (client streaming)
/// and RouteChat (bidirectional).
#[derive(Parser)]
#[command(about)]
struct Args {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    Args::parse();
    let server = local::start(
        Server::builder().add_service(RouteGuideServer::new(MyRouteGuide::new(sample_features()))),
    )?;
    let client = RouteGuideClient::new(server.channel.clone());

    let feature = client
        .get_feature(Point {
            latitude: 409_146_138,
            longitude: -746_188_906,
        })
        .await?;
    println!("GetFeature (unary): {:?}", feature.get_ref().name);

    let rect = Rectangle {
        lo: Some(Point {
            latitude: 400_000_000,
            longitude: -750_000_000,
        }),
        hi: Some(Point {
            latitude: 420_000_000,
            longitude: -730_000_000,
        }),
    };
    let mut features = client.list_features(rect).await?.into_inner();
    while let Some(feature) = features.message().await? {
        println!("ListFeatures (server streaming): {:?}", feature.name);
    }

    let route: Vec<Point> = sample_features()
        .into_iter()
        .filter_map(|f| f.location)
        .collect();
    let summary = client.record_route(tokio_stream::iter(route)).await?;
    println!("RecordRoute (client streaming): {:?}", summary.get_ref());

    let here = Point {
        latitude: 1,
        longitude: 2,
    };
    let notes: Vec<RouteNote> = ["first", "second", "third"]
        .into_iter()
        .map(|m| RouteNote {
            location: Some(here),
            message: m.into(),
        })
        .collect();
    let mut echoes = client
        .route_chat(tokio_stream::iter(notes))
        .await?
        .into_inner();
    while let Some(note) = echoes.message().await? {
        println!("RouteChat (bidirectional): earlier note {:?}", note.message);
    }

    server.stop().await
}
