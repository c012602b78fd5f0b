//! The UserService: bearer-token auth, errors with google.rpc details
//! (grpc-h3-types),
//! deadlines, and metadata both ways.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::user::v1::admin_service_server::AdminService;
use crate::user::v1::user_service_server::UserService;
use crate::user::v1::{CreateUserRequest, DeleteUserRequest, GetUserRequest, User};
use grpc_h3::{Code, Metadata, Request, Response, Status};
use grpc_h3_types::{ErrorDetails, StatusExt};

/// Users in memory; every call needs `authorization: Bearer <token>`.
#[derive(Debug)]
pub struct MyUserService {
    token: String,
    latency: Duration,
    next_id: AtomicU64,
    users: Mutex<HashMap<String, User>>,
}

impl MyUserService {
    /// A service accepting `token`, answering after `latency` (to show
    /// deadlines at work).
    pub fn new(token: impl Into<String>, latency: Duration) -> MyUserService {
        MyUserService {
            token: token.into(),
            latency,
            next_id: AtomicU64::new(1),
            users: Mutex::default(),
        }
    }

    fn authenticate(&self, metadata: &Metadata) -> Result<(), Status> {
        let expected = format!("Bearer {}", self.token);
        match metadata.get("authorization") {
            Some(value) if value == expected => Ok(()),
            Some(_) => Err(Status::unauthenticated("invalid bearer token")),
            None => Err(Status::unauthenticated(
                "missing authorization header: send `authorization: Bearer <token>`",
            )),
        }
    }

    async fn begin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.authenticate(request.metadata())?;
        tokio::time::sleep(self.latency).await;
        Ok(())
    }

    fn lookup(&self, id: &str) -> Result<User, Status> {
        let users = self.users.lock().expect("users lock");
        users.get(id).cloned().ok_or_else(|| not_found(id))
    }
}

/// NOT_FOUND with a `google.rpc.ResourceInfo` detail, the way Google
/// APIs report a missing resource; clients read it with
/// [`StatusExt::error_details`].
pub fn not_found(id: &str) -> Status {
    Status::with_error_details(
        Code::NotFound,
        format!("user {id:?} does not exist"),
        ErrorDetails::new().with_resource_info("user.v1.User", id, "", "no user has this id"),
    )
}

impl UserService for MyUserService {
    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<User>, Status> {
        self.begin(&request).await?;
        let user = self.lookup(&request.get_ref().id)?;
        let mut response = Response::new(user);
        response
            .trailers_mut()
            .insert("x-lookup-source", "memory")
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(response)
    }

    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<User>, Status> {
        self.begin(&request).await?;
        let new = request.into_inner();
        if !new.email.contains('@') {
            return Err(Status::with_error_details(
                Code::InvalidArgument,
                format!("email {:?} is not an address", new.email),
                ErrorDetails::new().with_bad_request_violation("email", "must contain an @"),
            ));
        }
        let id = format!("u{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let user = User {
            id: id.clone(),
            email: new.email,
            display_name: new.display_name,
            created_at: Some(prost_types::Timestamp::from(SystemTime::now())),
            team: None,
        };
        self.users
            .lock()
            .expect("users lock")
            .insert(id.clone(), user.clone());
        let mut response = Response::new(user);
        response
            .metadata_mut()
            .insert("x-user-id", &id)
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(response)
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<()>, Status> {
        self.begin(&request).await?;
        let id = &request.get_ref().id;
        match self.users.lock().expect("users lock").remove(id) {
            Some(_) => Ok(Response::new(())),
            None => Err(not_found(id)),
        }
    }

    async fn lookup_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<User>, Status> {
        #[allow(deprecated)]
        self.get_user(request).await
    }

    async fn ping(&self, request: Request<()>) -> Result<Response<()>, Status> {
        self.authenticate(request.metadata())?;
        Ok(Response::new(()))
    }
}

/// The administrative service, which has no methods yet.
#[derive(Debug, Default)]
pub struct MyAdminService;

impl AdminService for MyAdminService {}
