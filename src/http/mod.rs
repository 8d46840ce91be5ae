//! The HTTP layer: maps requests to the classifier and results to responses. Nothing below
//! this module knows about actix.

pub mod error;
mod health;
mod metrics;
mod observe;
pub mod openapi;
mod payload;
pub mod request_id;
mod score;

use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{App, web};

pub use score::{EXEC_TIME_HEADER, RequestLimits};

use crate::state::ServerState;

/// The application: routes, shared state and middleware. `state` and `limits` are created
/// once, outside the per-worker factory.
pub fn app(
    state: web::Data<ServerState>,
    limits: web::Data<RequestLimits>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .app_data(limits)
        .route("/", web::get().to(health::root))
        .route("/health", web::get().to(health::liveness))
        .route("/ready", web::get().to(health::readiness))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/swagger.json", web::get().to(openapi::swagger))
        .service(
            web::resource("/score")
                .route(web::post().to(score::score))
                .route(web::method(Method::OPTIONS).to(score::options))
                .default_service(web::to(score::method_not_allowed)),
        )
        .default_service(web::to(score::not_found))
        .wrap(from_fn(request_id::request_ids))
        .wrap(from_fn(observe::observe))
}
