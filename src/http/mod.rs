//! The HTTP layer: maps requests to the classifier and results to responses. Nothing below
//! this module knows about actix.

pub mod auth;
pub mod error;
mod health;
mod metrics;
mod observe;
pub mod openapi;
pub mod payload;
pub mod request_id;
pub mod routes;
mod score;
pub mod types;
pub mod ui;
pub mod v2;

#[cfg(test)]
mod tests;

use actix_cors::Cors;
use actix_web::http::{Method, header};
use actix_web::middleware::{Condition, from_fn};
use actix_web::{App, HttpResponse, web};
use auth::ApiKey;
use error::ApiError;

pub use score::{EXEC_TIME_HEADER, RequestLimits};

use crate::state::ServerState;

/// The application: routes, shared state and middleware. The shared data is created once,
/// outside the per-worker factory.
pub fn app(
    state: web::Data<ServerState>,
    limits: web::Data<RequestLimits>,
    api_key: web::Data<Option<ApiKey>>,
    demo_page: web::Data<ui::DemoPage>,
    cors_allowed_origins: Vec<String>,
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
        .app_data(api_key)
        .app_data(demo_page)
        .service(resource(routes::ROOT).route(web::get().to(health::root)))
        .service(resource(routes::HEALTH).route(web::get().to(health::liveness)))
        .service(resource(routes::READY).route(web::get().to(health::readiness)))
        .service(resource(routes::METRICS).route(web::get().to(metrics::metrics)))
        .service(resource(routes::SWAGGER).route(web::get().to(openapi::swagger)))
        .service(
            resource(routes::SCORE)
                .route(web::post().to(score::score))
                .route(web::method(Method::OPTIONS).to(score::options)),
        )
        .service(resource(routes::UI).route(web::get().to(ui::index)))
        .service(resource(routes::UI_SCRIPT).route(web::get().to(ui::script)))
        .service(resource(routes::UI_STYLE).route(web::get().to(ui::style)))
        .service(resource(routes::V2_SERVER).route(web::get().to(v2::server_metadata)))
        .service(resource(routes::V2_LIVE).route(web::get().to(v2::live)))
        .service(resource(routes::V2_READY).route(web::get().to(v2::ready)))
        .service(resource(routes::V2_MODEL).route(web::get().to(v2::model_metadata)))
        .service(resource(routes::V2_MODEL_VERSION).route(web::get().to(v2::model_metadata)))
        .service(resource(routes::V2_MODEL_READY).route(web::get().to(v2::model_ready)))
        .service(resource(routes::V2_MODEL_VERSION_READY).route(web::get().to(v2::model_ready)))
        .service(resource(routes::V2_INFER).route(web::post().to(v2::infer)))
        .service(resource(routes::V2_INFER_VERSION).route(web::post().to(v2::infer)))
        .default_service(web::to(not_found))
        .wrap(from_fn(auth::require_api_key))
        .wrap(Condition::new(!cors_allowed_origins.is_empty(), cors(&cors_allowed_origins)))
        .wrap(from_fn(request_id::request_ids))
        .wrap(from_fn(observe::observe))
}

/// A route of the table; any method it does not serve gets a 405 with `Allow`.
fn resource(route: routes::Route) -> actix_web::Resource {
    web::resource(route.path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(error::for_path(route.path, ApiError::MethodNotAllowed { allow: route.allow() }))
    }))
}

async fn not_found(request: actix_web::HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    Err(error::for_path(request.path(), ApiError::NotFound))
}

/// Browsers on the allowed origins may call the API (CORS is off when there are none).
fn cors(allowed_origins: &[String]) -> Cors {
    let cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static(request_id::REQUEST_ID),
            header::HeaderName::from_static(request_id::CLIENT_REQUEST_ID),
        ])
        .expose_headers([
            header::HeaderName::from_static(request_id::REQUEST_ID),
            header::HeaderName::from_static(request_id::LEGACY_REQUEST_ID),
            header::HeaderName::from_static(request_id::CLIENT_REQUEST_ID),
            header::HeaderName::from_static(EXEC_TIME_HEADER),
        ])
        .max_age(3600);
    allowed_origins.iter().fold(cors, |cors, origin| cors.allowed_origin(origin))
}
