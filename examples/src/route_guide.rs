//! The RouteGuide service: one method of each call kind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use grpc_h3::{Request, Response, Status, Streaming};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::routeguide::route_guide_server::RouteGuide;
use crate::routeguide::{Feature, Point, Rectangle, RouteNote, RouteSummary};

/// A few named places, in E7 degrees.
pub fn sample_features() -> Vec<Feature> {
    [
        (
            "Berkshire Valley Management Area Trail",
            409_146_138,
            -746_188_906,
        ),
        ("Patriots Path, Mendham", 408_122_808, -743_999_179),
        ("101 New Jersey 10, Whippany", 407_838_351, -746_143_763),
        ("Bear Mountain State Park", 413_628_156, -749_015_468),
    ]
    .into_iter()
    .map(|(name, latitude, longitude)| Feature {
        name: name.to_owned(),
        location: Some(Point {
            latitude,
            longitude,
        }),
    })
    .collect()
}

/// Notes left so far, by (latitude, longitude).
type NotesByPoint = Arc<Mutex<HashMap<(i32, i32), Vec<RouteNote>>>>;

/// Serves the features it was given.
#[derive(Debug)]
pub struct MyRouteGuide {
    features: Arc<Vec<Feature>>,
    notes: NotesByPoint,
}

impl MyRouteGuide {
    /// A guide knowing `features`.
    pub fn new(features: Vec<Feature>) -> MyRouteGuide {
        MyRouteGuide {
            features: Arc::new(features),
            notes: Arc::default(),
        }
    }

    fn feature_at(&self, point: &Point) -> Option<&Feature> {
        self.features
            .iter()
            .find(|f| f.location.as_ref() == Some(point))
    }
}

fn in_range(point: &Point, rect: &Rectangle) -> bool {
    let (lo, hi) = (rect.lo.unwrap_or_default(), rect.hi.unwrap_or_default());
    let (left, right) = (
        lo.longitude.min(hi.longitude),
        lo.longitude.max(hi.longitude),
    );
    let (bottom, top) = (lo.latitude.min(hi.latitude), lo.latitude.max(hi.latitude));
    (left..=right).contains(&point.longitude) && (bottom..=top).contains(&point.latitude)
}

/// Great-circle distance in meters (haversine).
pub fn distance(a: &Point, b: &Point) -> i32 {
    const COORD_FACTOR: f64 = 1e7;
    const EARTH_RADIUS_M: f64 = 6_371_000.0;
    let (lat1, lat2) = (
        a.latitude as f64 / COORD_FACTOR,
        b.latitude as f64 / COORD_FACTOR,
    );
    let (lon1, lon2) = (
        a.longitude as f64 / COORD_FACTOR,
        b.longitude as f64 / COORD_FACTOR,
    );
    let (dlat, dlon) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let h = (dlat / 2.0).sin().powi(2)
        + lat1.to_radians().cos() * lat2.to_radians().cos() * (dlon / 2.0).sin().powi(2);
    (2.0 * EARTH_RADIUS_M * h.sqrt().atan2((1.0 - h).sqrt())) as i32
}

type FeatureStream = ReceiverStream<Result<Feature, Status>>;
type NoteStream = ReceiverStream<Result<RouteNote, Status>>;

impl RouteGuide for MyRouteGuide {
    async fn get_feature(&self, request: Request<Point>) -> Result<Response<Feature>, Status> {
        let point = request.into_inner();
        let feature = self.feature_at(&point).cloned().unwrap_or(Feature {
            name: String::new(),
            location: Some(point),
        });
        Ok(Response::new(feature))
    }

    type ListFeaturesStream = FeatureStream;

    async fn list_features(
        &self,
        request: Request<Rectangle>,
    ) -> Result<Response<FeatureStream>, Status> {
        let rect = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let features = self.features.clone();
        tokio::spawn(async move {
            for feature in features.iter() {
                if feature
                    .location
                    .as_ref()
                    .is_some_and(|p| in_range(p, &rect))
                    && tx.send(Ok(feature.clone())).await.is_err()
                {
                    return; // the client went away
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn record_route(
        &self,
        request: Request<Streaming<Point>>,
    ) -> Result<Response<RouteSummary>, Status> {
        let mut points = request.into_inner();
        let start = Instant::now();
        let mut summary = RouteSummary::default();
        let mut last: Option<Point> = None;
        while let Some(point) = points.message().await? {
            summary.point_count += 1;
            if self.feature_at(&point).is_some() {
                summary.feature_count += 1;
            }
            if let Some(last) = last {
                summary.distance += distance(&last, &point);
            }
            last = Some(point);
        }
        summary.elapsed_time = start.elapsed().as_secs() as i32;
        Ok(Response::new(summary))
    }

    type RouteChatStream = NoteStream;

    async fn route_chat(
        &self,
        request: Request<Streaming<RouteNote>>,
    ) -> Result<Response<NoteStream>, Status> {
        let mut incoming = request.into_inner();
        let notes = self.notes.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let note = match incoming.message().await {
                    Ok(Some(note)) => note,
                    Ok(None) => return,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                let location = note.location.unwrap_or_default();
                let earlier = {
                    let mut notes = notes.lock().expect("notes lock");
                    let here = notes
                        .entry((location.latitude, location.longitude))
                        .or_default();
                    let earlier = here.clone();
                    here.push(note);
                    earlier
                };
                for note in earlier {
                    if tx.send(Ok(note)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
